"""The speed layer: everything that reaches into pyinfra's private internals to make a run
faster (fact cache, batch shell, fact merge, bookkeeping shortcuts, TCP_NODELAY). Nothing
else of deploys touches pyinfra's internals. Imports nothing else of deploys.

A known limit (found with #29): an operation whose generator reads *another* host's facts
(``state.inventory.get_host(name).get_fact``) ends the run after its first operation, with
exit status 0 and no summary, when the look-ahead runs that generator early. Read other
hosts' facts in the deploy code, before the operations run (stack/database_server.py's
app_password does).

One switch: ``install()`` applies all of it, for each host, from ``prepare_host``. It
applies only on the pyinfra versions it was tested against (TESTED_PYINFRA); on any other
the run uses stock pyinfra (slower, same result) and says so once. ``--data
fast_facts=false`` turns it off. Without it, the other layers ask nothing of it but
``read_together`` (then plain ``host.get_fact``) and ``fact_cache`` (then None): the
submodules are imported only once the version is known to fit.

The private names of pyinfra used, and why (the checklist of a pyinfra upgrade: check each
still exists and means the same, run the contract tests test_factcache, test_factmerge,
test_batchshell and test_context, then add the version to TESTED_PYINFRA):

- ``Host.get_fact`` and the connector's ``run_shell_command``, ``put_file``, ``get_file``,
  ``rsync``, rebound on each host (factcache): facts are answered from the cache, and
  anything else that runs forgets it.
- ``host.current_op_hash``, ``current_op_global_arguments``, ``in_op``,
  ``current_op_deploy_data`` (factcache): which operation reads a fact, and how it runs
  commands; saved and put back around the look-ahead, whose generators reset them.
- ``state.ops[host][op_hash].command_generator``, ``state.get_op_order()``,
  ``state.is_executing`` (factcache): the look-ahead runs the coming operations' generators
  on the answers so far, in the order pyinfra will run them.
- ``pyinfra.api.arguments.pop_global_arguments`` and ``CONNECTOR_ARGUMENT_KEYS``
  (factcache): the connector arguments pyinfra runs a host's facts with (sudo, user...).
- ``pyinfra.api.facts._MISSING_COMMAND_MARKER`` (copied as factcache.MISSING_COMMAND_MARKER)
  and ``ShortFactBase``: answers left to pyinfra's own get_fact to judge.
- ``pyinfra.connectors.util.CommandOutput``, ``OutputLine`` (factcache): a batch's answers
  handed back as the connector would.
- ``pyinfra.context.ContextObject._get_module`` (factcache.install): the host a context
  object stands for when the cache is installed.
- ``pyinfra.connectors.util.make_unix_command_for_host`` (batchshell): the kept-open shell
  starts as pyinfra starts a fact's command (sudo, su, environment).
- ``host.connector.client`` (paramiko's SSHClient), its transport and ``sock``, and
  ``host.connector_data["prompted_sudo_password"]`` (batchshell, disable_nagle, the deploy
  lock through FactCache.open_channel): a channel of the run's own connection, TCP_NODELAY
  on its socket.
- ``pyinfra.facts.files.LINUX_STAT_COMMAND`` and the exact commands of ``File``,
  ``Sha1File``, ``Sha256File`` (factmerge): merged only when a command is exactly what the
  fact makes for its path.
- ``pyinfra.api.arguments.all_global_arguments`` (quicker): rebound cached; its type hints
  are constant.
- ``pyinfra.api.operation.get_operation_order_from_stack`` (rebound),
  ``pyinfra.api.util.PYINFRA_INSTALL_DIR``, ``state.current_deploy_filename``,
  ``state.current_op_file_number``, ``pyinfra.is_cli`` (quicker): the same line numbers
  from the frames, without ``inspect.stack``.
- ``HostData.__getattr__``, ``HostData.datas``, ``HostData.host``,
  ``Inventory.get_groups_data`` (quicker): host data looked up without exceptions, groups'
  data merged once.
- ``pyinfra.api.command.shlex`` (quicker): the module's ``shlex``, its splits kept.

Not private, and used in both modes: ``host.loop_position`` (what ``host.loop()`` sets),
which context.in_turn extends to order each turn's operations.
"""

from __future__ import annotations

import socket
from functools import cache
from importlib.metadata import version
from typing import TYPE_CHECKING, Any

from pyinfra import logger

if TYPE_CHECKING:
    from deploys.speed.factcache import FactCache

TESTED_PYINFRA = ("3.10.0",)  # the versions the speed layer was tested against
_WARNED: list[str] = []  # the versions already warned about in this run


@cache
def pyinfra_version() -> str:
    """The installed pyinfra's version (read once: every host's prepare_host asks)."""
    return version("pyinfra")


def fits(found: str | None = None) -> bool:
    """Whether the speed layer was tested against this pyinfra version (the installed one)."""
    return (found or pyinfra_version()) in TESTED_PYINFRA


def install(host, state, enabled: bool = True) -> bool:
    """Apply the speed layer to ``host``; return whether it applies. ``enabled=False``
    (``fast_facts=false``) or a pyinfra it was not tested against (then one warning per
    run): stock pyinfra. The shortcuts of pyinfra's bookkeeping (quicker) are the process's:
    once a host has them, so do the run's other hosts (they change nothing pyinfra does)."""
    if not enabled:
        return False
    found = pyinfra_version()
    if not fits(found):
        if found not in _WARNED:
            _WARNED.append(found)
            logger.warning(
                f"flask-deploy: the speed layer (deploys/speed) is tested on pyinfra"
                f" {', '.join(TESTED_PYINFRA)}, not {found}: this run uses stock pyinfra"
                " (slower, same result)"
            )
        return False
    from deploys.speed import factcache, quicker  # only now: they rely on pyinfra's internals

    disable_nagle(host.connector)
    factcache.install(host, state)
    quicker.install()
    return True


def fact_cache(host) -> FactCache | None:
    """``host``'s fact cache; None when the speed layer does not apply to it."""
    return getattr(host, "fact_cache", None)


def read_together(host, *requests: tuple) -> list:
    """``host``'s values of the facts ``requests`` (``(fact class, {argument: value})``),
    in one round trip with a fact cache, else one ``host.get_fact`` each."""
    cache = fact_cache(host)
    if cache is None:
        return [host.get_fact(cls, **kwargs) for cls, kwargs in requests]
    return cache.read_together(list(requests))


def disable_nagle(connector: Any) -> bool:
    """Set TCP_NODELAY on an SSH connector's socket; return whether it was set.

    paramiko leaves Nagle's algorithm on, so every fact or command (a few small SSH packets)
    waits for the server's delayed ACK: about 40 ms each on Linux, some 60 facts per deploy.
    Connections through a proxy command or jump host, and other connectors, are left alone.
    """
    client = getattr(connector, "client", None)
    transport = client.get_transport() if client is not None else None
    sock = getattr(transport, "sock", None)
    if not isinstance(sock, socket.socket) or sock.family not in (socket.AF_INET, socket.AF_INET6):
        return False
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return True
