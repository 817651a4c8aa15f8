"""Nginx: a server block per app, reloaded only after ``nginx -t`` passes; host-wide, a
catch-all that closes requests for host names no app serves, and the TLS settings."""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from pyinfra.api import deploy
from pyinfra.api.operation import OperationMeta
from pyinfra.operations import files, server

from deploys.https import ACME_WEBROOT, certificate, covers, request_certificate
from deploys.layout import NGINX_UNIT, Layout
from deploys.plan import HostPlan
from deploys.render import FILES, digest, put_text, render
from deploys.settings import Settings
from deploys.stamps import Level, changes_applied
from deploys.units import unit_state

DEFAULT_SITE = "/etc/nginx/sites-enabled/default"
CATCH_ALL = "/etc/nginx/sites-available/flask-deploy-catch-all"
CATCH_ALL_ENABLED = "/etc/nginx/sites-enabled/flask-deploy-catch-all"
OLD_HARDENING = "/etc/nginx/conf.d/flask-deploy.conf"  # server_tokens moved into each server:
# http-level it clashes with Debian 13's nginx.conf, which sets it already
TLS_SETTINGS = "/etc/nginx/snippets/flask-deploy-tls.conf"
RELOAD = "systemctl reload-or-restart nginx"


def nginx_site(
    settings: Settings,
    certified: list[str] | None = None,
    proxies: tuple[str, ...] = (),
    servers: tuple[str, ...] = (),
    drained: tuple[str, ...] = (),
) -> str:
    """The server block text; with server_name ``_`` it is the default server. With HTTPS,
    ``certified`` are the names the certificate on the host covers (None: no certificate
    yet, so the site serves HTTP and the ACME challenge): those are served over TLS with a
    redirect from HTTP; names it does not cover yet get only the challenge, until it does.
    On an app server, ``proxies``: the load balancers, trusted for the client's address and
    scheme; without them the scheme is nginx's own (a client's X-Forwarded-Proto would make
    uWSGI tell the app a plain request came over HTTPS). On a load balancer, ``servers``: the
    app servers it proxies to, those ``drained`` marked down (no new requests; in-flight
    ones finish on nginx's old workers)."""
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
        drained=drained,
        upstream=f"{settings.app_name}_app",
    )


@dataclass(frozen=True)
class NginxHost:
    """nginx's host-wide part, shared by every app: its files (path -> text), whether the
    catch-all is on and the operations that put them (but the catch-all's enabling)."""

    files: dict[str, str]
    catch_all: bool
    operations: tuple[OperationMeta, ...] = ()
    proxies: tuple[str, ...] = ()  # the load balancers in front of this app server
    servers: tuple[str, ...] = ()  # on a load balancer: the app servers behind it


def nginx_host(plan: HostPlan) -> NginxHost:
    """The host-wide files for the host's apps. The catch-all closes plain HTTP for unknown
    names unless an app answers any name, and refuses TLS handshakes for unknown names
    whenever an app serves HTTPS (the default app never does). Without TLS and with a
    default app it is not enabled (its text stays as it always was)."""
    return NginxHost(
        files={
            CATCH_ALL: render(
                "nginx-catch-all.conf.j2",
                http=not (plan.default_server and plan.https),  # unused without TLS
                tls=plan.https,
                tls_settings=TLS_SETTINGS,
            ),
            TLS_SETTINGS: (FILES / "nginx-tls.conf").read_text(),
        },
        catch_all=not plan.default_server or plan.https,
    )


def tested_reload(layout: Layout | None) -> list[str]:
    """Commands that reload nginx only if ``nginx -t`` passes. On failure the last good site
    of ``layout``'s app is put back (or, before any went live, the site disabled) so that no
    later restart or reboot picks up the broken file, and the run fails with nginx's own
    message. ``layout`` None: no site to put back (host-wide changes)."""
    if layout is None:
        return [f"nginx -t && {RELOAD}"]
    good, available = shlex.quote(layout.site_last_good), shlex.quote(layout.site_available)
    restore = (
        f"if [ -f {good} ]; then cp -p {good} {available};"
        f" else rm -f {shlex.quote(layout.site_enabled)}; fi"
    )
    return [
        f"nginx -t || {{ {restore}; echo 'nginx -t failed: nginx was not reloaded and the"
        " previous site is back in place' >&2; exit 1; }",
        RELOAD,
        f"cp -p {available} {good}",
    ]


@deploy("Nginx host-wide")
def configure_nginx_host(
    plan: HostPlan, proxies: tuple[str, ...] = (), servers: tuple[str, ...] = ()
) -> NginxHost:
    """Put the host-wide files, disable the catch-all if no longer wanted and Debian's
    default site. Each app's site step applies them (tested reload); the catch-all is
    enabled after every site is written (enable_catch_all), so no old default site clashes
    with it. ``proxies``: the load balancers in front of this app server; ``servers``: on a
    load balancer, the app servers behind it."""
    wanted = nginx_host(plan)
    operations = (
        *(put_text(f"Host-wide {path}", text, path) for path, text in wanted.files.items()),
        files.file(name=f"No {OLD_HARDENING}", path=OLD_HARDENING, present=False),
        *(
            []
            if wanted.catch_all
            else [
                files.link(
                    name=f"Disable {CATCH_ALL_ENABLED}", path=CATCH_ALL_ENABLED, present=False
                )
            ]
        ),
        files.link(name=f"Disable {DEFAULT_SITE}", path=DEFAULT_SITE, present=False),
    )
    return NginxHost(wanted.files, wanted.catch_all, operations, proxies, servers)


@deploy("Nginx catch-all")
def enable_catch_all(shared: NginxHost):
    """Enable the catch-all once every app's site is written, and apply it (tested reload)."""
    if shared.catch_all:
        enabled = files.link(
            name=f"Enable {CATCH_ALL_ENABLED}", path=CATCH_ALL_ENABLED, target=CATCH_ALL
        )
        server.shell(
            name="Test and reload nginx with the catch-all",
            commands=tested_reload(None),
            _if=enabled.did_change,
        )


def _site(settings: Settings, certified: list[str] | None, shared: NginxHost, **condition) -> None:
    """Put and enable the site (for the names ``certified``, see nginx_site) and apply it and
    the host-wide changes with a tested reload; ``condition``: pyinfra's ``_if`` for the
    pass after certbot got a certificate."""
    layout = Layout.of(settings)
    site = nginx_site(settings, certified, shared.proxies, shared.servers)
    written = put_text(f"Site {layout.site_available}", site, layout.site_available, **condition)
    enabled = files.link(
        name=f"Enable {layout.site_enabled}",
        path=layout.site_enabled,
        target=layout.site_available,
        **condition,
    )
    changes_applied(
        name="Test and reload nginx" + (" with the new certificate" if condition else ""),
        stamp=layout.stamp("nginx"),
        levels=[
            Level(
                "reload",
                digest(site, *shared.files.values(), str(not shared.catch_all)),
                tested_reload(layout),
                (written, enabled, *shared.operations),
            )
        ],
        files={layout.site_available: site, **shared.files},
        **condition,
    )


@deploy("Nginx site")
def configure_nginx(settings: Settings, shared: NginxHost):
    """Write and enable the app's site, test and reload nginx when it or the host-wide part
    (``shared``, see configure_nginx_host) changed. With HTTPS: until the certificate
    covers every name the site serves what it served before plus the ACME challenge; once
    certbot has it (in this run or an earlier one), TLS with a redirect from HTTP."""
    cert = certificate(settings) if settings.https else None
    if not settings.https:
        _site(settings, None, shared)
    elif covers(cert, settings):
        _site(settings, cert["names"], shared)
        request_certificate(settings)  # no-op; renews a certificate found expired
    else:  # a first certificate, or a new name: the challenge first, TLS once it is issued
        _site(settings, cert["names"] if cert else None, shared)
        issued = request_certificate(settings)
        _site(settings, settings.server_name, shared, _if=issued.did_change)
    unit_state(
        name="nginx enabled and running",
        unit=NGINX_UNIT,
        running=True,
        enabled=True,
        along=Layout.of(settings).units_read_together,
    )
