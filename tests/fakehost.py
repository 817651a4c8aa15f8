"""Operation tests, facts in and commands out (pyinfra's own style): a stand-in for the few
parts of pyinfra's host that our operations use, and a way to run an operation's generator.
The ``fake`` fixture (conftest.py) makes one the current host through pyinfra's context
(``current``: ``ctx_host.use``), as pyinfra's own tests do, with a state whose config is
pyinfra's default.

Facts are keyed as pyinfra's tests key them: the fact's name and its arguments as pyinfra
writes them (``get_kwargs_str``), e.g. ``("File", "path=/etc/a")``; ``fact(UnitStatus,
unit=..., along=...)`` builds a key from the very arguments. A fact the test did not give
is an error naming it (never a silent default): give what the host would answer, ``None``
for a file that is not there."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from pyinfra.api import Config
from pyinfra.api.util import get_kwargs_str
from pyinfra.context import ctx_host, ctx_state


def fact(cls: type, **kwargs) -> tuple[str, str]:
    """The key of fact ``cls`` called with ``kwargs`` (see the module's docstring)."""
    return cls.__name__, get_kwargs_str(kwargs)


class MissingFact(KeyError):
    """An operation asked for a fact the test did not give."""


class FakeHost:
    """The parts of pyinfra's host the operations use: facts from a dict keyed by fact and
    arguments (see ``fact``), no-op messages, the global arguments of the current op."""

    name = "web1"

    def __init__(self, facts: dict):
        self.facts = facts
        self.noops: list[str] = []
        self.logs: list[str] = []
        self.current_op_global_arguments = {"_sudo": True, "_temp_dir": "/home/d/.cache/fd"}

    def get_fact(self, cls, **kwargs):
        """The fact the test gave for ``cls`` with these arguments; MissingFact without one."""
        key = fact(cls, **kwargs)
        if key not in self.facts:
            raise MissingFact(
                f"the test gives no fact {key!r} (pyinfra's default: {cls.default()!r})"
            )
        return self.facts[key]

    def noop(self, message: str) -> None:
        """Record a no-op message."""
        self.noops.append(message)

    def log(self, message: str, log_func=None) -> None:
        """Record a logged message."""
        self.logs.append(message)

    def get_temp_filename(self, *args, **kwargs) -> str:
        """A fixed temporary file name."""
        return "/home/d/.cache/fd/upload"


class FakeState:
    """The parts of pyinfra's state the operations read: the config (pyinfra's default)."""

    def __init__(self) -> None:
        self.config = Config()


@contextmanager
def current(host=None, state=None) -> Iterator[None]:
    """``host`` and ``state`` (those given) made pyinfra's current ones for the body, through
    its context as pyinfra's tests do (``ctx_host.use``); the ones before are put back even
    when the body raises, which ``use`` alone does not do (no try/finally in it)."""
    before = ctx_host.get(), ctx_state.get()
    try:
        with ctx_host.use(host or before[0]), ctx_state.use(state or before[1]):
            yield
    finally:
        ctx_host.set(before[0])
        ctx_state.set(before[1])


def commands(op, *args, **kwargs) -> list:
    """What an operation yields for these arguments (its commands, in order)."""
    return list(op._inner(*args, **kwargs))
