"""Backups of each app that sets ``backups`` (docs/backups.md): its backup unit (root,
``release_gate.py backup``, which reads the app's files as the app) started by its timer on
``backup_on_calendar``, by backup.py on demand; systemd never runs two at once. The backups
live in a root-only folder the app never reads. Turning backups off stops and removes the
timer and the unit; the backups stay."""

from __future__ import annotations

import shlex

from pyinfra import host
from pyinfra.api import FactBase, operation
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
from deploys.stack.database_server import memory_max_bytes, password_file
from deploys.stack.workers import Processes, systemd_quoted


def served_redis_data(app: str) -> str:
    """On a database server: the folder of the app's Redis snapshot (its unit's
    StateDirectory, a DynamicUser's)."""
    return f"/var/lib/private/{app}-redis"


def backup_arguments(settings: Settings, serving: str = "") -> str:
    """release_gate.py backup's arguments for the app: what it covers, where it goes. On
    the database server (``serving``: its private address), its database and Redis alone."""
    layout, app = Layout.of(settings), settings.app_name
    if serving:
        args = f"--app={app} --user={settings.user} --root={layout.backups}"
    else:
        args = (
            f"--app={app} --user={settings.user} --sandbox={layout.sandbox}"
            f" --data={layout.data} --root={layout.backups} --current={layout.current}"
        )
    args += f" --keep={settings.backup_keep}"
    if settings.local_postgresql:
        args += f" --database={app}"
    if settings.local_redis and serving:
        limit = memory_max_bytes(settings.redis_maxmemory)
        args += (
            f" --redis-socket={layout.redis_socket} --redis-password={password_file(app)}"
            f" --redis-limit={limit} --redis-data={served_redis_data(app)}"
        )
    elif settings.local_redis:
        args += f" --redis-socket={layout.redis_socket} --redis-data={layout.redis_data}"
    return args + copy_arguments(settings)


def backup_units(settings: Settings, serving: str = "") -> dict[str, str]:
    """The backup unit's and its timer's paths and texts, and with ``backup_on_failure``
    the unit that runs it (``serving``: as backup_arguments)."""
    layout = Layout.of(settings)
    arguments = backup_arguments(settings, serving)
    context = {"s": settings, "layout": layout, "arguments": arguments}
    units = {
        layout.system_unit(f"{layout.backup_unit}.{kind}"): render(f"backup.{kind}.j2", **context)
        for kind in ("service", "timer")
    }
    if settings.backup_on_failure:
        command = systemd_quoted(settings.backup_on_failure)
        text = render("backup-failed.service.j2", **context, command=command)
        units[failure_unit_path(settings)] = text
    return units


def failure_unit_path(settings: Settings) -> str:
    """Where the unit that runs backup_on_failure lives."""
    layout = Layout.of(settings)
    return layout.system_unit(f"{layout.backup_unit}-failed.service")


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


class DataNow(FactBase):
    """What a restore of the app would replace, now: ``{"data": [files, bytes] of its data
    directory, "database": its size in bytes (None: none), "redis": its snapshot's bytes
    (None: none)}``."""

    def command(self, data: str = "", database: str = "", redis_data: str = "") -> str:
        quoted = shlex.quote(data)
        lines = ["true"]
        if data:
            lines.append(f"echo files $(find {quoted} -mindepth 1 2>/dev/null | wc -l)")
            lines.append(f"echo bytes $(du -sb {quoted} 2>/dev/null | cut -f1)")
        if database:
            query = shlex.quote(f"SELECT pg_database_size('{database}')")
            lines.append(f"echo database $(runuser -u postgres -- psql -XAtc {query} 2>/dev/null)")
        if redis_data:
            lines.append(f"echo redis $(stat -c %s {shlex.quote(redis_data)}/dump.rdb 2>/dev/null)")
        return "; ".join(lines)

    def process(self, output):
        said = dict([*line.split(" ", 1), ""][:2] for line in output)
        number = {k: int(v) if v.strip().isdigit() else None for k, v in said.items()}
        return {
            "data": [number.get("files") or 0, number.get("bytes") or 0],
            "database": number.get("database"),
            "redis": number.get("redis"),
        }


def restore_preview(settings: Settings, backup: str, serving: str = "") -> list[str]:
    """What restore.py would put back and what it would replace (``--dry``; ``serving``:
    as backup_arguments)."""
    layout = Layout.of(settings)
    found = backups_here(settings)
    chosen = found[-1:] if backup == "latest" else [m for m in found if m["backup"] == backup]
    if not chosen:
        return [f"no backup {backup!r} of {settings.app_name} here ({len(found)} kept)"]
    manifest = chosen[0]
    redis_data = served_redis_data(settings.app_name) if serving else layout.redis_data
    now = host.get_fact(
        DataNow,
        data="" if serving else layout.data,
        database=settings.app_name if settings.local_postgresql else "",
        redis_data=redis_data if settings.local_redis else "",
    )
    parts = ", ".join(f"{p['name']} ({p['size']} bytes)" for p in manifest["parts"])
    release = f", release {manifest['release']}" if manifest["release"] else ""
    lines = [
        f"would restore {settings.app_name} from backup {manifest['backup']} (taken"
        f" {manifest['taken_at']}{release}): {parts}",
    ]
    if not serving:
        files, size = now["data"]
        replaced = f"{layout.data}: {files} entries, {size} bytes"
        lines.append(f"would replace its data directory {replaced}")
    if now["database"] is not None:
        lines.append(f"would replace its database {settings.app_name}: {now['database']} bytes")
    if now["redis"] is not None:
        lines.append(f"would replace its Redis snapshot: {now['redis']} bytes")
    return lines


def stopped_for_restore(settings: Settings, processes: Processes | None) -> tuple[str, ...]:
    """The app's units a restore stops, in that order (and starts in the reverse): its
    timers first (no backup nor job starts meanwhile), workers, web (socket before service:
    a request would start it again), its Redis last. ``processes`` None: on the database
    server, its backup timer and Redis there."""
    layout = Layout.of(settings)
    app_units = (
        (*processes.timers, *processes.instances, layout.socket_unit_name, layout.unit_name)
        if processes
        else ()
    )
    return (
        f"{layout.backup_unit}.timer",
        *app_units,
        *([layout.redis_unit_name] if settings.local_redis else []),
    )


@operation()
def backup_restored(settings: Settings, backup: str, units: tuple[str, ...], serving: str = ""):
    """
    Put a backup of the app back (release_gate.py restore: see deploys/hostside/restore.py)
    and show what it said; the operation fails when the restore did.

    + settings: the app's
    + backup: the backup's name, or ``latest``
    + units: the app's units to stop meanwhile (stopped_for_restore)
    + serving: on the database server, its private address: the database and Redis alone
    """
    layout, app = Layout.of(settings), settings.app_name
    args = f"--app={app} --user={settings.user} --root={layout.backups} --backup={backup}"
    args += "".join(f" --unit={shlex.quote(unit)}" for unit in units)
    if not serving:
        args += f" --sandbox={layout.sandbox} --data={layout.data} {health_args(settings)}"
    if settings.local_postgresql:
        args += f" --database={app}"
        args += f" --database-password={password_file(app)}" if serving else ""
    if settings.local_redis:
        args += f" --redis-data={served_redis_data(app) if serving else layout.redis_data}"
    yield shown(f"python3 {layout.gate_script} restore {args}")


@operation()
def units_switched(units: tuple[str, ...], running: bool):
    """
    Stop the app's units, in order (``running`` False), or start them in the reverse: on
    the app servers, around their database server's restore.

    + units: stopped_for_restore's
    + running: whether they end running
    """
    order = units[::-1] if running else units
    yield f"systemctl {'start' if running else 'stop'} {' '.join(map(shlex.quote, order))}"


@deploy("Backups")
def configure_backups(settings: Settings, serving: str = "") -> None:
    """The app's backups' root-only folder, its backup unit and timer (enabled, running);
    with ``backups`` off, the timer stopped and both units gone (the backups stay).
    ``serving``: as backup_arguments."""
    layout = Layout.of(settings)
    timer = f"{layout.backup_unit}.timer"
    units = backup_units(settings, serving)
    if not settings.backups:
        if not host.get_fact(File, path=layout.system_unit(timer)):
            return  # never had backups here
        unit_state(name=f"{timer} stopped", unit=timer, running=False, enabled=False)
        paths = sorted({*units, failure_unit_path(settings)})
        gone = [files.file(name=f"No {path}", path=path, present=False) for path in paths]
        unit_loaded(
            name="systemd forgets the backup units", unit=timer, _if=[g.did_change for g in gone]
        )
        return
    for folder in (BACKUPS, layout.backups):
        files.directory(name=f"Folder {folder} (root only)", path=folder, user="root", mode="700")
    for path, text in units.items():
        put_text(f"Unit {path}", text, path)
    if not settings.backup_on_failure:
        files.file(
            name="No unit for backup_on_failure", path=failure_unit_path(settings), present=False
        )
    failed = [f"{layout.backup_unit}-failed.service"] if settings.backup_on_failure else []
    for unit in (f"{layout.backup_unit}.service", timer, *failed):
        unit_loaded(name=f"systemd knows the current {unit}", unit=unit)
    unit_state(name=f"{timer} enabled and running", unit=timer, running=True, enabled=True)


def backups_here(settings: Settings) -> list[dict]:
    """The app's backups on this host, oldest first."""
    return host.get_fact(BackupList, root=Layout.of(settings).backups)
