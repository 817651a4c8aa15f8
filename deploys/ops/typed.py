"""pyinfra's ``@deploy`` with the type it really has, and the current operation's global
arguments. Import ``deploy`` from here, not from ``pyinfra.api``.

Why: pyinfra 3.10 types a decorated function as ``PyinfraOperation[P]``, whose ``__call__``
lists its ~30 global arguments (``_sudo``, ``_if``, ``name``...) as positional parameters
before the function's own, so a type checker maps ``configure_nginx(settings, shared)``
onto ``_sudo=settings, _sudo_user=shared`` (pyinfra issue #1389), and it says a deploy
returns an ``OperationMeta`` where pyinfra returns the function's own value. Python's typing
cannot add keyword parameters to a ``ParamSpec``, so one of the two must give:

- ``@operation``s stay pyinfra's: they are called with keywords (``name=``, ``_env=``... and
  their own arguments), which pyinfra's type checks, global arguments included.
- ``@deploy``s (here) keep their function's signature and return type: they are called
  positionally and return values (an ``NginxHost``); pyinfra's global arguments reach them
  through ``**arguments`` (a ``dict[str, Any]``).

At run time ``deploy`` is pyinfra's own decorator, unchanged (``cast`` only)."""

from __future__ import annotations

from collections.abc import Callable
from typing import ParamSpec, Protocol, TypeVar, cast

from pyinfra import host
from pyinfra.api import deploy as pyinfra_deploy
from pyinfra.api.arguments import AllArguments
from pyinfra.api.exceptions import PyinfraError

P = ParamSpec("P")
R = TypeVar("R", covariant=True)


class Deploy(Protocol[P, R]):
    """A ``@deploy``: called as the function it wraps, it returns what the function does."""

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        """Run the deploy's function inside pyinfra's deploy context."""
        ...


def deploy(name: str) -> Callable[[Callable[P, R]], Deploy[P, R]]:
    """pyinfra's ``@deploy(name)``, typed as the function it wraps."""
    return cast(Callable[[Callable[P, R]], Deploy[P, R]], pyinfra_deploy(name))


def op_arguments() -> AllArguments:
    """The global arguments (sudo, temporary folder...) of the operation being built."""
    arguments = host.current_op_global_arguments
    if arguments is None:
        raise PyinfraError("no operation is being built: no global arguments to run with")
    return arguments
