"""Put a backup of the app back: ``pyinfra -y INV restore.py --data backup=NAME`` (a name
backups.py lists, or ``latest``; ``--data app=NAME`` on a host with several). The app's
timers, workers, web and Redis stop; its data directory, Redis snapshot and database are
replaced by the backup's (what they replace kept until the restore succeeded, and put back
if it fails); everything starts again and the site must answer its health path through
nginx. With ``--dry``, what it would put back and what it would replace. See
docs/backups.md.
"""

from pyinfra import host

from deploys.ops.context import SettingsRefused, dry_run, prepare_host
from deploys.release.lock import hold_deploy_lock
from deploys.stack.backups import backup_restored, restore_preview, stopped_for_restore
from deploys.stack.fleet import as_served, fleet, processes_here
from deploys.stack.workers import processes

roles = fleet()
settings = as_served(prepare_host(secrets=False), roles).single("restore.py")
if not settings.backup:
    raise SettingsRefused(
        "backup: restore.py needs the backup to put back, e.g. --data backup=latest or"
        " --data backup=20261205T030000Z (backups.py lists them)"
    )
if roles.runs_apps and dry_run():
    for line in restore_preview(settings, settings.backup):
        print(f"[{host.name}] {line}")
if roles.runs_apps:
    hold_deploy_lock()
    units = stopped_for_restore(settings, processes(settings, *processes_here(settings, roles)))
    backup_restored(
        name=f"Restore {settings.app_name} from backup {settings.backup}",
        settings=settings,
        backup=settings.backup,
        units=units,
    )
