"""A load balancer: nginx as a reverse proxy in front of the app servers of the inventory,
one site per app, reloaded only after ``nginx -t`` passes, and its part of each app's
rolling release: each batch checked from here once switched, new app servers put in
rotation only once their app answers."""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator

from pyinfra import host, state
from pyinfra.facts.files import FileContents
from pyinfra.operations import files, server

from deploys.config.fingerprint import release_id
from deploys.config.layout import Layout
from deploys.config.plan import HostPlan
from deploys.config.settings import Settings
from deploys.ops.context import dry_run
from deploys.ops.typed import deploy
from deploys.release.live import current_release
from deploys.stack.fleet import CHECKED, PREPARED, Fleet, Step, no_failed_host, reachable
from deploys.stack.https import prepare_certificates
from deploys.stack.nginx import (
    NginxHost,
    configure_nginx,
    configure_nginx_host,
    nginx_site,
    put_site,
)
from deploys.stack.retire import retired_sites, site_names

DOWN = " (down)"  # how upstream_servers shows a server the site marks down
UPSTREAM_SERVER_RE = re.compile(r"^\s*server\s+(\S+):80\b[^;]*?(\sdown)?;")


def balancer_site(
    settings: Settings,
    servers: tuple[str, ...],
    down: tuple[str, ...] = (),
    certified: list[str] | None = None,
) -> str:
    """The load balancer's site for one app (see nginx_site): its app servers as the
    upstream, those in ``down`` marked down; TLS for the names ``certified``."""
    return nginx_site(settings, certified, servers=servers, down=down)


def switching(settings: Settings, names: tuple[str, ...]) -> bool:
    """Whether any of the app servers ``names`` is about to switch to another release
    (read from those hosts: where their ``current`` points, and the release this run
    ships, the same on every host). Hosts this run could not reach do not switch."""
    wanted = release_id(settings)
    return any(current_release(settings.app_name, server) != wanted for server in reachable(names))


def in_rotation(settings: Settings, fleet: Fleet, retired: tuple[str, ...] = ()) -> list[str]:
    """The app servers (addresses) in rotation for the app before this run, as this load
    balancer's site says: one it marks down or does not list comes in only once checked.
    An app new here that takes over the names of an app in ``retired`` (a rename) starts
    from that app's site: the app servers route by name, so each serves the names with the
    old app until it switches to the new. A server this run reached that has no release of
    either is out; one it could not reach keeps its place."""
    apps = [settings.app_name]
    listed = upstream_servers(settings)
    names = set(settings.server_name)
    takes_over = (n for n in retired if names & set(site_names(Layout(n).site_available)))
    if not listed and (old := next(takes_over, "")):
        apps.append(old)
        listed = _upstream(Layout(old).site_available)
    up = [address for address in listed if not address.endswith(DOWN)]
    reached = reachable(fleet.names)
    return [
        fleet.address(server.name)
        for server in map(state.inventory.get_host, fleet.names)
        if fleet.address(server.name) in up
        and (server not in reached or any(current_release(app, server) for app in apps))
    ]


PROBE_GRACE = 10  # seconds the probe may run past health_timeout, whatever happens
PROBE_SCRIPT = """
import http.client, signal, sys, time
address, path, name, text, who, patience = sys.argv[1:]
deadline = time.monotonic() + int(patience)
def late(*_):
    raise TimeoutError(f"no whole answer within {int(patience) + GRACE} s")
signal.signal(signal.SIGALRM, late)
signal.alarm(int(patience) + GRACE)
def answered():
    try:
        connection = http.client.HTTPConnection(address, timeout=10)
        connection.request("GET", path, headers={"Host": name, "User-Agent": "flask-deploy-check"})
        answer = connection.getresponse()
        body = answer.read(65536).decode("utf-8", "replace")
        if answer.status != 200:
            return f"{answer.status} {answer.reason}"
        return "" if text in body else f"200 {answer.reason} without {text!r}"
    except Exception as error:
        return str(error) or type(error).__name__
while (came := answered()) and time.monotonic() < deadline:
    time.sleep(1)
if came:
    sys.exit(f"{who}: GET http://{address}{path} (Host: {name}) answered {ascii(came)[1:-1]}")
"""


def health_probe(settings: Settings, name: str, address: str) -> str:
    """Shell that fails, in one line naming this load balancer, the app server, the app,
    the URL and what came back, unless the app server at ``address`` answers the health
    path with 200 and the health text within health_timeout, asking again each second, as
    the app server's own gate does. It follows no redirect, reads at most 64 KiB, waits at
    most 10 s for an answer and stops PROBE_GRACE s past health_timeout whatever happens (an app
    server that trickles its answer does not hold up the rollout); it runs as the SSH user
    (it needs no privilege)."""
    who = f"load balancer {host.name}: app {settings.app_name} on app server {name}"
    arguments = (
        address,
        settings.health_path,
        settings.host_header,
        settings.expected_text,
        who,
        str(settings.health_timeout),
    )
    script = PROBE_SCRIPT.replace("GRACE", str(PROBE_GRACE))
    return f"python3 -c {shlex.quote(script)} " + " ".join(map(shlex.quote, arguments))


def balancer_rollout(
    settings: Settings,
    shared: NginxHost,
    fleet: Fleet,
    rollback: bool = False,
    retired: tuple[str, ...] = (),
) -> Iterator[Step]:
    """This load balancer's part of the app's rolling release, step by step (Fleet.steps;
    the caller makes the barrier after each). Prepared (not in a ``rollback``): the app's
    site (``shared``: the host-wide nginx part) routing to the app servers in rotation (see
    in_rotation), the others marked down. Each batch, once switched (a batch that switches
    release, or new to the app; every batch in a rollback), is checked from here through
    its health path; its servers new to the app then come into rotation (a tested reload,
    the only one a rollout makes). A batch found unhealthy is taken out of rotation (unless
    no other server would be left in it) and the rollout stops there: nothing runs once a
    host failed."""
    servers = in_rotation(settings, fleet, retired)
    certified = list(settings.server_name) if settings.https else None

    def rotate(now: list[str], title: str, **condition) -> None:
        site = balancer_site(settings, fleet.app_servers, _out_of_rotation(fleet, now), certified)
        put_site(settings, site, shared, title, **condition)

    for step in fleet.steps():
        if step.kind == PREPARED and not rollback:
            configure_nginx(settings, shared, down=_out_of_rotation(fleet, servers))
        if step.kind == CHECKED:
            batch = fleet.batches[step.batch]
            addresses = [fleet.address(n) for n in batch]
            newcomers = [address for address in addresses if address not in servers]
            if not (rollback or newcomers or switching(settings, batch)):
                yield step
                continue
            checked = server.shell(
                name=f"{', '.join(batch)} healthy from the load balancer",
                commands=[health_probe(settings, n, fleet.address(n)) for n in batch],
                _if=[no_failed_host],
                _sudo=False,
                _ignore_errors=True,  # taken out of rotation below, then the run fails
            )
            others = [address for address in servers if address not in addresses]
            if not dry_run():  # what runs only after a failed check
                if others and set(addresses) & set(servers):
                    title = f"Out of rotation: {', '.join(batch)}:"
                    rotate(others, title, _if=[checked.did_error])
                server.shell(
                    name=f"Rollout of {settings.app_name} stopped: {', '.join(batch)} unhealthy",
                    commands=["false"],
                    _if=[checked.did_error],
                )
            if newcomers:
                servers += newcomers
                rotate(servers, f"In rotation: {', '.join(batch)}:", _if=[no_failed_host])
        yield step


def _out_of_rotation(fleet: Fleet, servers: list[str]) -> tuple[str, ...]:
    """The app servers (addresses) not in ``servers``: marked down in the site."""
    return tuple(address for address in fleet.app_servers if address not in servers)


def upstream_servers(settings: Settings) -> list[str]:
    """The app servers the load balancer's site on the host lists (for the verifier), those
    marked down as ``ADDRESS (down)``: in rotation only once its app answered there."""
    return _upstream(Layout.of(settings).site_available)


def _upstream(site: str) -> list[str]:
    """The app servers the load balancer's ``site`` on the host lists (see upstream_servers)."""
    lines = host.get_fact(FileContents, path=site) or []
    matches = [m for line in lines if (m := UPSTREAM_SERVER_RE.match(line))]
    return [m.group(1) + (DOWN if m.group(2) else "") for m in matches]


@deploy("Load balancer")
def configure_balancer(plan: HostPlan, fleet: Fleet) -> NginxHost:
    """The load balancer's host-wide part: certificates' prerequisites and nginx's
    host-wide files (the apps' sites come with their rollout, balancer_rollout); returns
    the latter for the apps' sites."""
    if plan.https:
        prepare_certificates(plan.host.acme_ca_bundle)
    for app in plan.selected:
        layout = Layout.of(app)
        files.directory(
            name=f"Deploy records {layout.state}", path=layout.state, user="root", mode="700"
        )
    return configure_nginx_host(plan, servers=fleet.app_servers, retired=retired_sites(plan))
