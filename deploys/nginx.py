"""Nginx: the app's server block, enabled alone, reloaded only after ``nginx -t`` passes;
host-wide, a catch-all that closes requests for unknown host names and no version banner."""

from __future__ import annotations

import shlex

from pyinfra.api import deploy
from pyinfra.operations import files, systemd

from deploys.converge import Level, apply_pending
from deploys.layout import Layout
from deploys.render import FILES, digest, put_text, render
from deploys.settings import Settings

DEFAULT_SITE = "/etc/nginx/sites-enabled/default"
CATCH_ALL = "/etc/nginx/sites-available/flask-deploy-catch-all"
CATCH_ALL_ENABLED = "/etc/nginx/sites-enabled/flask-deploy-catch-all"
HARDENING = "/etc/nginx/conf.d/flask-deploy.conf"


def nginx_site(settings: Settings) -> str:
    """The server block text; with server_name ``_`` it is the default server."""
    return render(
        "nginx-site.conf.j2",
        s=settings,
        layout=Layout.of(settings),
        default_server=is_default_server(settings),
    )


def is_default_server(settings: Settings) -> bool:
    """Whether the app answers any host name (``server_name = "_"``); otherwise the
    catch-all closes requests for names it does not serve."""
    return settings.server_name == ["_"]


def host_wide_files() -> dict[str, str]:
    """nginx files shared by every app on the host: path -> text."""
    return {
        CATCH_ALL: (FILES / "nginx-catch-all.conf").read_text(),
        HARDENING: (FILES / "nginx-hardening.conf").read_text(),
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


@deploy("Nginx site")
def configure_nginx(settings: Settings):
    """Write and enable the site, the catch-all (unless the app is the default server) and
    the host-wide settings, disable the default site, test and reload when needed."""
    layout = Layout.of(settings)
    site = nginx_site(settings)
    shared = host_wide_files()
    catch_all = not is_default_server(settings)
    changes = [
        put_text(f"Site {layout.site_available}", site, layout.site_available),
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
    apply_pending(
        name="Test and reload nginx",
        stamp=layout.stamp("nginx"),
        levels=[
            Level(
                "reload",
                digest(site, *shared.values(), str(catch_all)),
                tested_reload(layout),
                changes,
            )
        ],
    )
    systemd.service(
        name="nginx enabled and running", service="nginx.service", running=True, enabled=True
    )
