"""A real server. Copy to inventories/production.py and adjust.

    DEPLOY_HOST=203.0.113.10 DEPLOY_USER=admin pyinfra inventories/production.py deploy.py

The SSH user needs passwordless sudo (or is root). Settings for this environment go in
inventories/group_data/production.py (the group is named after this file).
"""

import os

host = os.environ.get("DEPLOY_HOST")
if not host:
    raise SystemExit("set DEPLOY_HOST to the server's address or DNS name")

hosts = [
    (
        host,
        {
            "ssh_user": os.environ.get("DEPLOY_USER", "root"),
            "ssh_port": int(os.environ.get("DEPLOY_SSH_PORT", "22")),
            # "ssh_key": "~/.ssh/id_ed25519",
        },
    )
]
