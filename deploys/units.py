"""systemd's view of our units: reloaded when its copy of a unit or drop-in is stale."""

from __future__ import annotations

from pyinfra import host
from pyinfra.api import operation

from deploys.facts import UnitStatus


@operation()
def unit_loaded(unit: str, drop_ins: tuple[str, ...] = ()):
    """
    Run ``systemctl daemon-reload`` when systemd's copy of ``unit`` is stale, missing, or in
    error (a unit file deleted and put back while the service kept running), or lacks one
    of ``drop_ins`` (systemd does not count a new drop-in as a stale unit).

    + unit: the unit name, e.g. ``myproject.service``
    + drop_ins: drop-in files the unit must have loaded
    """
    status = host.get_fact(UnitStatus, unit=unit)
    unloaded = set(drop_ins) - set(status.get("DropInPaths", []))
    stale = status.get("NeedDaemonReload") or status.get("LoadState") in ("not-found", "error")
    if stale or unloaded:
        yield "systemctl daemon-reload"
    else:
        host.noop(f"systemd's copy of {unit} is current")
