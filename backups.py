"""List the app's backups on every host: ``pyinfra -y INV backups.py`` (``--data app=NAME``
on a host with several): each backup's name (its UTC time), size, parts and the release that
was live when it was taken, oldest first; on a backup server, those it keeps of each app
server.
"""

from pyinfra import host

from deploys.ops.context import prepare_host
from deploys.stack.backup_server import kept_on
from deploys.stack.backups import backups_here
from deploys.stack.fleet import fleet

roles = fleet()
settings = prepare_host(secrets=False).single("backups.py")
if roles.runs_apps:
    listed = {host.name: backups_here(settings)}
elif roles.receiving_backups:
    app = settings.app_name
    listed = {f"{host.name}, from {n}": kept_on(host.name, n, app) for n in roles.names}
else:
    listed = {}
for where, found in listed.items():
    print(f"--- {where}: {len(found)} backups of {settings.app_name} ---")
    for manifest in found:
        size = sum(part["size"] for part in manifest["parts"])
        parts = ", ".join(part["name"] for part in manifest["parts"])
        print(f"{manifest['backup']}  {size:>12} bytes  {parts}  release {manifest['release']}")
