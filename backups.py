"""List the app's backups on every host: ``pyinfra -y INV backups.py`` (``--data app=NAME``
on a host with several): each backup's name (its UTC time), size, parts and the release that
was live when it was taken, oldest first (on a fleet's database server, those of the app's
database and Redis there); on a backup server, those it keeps of each app server and the
database server (``--data from_host=OLD``: of an app server no longer in the inventory,
too).
"""

from pyinfra import host

from deploys.ops.context import prepare_host
from deploys.stack.backup_server import kept_on
from deploys.stack.backups import backups_here
from deploys.stack.fleet import as_served, fleet

roles = fleet()
settings = as_served(prepare_host(secrets=False), roles).single("backups.py")
if roles.backs_up(settings):
    listed = {host.name: backups_here(settings)}
elif roles.receiving_backups:
    app, gone = settings.app_name, [settings.from_host] if settings.from_host else []
    servers = [n for n in roles.backed_up if roles.backs_up(settings, n)]
    servers = [*dict.fromkeys([*servers, *gone])]
    listed = {f"{host.name}, from {n}": kept_on(host.name, n, app) for n in servers}
else:
    listed = {}
for where, found in listed.items():
    count = f"{len(found)} backup{'' if len(found) == 1 else 's'}"
    print(f"--- {where}: {count} of {settings.app_name} ---")
    for manifest in found:
        size = sum(part["size"] for part in manifest["parts"])
        parts = ", ".join(part["name"] for part in manifest["parts"])
        release = f"  release {manifest['release']}" if manifest["release"] else ""
        print(f"{manifest['backup']}  {size:>12} bytes  {parts}{release}")
