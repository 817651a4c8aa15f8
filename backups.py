"""List the app's backups on every host: ``pyinfra -y INV backups.py`` (``--data app=NAME``
on a host with several): each backup's name (its UTC time), size, parts and the release that
was live when it was taken, oldest first.
"""

from pyinfra import host

from deploys.ops.context import prepare_host
from deploys.stack.backups import backups_here
from deploys.stack.fleet import fleet

settings = prepare_host(secrets=False).single("backups.py")
if fleet().runs_apps:
    found = backups_here(settings)
    print(f"--- {host.name}: {len(found)} backups of {settings.app_name} ---")
    for manifest in found:
        size = sum(part["size"] for part in manifest["parts"])
        parts = ", ".join(part["name"] for part in manifest["parts"])
        print(f"{manifest['backup']}  {size:>12} bytes  {parts}  release {manifest['release']}")
