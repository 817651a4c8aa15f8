"""A load balancer: nginx as a reverse proxy in front of the app servers of the inventory,
one site per app, reloaded only after ``nginx -t`` passes."""

from __future__ import annotations

import re
import shlex

from pyinfra import host, state
from pyinfra.api import deploy
from pyinfra.facts.files import FileContents, Link
from pyinfra.operations import files, server

from deploys.context import in_turn
from deploys.fleet import DRAIN, RESTORE, Fleet, no_failed_host, turn
from deploys.https import prepare_certificates
from deploys.layout import Layout
from deploys.nginx import configure_nginx, configure_nginx_host, nginx_site
from deploys.nginxchange import nginx_change
from deploys.plan import HostPlan
from deploys.release import release_id
from deploys.settings import Settings

UPSTREAM_SERVER_RE = re.compile(r"^\s*server\s+(\S+):80\b")


def balancer_site(
    settings: Settings,
    servers: tuple[str, ...],
    drained: tuple[str, ...] = (),
    certified: list[str] | None = None,
) -> str:
    """The load balancer's site for one app (see nginx_site): its app servers as the
    upstream, those ``drained`` marked down; TLS for the names ``certified``."""
    return nginx_site(settings, certified, servers=servers, drained=drained)


def switching(settings: Settings, names: tuple[str, ...]) -> bool:
    """Whether any of the app servers ``names`` is about to switch to another release
    (read from those hosts: where their ``current`` points, and the release this run
    ships, the same on every host). Hosts this run could not reach do not switch."""
    layout = Layout.of(settings)
    wanted = layout.release(release_id(settings))
    reachable = [h for h in map(state.inventory.get_host, names) if h in state.active_hosts]
    return any(
        (server_host.get_fact(Link, path=layout.current) or {}).get("link_target") != wanted
        for server_host in reachable
    )


def health_probe(settings: Settings, address: str) -> str:
    """Shell that fails unless the app server at ``address`` answers the health path."""
    script = (
        "import sys, urllib.request; request = urllib.request.Request(sys.argv[1],"
        " headers={'Host': sys.argv[2]}); sys.exit(urllib.request.urlopen(request,"
        " timeout=10).status != 200)"
    )
    url = f"http://{address}{settings.health_path}"
    return (
        f"python3 -c {shlex.quote(script)} {shlex.quote(url)} {shlex.quote(settings.host_header)}"
    )


@deploy("Rolling release")
def roll_batches(settings: Settings, fleet: Fleet, every_batch: bool = False):
    """For each batch of app servers that switches release in this run (``every_batch``: a
    rollback, where each does): before its switch, mark it down here (new requests go to
    the others); after it, check each of its servers answers the health path from here,
    then put it back. Never drains every app server."""
    layout = Layout.of(settings)
    # the certificate is there by now: configure_balancer got it, or this host failed
    certified = list(settings.server_name) if settings.https else None
    for number, batch in enumerate(fleet.batches):
        if len(batch) == len(fleet.names) or not (every_batch or switching(settings, batch)):
            continue
        addresses = tuple(fleet.address(name) for name in batch)
        with in_turn(turn(number, DRAIN)):
            nginx_change(
                name=f"Drain {', '.join(batch)}: test and reload nginx",
                files={
                    layout.site_available: balancer_site(
                        settings, fleet.app_servers, addresses, certified
                    )
                },
                _if=[no_failed_host],
            )
        with in_turn(turn(number, RESTORE)):
            server.shell(
                name=f"{', '.join(batch)} healthy from the load balancer",
                commands=[health_probe(settings, address) for address in addresses],
            )
            nginx_change(
                name=f"Back in rotation: {', '.join(batch)}: test and reload nginx",
                files={
                    layout.site_available: balancer_site(settings, fleet.app_servers, (), certified)
                },
            )


def upstream_servers(settings: Settings) -> list[str]:
    """The app servers the load balancer's site on the host lists (for the verifier)."""
    lines = host.get_fact(FileContents, path=Layout.of(settings).site_available) or []
    return [m.group(1) for line in lines if (m := UPSTREAM_SERVER_RE.match(line))]


@deploy("Load balancer")
def configure_balancer(plan: HostPlan, fleet: Fleet):
    """Each app's site proxying to every app server of the inventory (with HTTPS: its
    certificate, as on a single server), the host-wide catch-all, nginx enabled; a tested
    reload when anything changed. Then, app by app, the rolling release's steps here
    (roll_batches)."""
    if plan.https:
        prepare_certificates(plan.host.acme_ca_bundle)
    shared = configure_nginx_host(plan, servers=fleet.app_servers)
    for app in plan.selected:
        layout = Layout.of(app)
        files.directory(
            name=f"Deploy records {layout.state}", path=layout.state, user="root", mode="700"
        )
        configure_nginx(app, shared)
    for position, app in enumerate(plan.selected, start=1):  # as the app servers do
        with in_turn(position):
            roll_batches(app, fleet)
