"""Settings for inventories/production.py (copy to group_data/production.py).

Secrets come from the environment of the machine you deploy from (or your secret store),
never from this file; they are written to /etc/<app_name>/env on the host (root:<app> 0640)
and kept out of pyinfra's logs and diffs; env_secret also masks them in ``--debug`` output.
A secret that is not set stops the run before any host is touched. (pyinfra reads every file
in group_data/, so nothing here may fail on import.)
"""

import os

from deploys.config.secrets import env_secret

server_name = os.environ.get("DEPLOY_SERVER_NAME", "_")
processes = 4
env = {"FLASK_SECRET_KEY": env_secret("FLASK_SECRET_KEY")}
