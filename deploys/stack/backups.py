"""Backups of each app that sets ``backups`` (docs/backups.md): its backup unit (root,
``release_gate.py backup``, which reads the app's files as the app) started by its timer on
``backup_on_calendar``, by backup.py on demand; systemd never runs two at once. The backups
live in a root-only folder the app never reads. Turning backups off stops and removes the
timer and the unit; the backups stay."""

from __future__ import annotations

import shlex

from pyinfra import host
from pyinfra.api import operation
from pyinfra.facts.files import File
from pyinfra.operations import files

from deploys.config.layout import BACKUPS, Layout
from deploys.config.settings import Settings
from deploys.ops.facts import BackupList
from deploys.ops.output import shown
from deploys.ops.render import put_text, render
from deploys.ops.typed import deploy
from deploys.ops.units import unit_loaded, unit_state
from deploys.release.gate import health_args
from deploys.stack.backup_server import copy_arguments
from deploys.stack.workers import Processes


def backup_arguments(settings: Settings) -> str:
    """release_gate.py backup's arguments for the app: what it covers, where it goes."""
    layout = Layout.of(settings)
    args = (
        f"--app={settings.app_name} --user={settings.user} --sandbox={layout.sandbox}"
        f" --data={layout.data} --root={layout.backups} --current={layout.current}"
        f" --keep={settings.backup_keep}"
    )
    if settings.postgresql and not settings.database_server:
        args += f" --database={settings.app_name}"
    if settings.redis and not settings.database_server:
        args += f" --redis-socket={layout.redis_socket} --redis-data={layout.redis_data}"
    return args + copy_arguments(settings)


def backup_units(settings: Settings) -> dict[str, str]:
    """The backup unit's and its timer's paths and texts."""
    layout = Layout.of(settings)
    context = {"s": settings, "layout": layout, "arguments": backup_arguments(settings)}
    return {
        layout.system_unit(f"{layout.backup_unit}.{kind}"): render(f"backup.{kind}.j2", **context)
        for kind in ("service", "timer")
    }


@operation()
def backup_taken(settings: Settings):
    """
    Take one backup of the app now: start its backup unit (waiting for it: systemd runs one
    at a time, so a backup the timer started is waited for first) and show what it said.

    + settings: the app's
    """
    unit = f"{Layout.of(settings).backup_unit}.service"
    yield shown(
        f"since=$(date +%s); systemctl start {unit}; status=$?;"
        f" journalctl -u {unit} --since=@$since -o cat --no-pager"
        " | grep -v -e '^Starting ' -e '^Finished ' -e 'Deactivated successfully';"
        ' exit "$status"'
    )


def stopped_for_restore(settings: Settings, processes: Processes) -> tuple[str, ...]:
    """The app's units a restore stops, in that order (and starts in the reverse): its
    timers first (no backup nor job starts meanwhile), workers, web (socket before service:
    a request would start it again), its Redis last."""
    layout = Layout.of(settings)
    local_redis = settings.redis and not settings.database_server
    return (
        f"{layout.backup_unit}.timer",
        *processes.timers,
        *processes.instances,
        layout.socket_unit_name,
        layout.unit_name,
        *([layout.redis_unit_name] if local_redis else []),
    )


@operation()
def backup_restored(settings: Settings, backup: str, units: tuple[str, ...]):
    """
    Put a backup of the app back (release_gate.py restore: see deploys/hostside/restore.py)
    and show what it said; the operation fails when the restore did.

    + settings: the app's
    + backup: the backup's name, or ``latest``
    + units: the app's units to stop meanwhile (stopped_for_restore)
    """
    layout = Layout.of(settings)
    args = (
        f"--app={settings.app_name} --user={settings.user} --sandbox={layout.sandbox}"
        f" --data={layout.data} --root={layout.backups} --backup={backup}"
        + "".join(f" --unit={shlex.quote(unit)}" for unit in units)
        + f" {health_args(settings)}"
    )
    if settings.postgresql and not settings.database_server:
        args += f" --database={settings.app_name}"
    if settings.redis and not settings.database_server:
        args += f" --redis-data={layout.redis_data}"
    yield shown(f"python3 {layout.gate_script} restore {args}")


@deploy("Backups")
def configure_backups(settings: Settings) -> None:
    """The app's backups' root-only folder, its backup unit and timer (enabled, running);
    with ``backups`` off, the timer stopped and both units gone (the backups stay)."""
    layout = Layout.of(settings)
    timer = f"{layout.backup_unit}.timer"
    units = backup_units(settings)
    if not settings.backups:
        if not host.get_fact(File, path=layout.system_unit(timer)):
            return  # never had backups here
        unit_state(name=f"{timer} stopped", unit=timer, running=False, enabled=False)
        gone = [files.file(name=f"No {path}", path=path, present=False) for path in units]
        unit_loaded(
            name="systemd forgets the backup units", unit=timer, _if=[g.did_change for g in gone]
        )
        return
    for folder in (BACKUPS, layout.backups):
        files.directory(name=f"Folder {folder} (root only)", path=folder, user="root", mode="700")
    for path, text in units.items():
        put_text(f"Unit {path}", text, path)
    for unit in (f"{layout.backup_unit}.service", timer):
        unit_loaded(name=f"systemd knows the current {unit}", unit=unit)
    unit_state(name=f"{timer} enabled and running", unit=timer, running=True, enabled=True)


def backups_here(settings: Settings) -> list[dict]:
    """The app's backups on this host, oldest first."""
    return host.get_fact(BackupList, root=Layout.of(settings).backups)
