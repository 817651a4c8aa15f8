"""A load balancer: nginx as a reverse proxy in front of the app servers of the inventory,
one site per app, reloaded only after ``nginx -t`` passes."""

from __future__ import annotations

import re

from pyinfra import host
from pyinfra.api import deploy
from pyinfra.facts.files import FileContents
from pyinfra.operations import files, server, systemd
from pyinfra.operations.util import any_changed

from deploys.fleet import Fleet
from deploys.layout import Layout
from deploys.nginx import configure_nginx_host, enable_catch_all, tested_reload
from deploys.plan import HostPlan
from deploys.render import put_text, render
from deploys.settings import Settings

UPSTREAM_SERVER_RE = re.compile(r"^\s*server\s+(\S+):80\b")


def balancer_site(settings: Settings, servers: tuple[str, ...]) -> str:
    """The load balancer's site for one app: its app servers as the upstream."""
    return render(
        "nginx-balancer.conf.j2", s=settings, servers=servers, upstream=f"{settings.app_name}_app"
    )


def upstream_servers(settings: Settings) -> list[str]:
    """The app servers the load balancer's site on the host lists (for the verifier)."""
    lines = host.get_fact(FileContents, path=Layout.of(settings).site_available) or []
    return [m.group(1) for line in lines if (m := UPSTREAM_SERVER_RE.match(line))]


@deploy("Load balancer")
def configure_balancer(plan: HostPlan, fleet: Fleet):
    """Each app's site proxying to every app server of the inventory, the host-wide
    catch-all, nginx enabled; a tested reload when anything changed."""
    shared = configure_nginx_host(plan)
    changes = list(shared.operations)
    for app in plan.selected:
        layout = Layout.of(app)
        changes.append(
            put_text(
                f"Site {layout.site_available}: {len(fleet.app_servers)} app servers",
                balancer_site(app, fleet.app_servers),
                layout.site_available,
            )
        )
        changes.append(
            files.link(
                name=f"Enable {layout.site_enabled}",
                path=layout.site_enabled,
                target=layout.site_available,
            )
        )
    server.shell(
        name="Test and reload nginx", commands=tested_reload(None), _if=any_changed(*changes)
    )
    enable_catch_all(shared)
    systemd.service(
        name="nginx enabled and running", service="nginx.service", running=True, enabled=True
    )
