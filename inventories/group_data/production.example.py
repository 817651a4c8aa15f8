"""Settings for inventories/production.py (copy to group_data/production.py)."""

import os

server_name = os.environ.get("DEPLOY_SERVER_NAME", "_")
processes = 4
env = {"FLASK_SECRET_KEY": os.environ.get("FLASK_SECRET_KEY", "change-me")}
