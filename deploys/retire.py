"""Apps leaving a host: those in ``retired_apps`` are stopped, disabled and taken off nginx
(their data, releases, settings and certificate stay: nothing is deleted); apps found on the
host but in neither ``apps`` nor ``retired_apps`` are left running, and the run says so."""

from __future__ import annotations

import shlex

from pyinfra import host, logger
from pyinfra.api import FactBase, deploy
from pyinfra.operations import files, server, systemd
from pyinfra.operations.util import any_changed

from deploys.layout import Layout
from deploys.nginx import tested_reload
from deploys.plan import HostPlan

SERVICE_HEADER = (  # the first line of templates/app.service.j2
    "# Managed by pyinfra (deploys/appservice.py): edits here are undone by the next deploy."
)


class HostedApps(FactBase):
    """The apps whose uWSGI service this deploy wrote on the host, each with the service's
    state: ``{"blog": "active", "old": "inactive"}``."""

    def command(self) -> str:
        return (
            f"for unit in $(grep -l -x -F {shlex.quote(SERVICE_HEADER)}"
            " /etc/systemd/system/*.service 2>/dev/null); do"
            " name=${unit##*/}; name=${name%.service};"
            ' echo "$name $(systemctl is-active "$name.service")"; done'
        )

    default = dict

    def process(self, output):
        return dict(line.split(maxsplit=1) for line in output if len(line.split()) == 2)


@deploy("Retired apps")
def retire_apps(plan: HostPlan):
    """Stop and disable each retired app's socket and service, disable and remove its nginx
    site (nginx reloaded after ``nginx -t``). Its data directory, releases, environment and
    certificate are kept."""
    for name in plan.retired:
        layout = Layout(name)
        for unit in (layout.socket_unit_name, layout.unit_name):
            systemd.service(
                name=f"Retired {name}: {unit} stopped and disabled",
                service=unit,
                running=False,
                enabled=False,
            )
        off = files.link(
            name=f"Retired {name}: no {layout.site_enabled}",
            path=layout.site_enabled,
            present=False,
        )
        gone = files.file(
            name=f"Retired {name}: no {layout.site_available}",
            path=layout.site_available,
            present=False,
        )
        server.shell(
            name=f"Retired {name}: test and reload nginx",
            commands=tested_reload(None),
            _if=any_changed(off, gone),
        )


def report_unlisted_apps(plan: HostPlan) -> list[str]:
    """Say which apps run on the host that the settings no longer list (they are left as
    they are); returns their names."""
    listed = {app.app_name for app in plan.apps} | set(plan.retired)
    hosted = host.get_fact(HostedApps)
    unlisted = sorted(set(hosted) - listed)
    for name in unlisted:
        host.log(
            f"app {name} is on this host ({hosted[name]}) but not in apps: left as it is;"
            f" add it to retired_apps to stop it and take it off nginx",
            log_func=logger.warning,
        )
    return unlisted
