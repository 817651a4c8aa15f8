"""Run a one-off command in the live release of every host, exactly like a release command
(the app's user, environment, data directory and sandbox; the release's venv first on PATH;
FLASK_APP set to app_module) and show its output:

    pyinfra -y inventories/<env>.py run.py --data command='flask --app myapp init-db'

``--limit HOST`` picks one host; on a host with several apps, ``--data app=NAME`` the app.
The run fails when the command fails on any host.
"""

from pyinfra import host
from pyinfra.api.exceptions import PyinfraError
from pyinfra.facts.files import Link

from deploys.config.layout import Layout
from deploys.ops.context import SettingsRefused, prepare_host
from deploys.release.gate import app_command
from deploys.release.lock import hold_deploy_lock
from deploys.stack.fleet import fleet

settings = prepare_host(secrets=False).single("run.py")
if not settings.command:
    raise SettingsRefused(
        "command: run.py needs the command to run, e.g. --data command='flask --app myapp init-db'"
    )
if fleet().runs_apps:  # a load balancer or database server runs no app code
    hold_deploy_lock()
    layout = Layout.of(settings)
    if not host.get_fact(Link, path=layout.current):
        raise PyinfraError(f"{host.name}: {layout.current} is missing: deploy the app first")
    app_command(
        name=f"Run in the live release: {settings.command}",
        layout=layout,
        settings=settings,
        command=settings.command,
    )
