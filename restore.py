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
When the run reaches a database server, OLD is the old database server: its backup is
fetched onto the new one and restored there, the app stopped on the app servers meanwhile.
See docs/backups.md.
"""

from pyinfra import host

from deploys.ops.context import SettingsRefused, dry_run, prepare_host
from deploys.release.lock import hold_deploy_lock
from deploys.stack.backup_server import (
    backup_fetched,
    of_database_server,
    offer_backup,
    offered_backup,
    withdraw_backups,
)
from deploys.stack.backups import (
    backup_restored,
    backup_taken,
    backups_here,
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
plan = prepare_host(secrets=False)
settings = as_served(plan, roles).single("restore.py")
if not settings.backup:
    raise SettingsRefused(
        "backup: restore.py needs the backup to put back, e.g. --data backup=latest or"
        " --data backup=20261205T030000Z (backups.py lists them)"
    )
backup = settings.backup
# Around a database server that holds the app's database or Redis, it restores them while
# every app server has the app stopped (not in the run: the app servers restore their data
# alone). With from_host the old host's backup is fetched onto one host of the run first:
# a database server's backup onto the database server, an app server's onto the one app
# server the run reaches.
as_set = plan.single("restore.py")  # as the settings say, on every host (a load balancer too)
on_database = bool(roles.database_host) and roles.backs_up(as_set, roles.database_host)
database_reached = on_database and bool(reachable([roles.database_host]))
restoring = ""  # the host the backup of from_host is fetched onto
onto_database = False  # from_host's backup is a database server's
if settings.from_host:
    receiver, offered = offered_backup(settings, settings.from_host)
    backup, onto_database = offered["backup"], of_database_server(offered)
    servers = [h.name for h in reachable(roles.names)]
    if onto_database and not database_reached:
        raise SettingsRefused(
            f"from_host: backup {backup} of {settings.from_host} is a database server's (its"
            f" database and Redis): restore.py puts it onto the database server, which this"
            " run does not reach: put it in the run (the database_servers group)"
        )
    if not onto_database and len(servers) != 1:
        raise SettingsRefused(
            f"from_host: restore.py restores one app server from {settings.from_host}'s backup"
            f" {backup}, and this run reaches {len(servers)} ({', '.join(servers)}): --limit it"
            " to that server and the backup servers (--limit NAME, once for each)"
        )
    restoring = roles.database_host if onto_database else servers[0]
    if not reachable([receiver.name]):
        raise SettingsRefused(
            f"from_host: {receiver.name} keeps the backup but this run does not reach it: put"
            f" it in the run too (--limit {restoring} --limit {receiver.name})"
        )
    if host.name == restoring:
        hold_deploy_lock()
    if host.name == receiver.name:
        offer_backup(settings, settings.from_host, backup, restoring, roles)
    reached(name=f"Restore: backup {backup} offered by {receiver.name}", step="offered")
    if host.name == restoring:
        fetch = f"Backup {backup} of {settings.app_name} fetched from {receiver.name}"
        address = private_address(receiver)
        backup_fetched(name=fetch, settings=settings, receiver=address, backup=backup)
    reached(name=f"Restore: backup {backup} fetched", step="fetched")
    if host.name == receiver.name:
        withdraw_backups()
shared = database_reached and (onto_database or not settings.from_host)
missed = [name for name in roles.names if not reachable([name])]
if shared and missed:
    raise SettingsRefused(
        f"restore.py restores {settings.app_name}'s database and Redis on"
        f" {roles.database_host} while every app server has the app stopped, and this run"
        f" does not reach {', '.join(missed)}: run it on the whole fleet (an app server that is"
        " gone: take it out of the inventory first)"
    )
app_data = not onto_database  # the app servers restore theirs
serving = roles.database_server if roles.serving_data and shared else ""
database_backup = backup if settings.from_host else settings.database_backup or backup
if ((roles.runs_apps and app_data) or serving) and not settings.from_host:
    wanted = database_backup if serving else backup  # here before anything stops
    kept = [manifest["backup"] for manifest in backups_here(settings)]
    if not kept or wanted not in ("latest", *kept):
        raise SettingsRefused(
            f"{'database_backup' if serving else 'backup'}: {host.name} keeps no backup"
            f" {wanted!r} of {settings.app_name} ({len(kept)} kept; backups.py lists each"
            " host's: on a fleet each host's backups have names of their own, and"
            " database_backup names the database server's)"
        )
if dry_run() and host.name == restoring:
    print(
        f"[{host.name}] would fetch backup {backup} of {settings.from_host} from"
        f" {receiver.name}, restore {settings.app_name} from it, then take a backup of its own"
    )
elif dry_run() and ((roles.runs_apps and app_data) or serving):
    for line in restore_preview(settings, database_backup if serving else backup, serving):
        print(f"[{host.name}] {line}")
elif dry_run() and roles.runs_apps:
    print(f"[{host.name}] would stop {settings.app_name} while its database server restores")
if roles.runs_apps and on_database and not shared and not settings.from_host:
    print(
        f"[{host.name}] {settings.app_name}'s data directory alone: its database and Redis on"
        f" {roles.database_host} are not in this run"
    )
if roles.runs_apps or serving:
    hold_deploy_lock()
if roles.runs_apps:
    units = stopped_for_restore(settings, processes(settings, *processes_here(settings, roles)))
if shared:  # the database server's part, between the app servers' stop and start
    if roles.runs_apps:
        units_switched(name=f"{settings.app_name} stopped", units=units, running=False)
    reached(name=f"Restore: {settings.app_name} stopped on every app server", step="stopped")
    if serving:  # only once the app is stopped on every app server
        backup_restored(
            name=f"Restore {settings.app_name}'s database and Redis from backup {database_backup}",
            settings=settings,
            backup=database_backup,
            units=stopped_for_restore(settings, None),
            serving=serving,
            _if=[no_failed_host],
        )
    reached(name=f"Restore: {settings.app_name}'s database server done", step="data")
if roles.runs_apps and app_data:
    if shared:  # the database server failed: the app as it was
        started = f"{settings.app_name} started again on what it had"
        units_switched(name=started, units=units, running=True, _if=[a_host_failed])
    backup_restored(
        name=f"Restore {settings.app_name} from backup {backup}",
        settings=settings,
        backup=backup,
        units=units,
        _if=[no_failed_host],
    )
elif roles.runs_apps:  # the database server restored from elsewhere: the app on it
    units_switched(name=f"{settings.app_name} started again", units=units, running=True)
if host.name == restoring and settings.backups:  # its own history starts, copied off it
    backup_taken(name=f"Backup of {settings.app_name} as restored", settings=settings)
