"""Apps leaving a host: those in ``retired_apps`` are stopped, disabled and taken off nginx
(their data, releases, settings and certificate stay: nothing is deleted); apps found on the
host but in neither ``apps`` nor ``retired_apps`` are left running, and the run says so. On a
load balancer a retired app's site is taken off (its certificate stays, as on a server)."""

from __future__ import annotations

import re
import shlex

from pyinfra import host, logger
from pyinfra.api import FactBase
from pyinfra.facts.files import FileContents

from deploys.config.layout import Layout
from deploys.config.plan import HostPlan
from deploys.ops.context import SettingsRefused
from deploys.ops.nginxchange import nginx_change
from deploys.ops.typed import deploy
from deploys.ops.units import unit_state
from deploys.stack.nginx import is_default_server
from deploys.stack.workers import NO_PROCESSES, processes_removed

SERVER_NAME_RE = re.compile(r"^\s*server_name\s+([^;]+);")

# The first lines of what we write name the modules that wrote them before deploys/ had
# layers: kept as they were, since they mark our files on hosts (and a changed unit or site
# would restart or reload it for nothing).
SERVICE_HEADER = (  # the first line of templates/app.service.j2
    "# Managed by pyinfra (deploys/appservice.py): edits here are undone by the next deploy."
)
SITE_HEADER = (  # the first line of templates/nginx-site.conf.j2
    "# Managed by pyinfra (deploys/nginx.py): edits here are undone by the next deploy."
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


def retiring(plan: HostPlan) -> tuple[str, ...]:
    """The apps of ``retired_apps`` that this deploy put on the host (the others are left
    alone: they may be another service, ``ssh``)."""
    hosted = host.get_fact(HostedApps)
    return tuple(name for name in plan.retired if name in hosted)


def own_site(name: str) -> bool | None:
    """Whether the nginx site of the app ``name`` on the host is one this deploy wrote
    (None: there is none)."""
    lines = host.get_fact(FileContents, path=Layout(name).site_available)
    return None if lines is None else lines[:1] == [SITE_HEADER]


def retired_sites(plan: HostPlan) -> tuple[str, ...]:
    """On a load balancer (no app runs there): the apps of ``retired_apps`` whose site this
    deploy wrote on the host, for the run's first site change to take off
    (configure_nginx_host's ``retired``). A site of that name this deploy did not write is
    left alone, and the run says so; a name with no site here needs nothing (retired by an
    earlier run)."""
    for name in plan.retired:
        if own_site(name) is False:
            host.log(
                f"retired_apps: the nginx site {Layout(name).site_available} was not written"
                " by this deploy: left as it is",
                log_func=logger.warning,
            )
    return tuple(name for name in plan.retired if own_site(name))


@deploy("Retired apps")
def retire_apps(plan: HostPlan):
    """Take each retired app's site off nginx (tested reload; the first app's site change
    of the run already did, so that its names were free for the new apps), then stop and
    disable its socket, service and Redis. Its data directory, releases, environment,
    certificate, database and Redis data are kept. A name that is no app of ours on this
    host is left alone, and the run says so."""
    on_host = retiring(plan)
    for name in plan.retired:
        if name not in on_host:
            host.log(
                f"retired_apps: no app {name} was deployed on this host: nothing to retire"
                " (a typo?)",
                log_func=logger.warning,
            )
            continue
        layout = Layout(name)
        nginx_change(
            name=f"Retired {name}: its site off nginx",
            files={layout.site_available: None},
            links={layout.site_enabled: None},
        )
        for unit in (layout.socket_unit_name, layout.unit_name):
            unit_state(
                name=f"Retired {name}: {unit} stopped and disabled",
                unit=unit,
                running=False,
                enabled=False,
                along=layout.units_read_together,
            )
        unit_state(
            name=f"Retired {name}: its Redis stopped and disabled (its data kept)",
            unit=layout.redis_unit_name,
            running=False,
            enabled=False,
        )
        unit_state(
            name=f"Retired {name}: {layout.handover_unit_name} stopped",
            unit=layout.handover_unit_name,
            running=False,
            along=layout.units_read_together,
        )
        processes_removed(
            name=f"Retired {name}: its workers and timers stopped and removed",
            app=name,
            wanted=NO_PROCESSES,
        )


def unlisted_apps(plan: HostPlan) -> dict[str, str]:
    """The apps on the host that the settings neither list nor retire, with their state."""
    listed = {app.app_name for app in plan.apps} | set(plan.retired)
    return {name: state for name, state in host.get_fact(HostedApps).items() if name not in listed}


def site_names(site: str) -> list[str]:
    """The names an nginx site answers for (its server_name directives)."""
    lines = host.get_fact(FileContents, path=site) or []
    return [n for line in lines if (m := SERVER_NAME_RE.match(line)) for n in m.group(1).split()]


def report_unlisted_apps(plan: HostPlan) -> list[str]:
    """Say which apps on the host the settings no longer list (they are left as they are);
    refuse, before anything changes, a listed app's server_name that one of them still
    serves (nginx would keep giving it to the old app) and one of them that is the default
    server (every host needs the default: a listed app or the catch-all). Returns their
    names."""
    unlisted = unlisted_apps(plan)
    claimed = {name: app.app_name for app in plan.apps for name in app.server_name if name != "_"}
    defaults = [app.app_name for app in plan.apps if app.default_server]
    clashes = [
        f"server_name: {name!r} of {claimed[name]} is still served by {old}, which is on"
        f" {host.name} but not in apps: add {old} to retired_apps (or give it back the name)"
        for old in unlisted
        for name in site_names(Layout(old).site_enabled)
        if name in claimed
    ]
    clashes += [
        f"retired_apps: {old} is on {host.name}, not in apps, and is the default server"
        " (answers any host name): nginx cannot have two, and this run needs the default for"
        + (f" {defaults[0]}" if defaults else " its catch-all (closing unknown names)")
        + f": add {old} to retired_apps, or list it in apps"
        for old in unlisted
        if is_default_server(Layout(old).site_enabled)
    ]
    if clashes:
        raise SettingsRefused("invalid settings:\n  " + "\n  ".join(clashes))
    for name, state in unlisted.items():
        host.log(
            f"app {name} is on this host ({state}) but not in apps: left as it is;"
            f" add it to retired_apps to stop it and take it off nginx",
            log_func=logger.warning,
        )
    return sorted(unlisted)
