"""Nginx: the app's server block, enabled alone, reloaded only after ``nginx -t`` passes;
host-wide, a catch-all that closes requests for unknown host names and no version banner."""

from __future__ import annotations

import shlex

from pyinfra.api import deploy
from pyinfra.api.operation import OperationMeta
from pyinfra.operations import files, systemd

from deploys.https import ACME_WEBROOT, certificate, covers, request_certificate
from deploys.layout import Layout
from deploys.render import FILES, digest, put_text, render
from deploys.settings import Settings
from deploys.stamps import Level, changes_applied

DEFAULT_SITE = "/etc/nginx/sites-enabled/default"
CATCH_ALL = "/etc/nginx/sites-available/flask-deploy-catch-all"
CATCH_ALL_ENABLED = "/etc/nginx/sites-enabled/flask-deploy-catch-all"
OLD_HARDENING = "/etc/nginx/conf.d/flask-deploy.conf"  # server_tokens moved into each server:
# http-level it clashes with Debian 13's nginx.conf, which sets it already
TLS_SETTINGS = "/etc/nginx/snippets/flask-deploy-tls.conf"


def nginx_site(settings: Settings, certified: list[str] | None = None) -> str:
    """The server block text; with server_name ``_`` it is the default server. With HTTPS,
    ``certified`` are the names the certificate on the host covers (None: no certificate
    yet, so the site serves HTTP and the ACME challenge): those are served over TLS with a
    redirect from HTTP; names it does not cover yet get only the challenge, until it does."""
    certified_names = set(certified or [])
    return render(
        "nginx-site.conf.j2",
        s=settings,
        layout=Layout.of(settings),
        default_server=is_default_server(settings),
        tls_names=[n for n in settings.server_name if n in certified_names],
        waiting_names=[n for n in settings.server_name if certified and n not in certified_names],
        acme_webroot=ACME_WEBROOT,
        tls_settings=TLS_SETTINGS,
    )


def is_default_server(settings: Settings) -> bool:
    """Whether the app answers any host name (``server_name = "_"``); otherwise the
    catch-all closes requests for names it does not serve."""
    return settings.server_name == ["_"]


def host_wide_files(settings: Settings) -> dict[str, str]:
    """nginx files shared by every app on the host: path -> text."""
    return {
        CATCH_ALL: render("nginx-catch-all.conf.j2", tls=settings.https, tls_settings=TLS_SETTINGS),
        TLS_SETTINGS: (FILES / "nginx-tls.conf").read_text(),
    }


def tested_reload(layout: Layout) -> list[str]:
    """Commands that reload nginx only if ``nginx -t`` passes. On failure the last good site
    is put back (or, before any went live, the site disabled) so that no later restart or
    reboot picks up the broken file, and the run fails with nginx's own message."""
    good, available = shlex.quote(layout.site_last_good), shlex.quote(layout.site_available)
    restore = (
        f"if [ -f {good} ]; then cp -p {good} {available};"
        f" else rm -f {shlex.quote(layout.site_enabled)}; fi"
    )
    return [
        f"nginx -t || {{ {restore}; echo 'nginx -t failed: nginx was not reloaded and the"
        " previous site is back in place' >&2; exit 1; }",
        "systemctl reload-or-restart nginx",
        f"cp -p {available} {good}",
    ]


def _host_wide(settings: Settings, shared: dict[str, str]) -> list[OperationMeta]:
    """Put the host-wide files, enable the site and the catch-all, disable Debian's default
    site. Returns their operations."""
    layout = Layout.of(settings)
    catch_all = not is_default_server(settings)
    return [
        *(put_text(f"Host-wide {path}", text, path) for path, text in shared.items()),
        files.file(name=f"No {OLD_HARDENING}", path=OLD_HARDENING, present=False),
        files.link(
            name=f"Enable {layout.site_enabled}",
            path=layout.site_enabled,
            target=layout.site_available,
        ),
        files.link(
            name=f"{'Enable' if catch_all else 'Disable'} {CATCH_ALL_ENABLED}",
            path=CATCH_ALL_ENABLED,
            target=CATCH_ALL,
            present=catch_all,
        ),
        files.link(name=f"Disable {DEFAULT_SITE}", path=DEFAULT_SITE, present=False),
    ]


def _site(
    settings: Settings, certified: list[str] | None, host_wide: list[OperationMeta], **condition
) -> None:
    """Put the site (for the names ``certified``, see nginx_site) and apply it and the
    host-wide changes with a tested reload; ``condition``: pyinfra's ``_if`` for the pass
    after certbot got a certificate."""
    layout = Layout.of(settings)
    site = nginx_site(settings, certified)
    shared = host_wide_files(settings)
    written = put_text(f"Site {layout.site_available}", site, layout.site_available, **condition)
    changes_applied(
        name="Test and reload nginx" + (" with the new certificate" if condition else ""),
        stamp=layout.stamp("nginx"),
        levels=[
            Level(
                "reload",
                digest(site, *shared.values(), str(is_default_server(settings))),
                tested_reload(layout),
                (written, *host_wide),
            )
        ],
        files={layout.site_available: site, **shared},
        **condition,
    )


@deploy("Nginx site")
def configure_nginx(settings: Settings):
    """Write and enable the site, the catch-all (unless the app is the default server) and
    the host-wide settings, disable the default site, test and reload when needed. With
    HTTPS: until the certificate covers every name the site serves what it served before
    plus the ACME challenge; once certbot has it (in this run or an earlier one), TLS with a
    redirect from HTTP."""
    host_wide = _host_wide(settings, host_wide_files(settings))
    cert = certificate(settings)
    if not settings.https:
        _site(settings, None, host_wide)
    elif covers(cert, settings):
        _site(settings, cert["names"], host_wide)
        request_certificate(settings)  # no-op; renews a certificate found expired
    else:  # a first certificate, or a new name: the challenge first, TLS once it is issued
        _site(settings, cert["names"] if cert else None, host_wide)
        issued = request_certificate(settings)
        _site(settings, settings.server_name, host_wide, _if=issued.did_change)
    systemd.service(
        name="nginx enabled and running", service="nginx.service", running=True, enabled=True
    )
