"""Take a backup of the app now: ``pyinfra -y INV backup.py`` (``--data app=NAME`` on a host
with several). The same backup its timer takes (docs/backups.md): a new folder under
/var/backups/flask-deploy/<app>/ with the data directory, the database and the Redis
snapshot, and a manifest; the oldest beyond ``backup_keep`` removed once it succeeded. On a
fleet, each app server backs up its data directory, the database server the app's database
and Redis there.
"""

from deploys.ops.context import SettingsRefused, prepare_host
from deploys.stack.backups import backup_taken
from deploys.stack.fleet import as_served, fleet

roles = fleet()
settings = as_served(prepare_host(secrets=False), roles).single("backup.py")
if roles.backs_up(settings):
    if not settings.backups:
        raise SettingsRefused(
            f"backups: {settings.app_name} takes no backups: set backups = true and deploy"
        )
    backup_taken(name=f"Backup of {settings.app_name}", settings=settings)
