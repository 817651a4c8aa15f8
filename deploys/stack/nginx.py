"""Nginx: a server block per app, reloaded only after ``nginx -t`` passes; host-wide, a
catch-all that closes requests for host names no app serves, and the TLS settings."""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace

from pyinfra import host
from pyinfra.facts.files import FileContents

from deploys.config.fingerprint import digest
from deploys.config.layout import NGINX_UNIT, Layout
from deploys.config.plan import HostPlan
from deploys.config.settings import Settings
from deploys.ops.fileops import private_log
from deploys.ops.nginxchange import nginx_change
from deploys.ops.render import FILES, render
from deploys.ops.stamps import file_hashes
from deploys.ops.typed import deploy
from deploys.ops.units import unit_state
from deploys.stack.https import ACME_WEBROOT, certificate, covers, request_certificate

DEFAULT_SITE = "/etc/nginx/sites-enabled/default"
CATCH_ALL = "/etc/nginx/sites-available/flask-deploy-catch-all"
CATCH_ALL_ENABLED = "/etc/nginx/sites-enabled/flask-deploy-catch-all"
OLD_HARDENING = "/etc/nginx/conf.d/flask-deploy.conf"  # server_tokens moved into each server:
# http-level it clashes with Debian 13's nginx.conf, which sets it already
TLS_SETTINGS = "/etc/nginx/snippets/flask-deploy-tls.conf"
FORGED_HEADERS = (  # forwarding headers only nginx may set; a client's are dropped
    "X-Real-IP",
    "Forwarded",
    "X-Forwarded-Host",
    "X-Forwarded-Port",
    "X-Forwarded-Prefix",
)
DEFAULT_LISTEN_RE = re.compile(r"^\s*listen\s+(?:\[::\]:)?80\s+default_server\b")


def nginx_site(
    settings: Settings,
    certified: list[str] | None = None,
    proxies: tuple[str, ...] = (),
    servers: tuple[str, ...] = (),
    down: tuple[str, ...] = (),
) -> str:
    """The server block text; with server_name ``_`` it is the default server. With HTTPS,
    ``certified`` are the names the certificate on the host covers (None: no certificate
    yet, so the site serves HTTP and the ACME challenge): those are served over TLS with a
    redirect from HTTP; names it does not cover yet get only the challenge, until it does.
    On an app server, ``proxies``: the load balancers, trusted for the client's address and
    scheme; without them the scheme is nginx's own (a client's X-Forwarded-Proto would make
    uWSGI tell the app a plain request came over HTTPS). On a load balancer, ``servers``: the
    app servers it proxies to, those in ``down`` marked down (not serving the app yet: no
    request goes there)."""
    certified_names = set(certified or [])
    return render(
        "nginx-site.conf.j2",
        s=settings,
        layout=Layout.of(settings),
        default_server=settings.default_server,
        tls_names=[n for n in settings.server_name if n in certified_names],
        waiting_names=[n for n in settings.server_name if certified and n not in certified_names],
        acme_webroot=ACME_WEBROOT,
        tls_settings=TLS_SETTINGS,
        trusted_proxies=proxies,
        scheme_var=(
            f"$flask_deploy_scheme_{settings.app_name.replace('-', '_')}" if proxies else "$scheme"
        ),
        servers=servers,
        down=down,
        upstream=f"{settings.app_name}_app",
        log_format=f"flask_deploy_{settings.app_name}",
        forged_headers=FORGED_HEADERS,
    )


@dataclass(frozen=True)
class NginxHost:
    """nginx's host-wide part, shared by every app and applied with each app's site: its
    files (path -> text, None for none), links (path -> target, None for none: the
    catch-all, Debian's default site, retired apps' sites) and, on the way, other listed
    apps' sites that must change with any site (path -> text: an app still the default
    server on disk that no longer is, which would clash with the new default)."""

    files: dict[str, str | None]
    links: dict[str, str | None]
    catch_all: bool
    proxies: tuple[str, ...] = ()  # the load balancers in front of this app server
    servers: tuple[str, ...] = ()  # on a load balancer: the app servers behind it
    others: dict[str, str] = field(default_factory=dict)
    # until the new default app's site is live, the catch-all keeps closing unknown names:
    # the host-wide files and links the sites of ``interim_apps`` go live with
    interim: tuple[dict, dict] | None = None
    interim_apps: frozenset[str] = frozenset()

    def for_app(self, app_name: str) -> tuple[dict, dict]:
        """The host-wide files and links that go live with ``app_name``'s site."""
        if self.interim and app_name in self.interim_apps:
            return self.interim
        return self.files, self.links


def nginx_host(
    plan: HostPlan, retired: tuple[str, ...] = (), default_live: bool = True
) -> NginxHost:
    """The host-wide files and links for the host's apps, without the sites of ``retired``
    apps. The catch-all closes plain HTTP for unknown names unless an app answers any name,
    and refuses TLS handshakes for unknown names whenever an app serves HTTPS (the default
    app never does). Without TLS and with a default app it is not enabled (its text stays
    as it always was). ``default_live`` False: as it must stay until the default app's own
    site is live."""
    default = plan.default_server and default_live
    catch_all = not default or plan.https
    retired_paths = [Layout(name) for name in retired]
    return NginxHost(
        files={
            CATCH_ALL: render(
                "nginx-catch-all.conf.j2",
                http=not (default and plan.https),  # unused without TLS
                tls=plan.https,
                tls_settings=TLS_SETTINGS,
            ),
            TLS_SETTINGS: (FILES / "nginx-tls.conf").read_text(),
            OLD_HARDENING: None,
            **{layout.site_available: None for layout in retired_paths},
        },
        links={
            DEFAULT_SITE: None,
            CATCH_ALL_ENABLED: CATCH_ALL if catch_all else None,
            **{layout.site_enabled: None for layout in retired_paths},
        },
        catch_all=catch_all,
    )


def is_default_server(site: str) -> bool:
    """Whether the nginx site at ``site`` on the host answers any host name on port 80."""
    lines = host.get_fact(FileContents, path=site) or []
    return any(DEFAULT_LISTEN_RE.match(line) for line in lines)


def served_site(settings: Settings, shared: NginxHost, down: tuple[str, ...] = ()) -> str:
    """The app's site as it can serve now: with HTTPS, TLS for the names the certificate on
    the host covers (none yet: plain HTTP and the challenge, see nginx_site); on a load
    balancer the app servers in ``down`` marked down."""
    cert = certificate(settings) if settings.https else None
    names = cert["names"] if cert else None
    return nginx_site(settings, names, shared.proxies, shared.servers, down)


def configure_nginx_host(
    plan: HostPlan,
    proxies: tuple[str, ...] = (),
    servers: tuple[str, ...] = (),
    retired: tuple[str, ...] = (),
) -> NginxHost:
    """What every nginx change of this run applies along with its own (see NginxHost):
    the host-wide files and links, ``retired`` apps' sites gone (their names are free for
    the new apps of the same run), and the site of any listed app that is the default
    server on disk but no longer in the settings, so that no step has two default servers.
    While the new default app's site is not live yet, the apps before it go live with the
    catch-all still closing unknown names (``interim``): if that app then fails, no
    forged Host header reaches another app. ``proxies``: the load balancers in front of
    this app server; ``servers``: on a load balancer, the app servers behind it."""
    wanted = nginx_host(plan, retired)
    shared = NginxHost(wanted.files, wanted.links, wanted.catch_all, proxies, servers)
    others = {
        Layout.of(app).site_available: served_site(app, shared)
        for app in plan.apps
        if not app.default_server and is_default_server(Layout.of(app).site_enabled)
    }
    default = next((app for app in plan.apps if app.default_server), None)
    if default is None or is_default_server(Layout.of(default).site_enabled):
        return replace(shared, others=others)
    before = nginx_host(plan, retired, default_live=False)  # a later app may fail first
    names = [app.app_name for app in plan.selected]
    first = names.index(default.app_name) if default.app_name in names else len(names)
    return replace(
        shared,
        others=others,
        interim=(before.files, before.links),
        interim_apps=frozenset(names[:first]),
    )


def put_site(
    settings: Settings, site: str, shared: NginxHost, title: str = "Site", **condition
) -> None:
    """Put and enable the app's ``site`` and apply it with the host-wide changes (one
    nginx_change, named ``title``); ``condition``: pyinfra's ``_if`` (the pass after
    certbot got a certificate; a rollout's step)."""
    layout = Layout.of(settings)
    host_files, host_links = shared.for_app(settings.app_name)
    applied = {layout.site_available: site, **{p: t for p, t in shared.files.items() if t}}
    nginx_change(
        name=f"{title} {layout.site_available}: test and reload nginx",
        files={**host_files, **shared.others, layout.site_available: site},
        links={**host_links, layout.site_enabled: layout.site_available},
        stamps={
            layout.stamp("nginx"): {
                "reload": digest(*applied.values(), str(not shared.catch_all)),
                "files": file_hashes(applied),
            }
        },
        **condition,
    )


@deploy("Nginx site")
def configure_nginx(settings: Settings, shared: NginxHost, down: tuple[str, ...] = ()):
    """Write and enable the app's site with the host-wide part (``shared``, see
    configure_nginx_host), tested and reloaded as one change. With HTTPS: until the
    certificate covers every name the site serves what it served before plus the ACME
    challenge; once certbot has it (in this run or an earlier one), TLS with a redirect
    from HTTP. On a load balancer the app servers in ``down`` are marked down. The site's
    logs (on a load balancer its access log too) are made private before nginx first opens
    them."""
    cert = certificate(settings) if settings.https else None
    layout = Layout.of(settings)
    # the site's own logs hold client data (URLs, tokens in them, addresses); a load
    # balancer's site has an access log of its own
    logs = {"Error": layout.site_error_log}
    if shared.servers:
        logs["Access"] = layout.site_access_log
    for kind, log in logs.items():
        private_log(name=f"{kind} log {log} (not world-readable)", path=log)
    put_site(settings, served_site(settings, shared, down), shared)
    if settings.https:
        issued = request_certificate(settings)  # asks only when cert does not cover the names
        if not covers(cert, settings):
            put_site(
                settings,
                nginx_site(settings, settings.server_name, shared.proxies, shared.servers, down),
                shared,
                "Site with the new certificate",
                _if=issued.did_change,
            )
    unit_state(
        name="nginx enabled and running",
        unit=NGINX_UNIT,
        running=True,
        enabled=True,
        along=Layout.of(settings).units_read_together,
    )
