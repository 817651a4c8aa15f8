"""Put a backup of the app back: ``pyinfra -y INV restore.py --data backup=NAME`` (a name
backups.py lists, or ``latest``; ``--data app=NAME`` on a host with several). The app's
timers, workers, web and Redis stop; its data directory, Redis snapshot and database are
replaced by the backup's (what they replace kept until the restore succeeded, and put back
if it fails); everything starts again and the site must answer its health path through
nginx. With ``--dry``, what it would put back and what it would replace.

Around a fleet's database server, every app server stops the app, the database server puts
its database and Redis back (its own backup: ``--data database_backup=NAME``, else
``backup``), then each app server restores its data directory and starts again.

``--data from_host=OLD``: the backup of the app server OLD (gone, say), from the copy a
backup server keeps (``backup_copy_to``), onto the one app server the run reaches (--limit
it to that server and the backup servers), then a backup of its own is taken (and copied).
See docs/backups.md.
"""

from pyinfra import host

from deploys.ops.context import SettingsRefused, dry_run, prepare_host
from deploys.release.lock import hold_deploy_lock
from deploys.stack.backup_server import (
    backup_fetched,
    offer_backup,
    offered_backup,
    withdraw_backups,
)
from deploys.stack.backups import (
    backup_restored,
    backup_taken,
    restore_preview,
    stopped_for_restore,
    units_switched,
)
from deploys.stack.fleet import (
    a_host_failed,
    as_served,
    fleet,
    no_failed_host,
    private_address,
    processes_here,
    reachable,
    reached,
)
from deploys.stack.workers import processes

roles = fleet()
settings = as_served(prepare_host(secrets=False), roles).single("restore.py")
if not settings.backup:
    raise SettingsRefused(
        "backup: restore.py needs the backup to put back, e.g. --data backup=latest or"
        " --data backup=20261205T030000Z (backups.py lists them)"
    )
backup = settings.backup
if settings.from_host:  # fetched from the backup server, then restored as one of ours
    restoring = [h.name for h in reachable(roles.names)]
    if len(restoring) != 1:
        raise SettingsRefused(
            f"from_host: restore.py restores one app server from {settings.from_host}'s"
            f" backup, and this run reaches {len(restoring)} ({', '.join(restoring)}): --limit"
            " it to that server and the backup servers (--limit NAME, once for each)"
        )
    receiver, backup = offered_backup(settings, settings.from_host)
    if not reachable([receiver.name]):
        raise SettingsRefused(
            f"from_host: {receiver.name} keeps the backup but this run does not reach it: put"
            f" it in the run too (--limit {restoring[0]} --limit {receiver.name})"
        )
    if roles.runs_apps:
        hold_deploy_lock()
    if host.name == receiver.name:
        offer_backup(settings, settings.from_host, backup, restoring[0], roles)
    reached(name=f"Restore: backup {backup} offered by {receiver.name}", step="offered")
    if roles.runs_apps:
        fetch = f"Backup {backup} of {settings.app_name} fetched from {receiver.name}"
        address = private_address(receiver)
        backup_fetched(name=fetch, settings=settings, receiver=address, backup=backup)
    reached(name=f"Restore: backup {backup} fetched", step="fetched")
    if host.name == receiver.name:
        withdraw_backups()
# Around a database server, its part comes between the app servers': they stop the app, it
# puts the app's database and Redis back, then they restore their own data and start again
# (or, should it have failed, start again on what they had).
shared = bool(roles.database_server) and bool(settings.postgresql or settings.redis)
shared = shared and not settings.from_host
serving = roles.database_server if roles.serving_data and shared else ""
if roles.runs_apps and dry_run() and settings.from_host:
    print(
        f"[{host.name}] would fetch backup {backup} of {settings.from_host} from"
        f" {receiver.name}, restore {settings.app_name} from it, then take a backup of its own"
    )
elif (roles.runs_apps or serving) and dry_run():
    wanted = settings.database_backup or backup if serving else backup
    for line in restore_preview(settings, wanted, serving):
        print(f"[{host.name}] {line}")
if roles.runs_apps or serving:
    hold_deploy_lock()
if roles.runs_apps:
    units = stopped_for_restore(settings, processes(settings, *processes_here(settings, roles)))
if shared:
    if roles.runs_apps:
        units_switched(name=f"{settings.app_name} stopped", units=units, running=False)
    reached(name=f"Restore: {settings.app_name} stopped on every app server", step="stopped")
    if serving:
        backup_restored(
            name=f"Restore {settings.app_name}'s database and Redis from backup"
            f" {settings.database_backup or backup}",
            settings=settings,
            backup=settings.database_backup or backup,
            units=stopped_for_restore(settings, None),
            serving=serving,
        )
    reached(name=f"Restore: {settings.app_name}'s database server done", step="data")
if roles.runs_apps:
    if shared:
        units_switched(
            name=f"{settings.app_name} started again on what it had",
            units=units,
            running=True,
            _if=[a_host_failed],
        )
    backup_restored(
        name=f"Restore {settings.app_name} from backup {backup}",
        settings=settings,
        backup=backup,
        units=units,
        _if=[no_failed_host],
    )
    if settings.from_host and settings.backups:  # its own history starts, copied off it
        backup_taken(name=f"Backup of {settings.app_name} as restored", settings=settings)
