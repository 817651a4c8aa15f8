"""Nginx: the app's server block, enabled alone, reloaded only after ``nginx -t`` passes;
host-wide, a catch-all that closes requests for unknown host names and no version banner."""

from __future__ import annotations

import shlex

from pyinfra import host
from pyinfra.api import deploy
from pyinfra.api.operation import OperationMeta
from pyinfra.operations import files, systemd

from deploys.converge import Level, apply_pending
from deploys.https import ACME_WEBROOT, Certificate, request_certificate
from deploys.layout import Layout
from deploys.render import FILES, digest, put_text, render
from deploys.settings import Settings

DEFAULT_SITE = "/etc/nginx/sites-enabled/default"
CATCH_ALL = "/etc/nginx/sites-available/flask-deploy-catch-all"
CATCH_ALL_ENABLED = "/etc/nginx/sites-enabled/flask-deploy-catch-all"
HARDENING = "/etc/nginx/conf.d/flask-deploy.conf"
TLS_SETTINGS = "/etc/nginx/snippets/flask-deploy-tls.conf"


def nginx_site(settings: Settings, tls: bool = False) -> str:
    """The server block text; with server_name ``_`` it is the default server. With ``tls``
    (the certificate exists), port 80 only answers ACME challenges and redirects to HTTPS."""
    return render(
        "nginx-site.conf.j2",
        s=settings,
        layout=Layout.of(settings),
        default_server=is_default_server(settings),
        tls=tls,
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
        CATCH_ALL: render("nginx-catch-all.conf.j2", tls=settings.https),
        HARDENING: (FILES / "nginx-hardening.conf").read_text(),
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


def _site(settings: Settings, tls: bool, host_wide: list[OperationMeta], **condition) -> None:
    """Put the site (with or without TLS) and apply it and the host-wide changes with a
    tested reload; ``condition``: pyinfra's ``_if`` for the second pass of a first
    certificate."""
    layout = Layout.of(settings)
    site = nginx_site(settings, tls)
    written = put_text(f"Site {layout.site_available}", site, layout.site_available, **condition)
    apply_pending(
        name="Test and reload nginx" + (" with the new certificate" if condition else ""),
        stamp=layout.stamp("nginx"),
        levels=[
            Level(
                "reload",
                digest(site, *host_wide_files(settings).values(), str(is_default_server(settings))),
                tested_reload(layout),
                [written, *host_wide],
            )
        ],
        **condition,
    )


@deploy("Nginx site")
def configure_nginx(settings: Settings):
    """Write and enable the site, the catch-all (unless the app is the default server) and
    the host-wide settings, disable the default site, test and reload when needed. With
    HTTPS: before the first certificate the site serves HTTP and the ACME challenge; once
    certbot has it (in this run or an earlier one), TLS with a redirect from HTTP."""
    host_wide = _host_wide(settings, host_wide_files(settings))
    if not settings.https:
        _site(settings, tls=False, host_wide=host_wide)
    elif host.get_fact(Certificate, path=Layout.of(settings).certificate) is None:
        _site(settings, tls=False, host_wide=host_wide)
        issued = request_certificate(settings)
        _site(settings, tls=True, host_wide=host_wide, _if=issued.did_change)
    else:
        _site(settings, tls=True, host_wide=host_wide)
        request_certificate(settings)
    systemd.service(
        name="nginx enabled and running", service="nginx.service", running=True, enabled=True
    )
