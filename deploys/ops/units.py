"""systemd's view of our units: reloaded when its copy of a unit or drop-in is stale; units
started, stopped, enabled or disabled."""

from __future__ import annotations

import shlex

from pyinfra import host
from pyinfra.api import operation

from deploys.ops.facts import UnitStatus


@operation()
def unit_loaded(unit: str, drop_ins: tuple[str, ...] = (), along: tuple[str, ...] = ()):
    """
    Run ``systemctl daemon-reload`` when systemd's copy of ``unit`` is stale, missing, or in
    error (a unit file deleted and put back while the service kept running), or lacks one
    of ``drop_ins`` (systemd does not count a new drop-in as a stale unit).

    + unit: the unit name, e.g. ``myproject.service``
    + drop_ins: drop-in files the unit must have loaded
    + along: units whose state is read in the same call (see UnitStatus)
    """
    status = host.get_fact(UnitStatus, unit=unit, along=along)
    unloaded = set(drop_ins) - set(status.get("DropInPaths", []))
    stale = status.get("NeedDaemonReload") or status.get("LoadState") in ("not-found", "error")
    if stale or unloaded:
        yield "systemctl daemon-reload"
    else:
        host.noop(f"systemd's copy of {unit} is current")


@operation()
def unit_state(
    unit: str, running: bool = True, enabled: bool | None = None, along: tuple[str, ...] = ()
):
    """
    Start or stop ``unit`` and enable or disable it, from one read of its state (pyinfra's
    systemd.service asks systemctl twice).

    + unit: the unit name, e.g. ``nginx.service``
    + running: whether it should be active
    + enabled: whether it should start at boot; None leaves that alone
    + along: units whose state is read in the same call (see UnitStatus)
    """
    status = host.get_fact(UnitStatus, unit=unit, along=along)
    active = status.get("ActiveState", "")
    commands = []
    if running and active != "active":
        commands.append(f"systemctl start {shlex.quote(unit)}")
    elif not running and active not in ("inactive", "failed", ""):
        commands.append(f"systemctl stop {shlex.quote(unit)}")
    is_enabled = status.get("UnitFileState") == "enabled"
    if enabled is not None and enabled != is_enabled:
        commands.append(f"systemctl {'enable' if enabled else 'disable'} {shlex.quote(unit)}")
    if not commands:
        host.noop(f"{unit} is {'running' if running else 'stopped'}")
    yield from commands
