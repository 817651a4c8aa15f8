"""Take a backup of the app now: ``pyinfra -y INV backup.py`` (``--data app=NAME`` on a host
with several). The same backup its timer takes (docs/backups.md): a new folder under
/var/backups/flask-deploy/<app>/ with the data directory, the database and the Redis
snapshot, and a manifest; the oldest beyond ``backup_keep`` removed once it succeeded.
"""

from deploys.ops.context import SettingsRefused, prepare_host
from deploys.stack.backups import backup_taken
from deploys.stack.fleet import fleet

settings = prepare_host(secrets=False).single("backup.py")
if fleet().runs_apps:  # a load balancer or database server holds none of the app's files
    if not settings.backups:
        raise SettingsRefused(
            f"backups: {settings.app_name} takes no backups: set backups = true and deploy"
        )
    backup_taken(name=f"Backup of {settings.app_name}", settings=settings)
