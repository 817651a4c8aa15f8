"""Nginx: the app's server block, enabled alone, reloaded only after ``nginx -t`` passes."""

from __future__ import annotations

from pyinfra.api import deploy
from pyinfra.operations import files, systemd

from deploys.converge import Level, apply_pending
from deploys.layout import Layout
from deploys.render import digest, put_text, render
from deploys.settings import Settings

DEFAULT_SITE = "/etc/nginx/sites-enabled/default"


def nginx_site(settings: Settings) -> str:
    """The server block text; with server_name ``_`` it is the default server."""
    return render(
        "nginx-site.conf.j2",
        s=settings,
        layout=Layout.of(settings),
        default_server=settings.server_name == ["_"],
    )


@deploy("Nginx site")
def configure_nginx(settings: Settings):
    """Write and enable the site, disable the default site, test and reload when needed."""
    layout = Layout.of(settings)
    site = nginx_site(settings)
    changes = [
        put_text(f"Site {layout.site_available}", site, layout.site_available),
        files.link(
            name=f"Enable {layout.site_enabled}",
            path=layout.site_enabled,
            target=layout.site_available,
        ),
        files.link(name=f"Disable {DEFAULT_SITE}", path=DEFAULT_SITE, present=False),
    ]
    apply_pending(
        name="Test and reload nginx",
        stamp=f"{layout.state}/nginx.applied",
        levels=[
            Level(
                "reload", digest(site), ["nginx -t", "systemctl reload-or-restart nginx"], changes
            )
        ],
    )
    systemd.service(
        name="nginx enabled and running", service="nginx.service", running=True, enabled=True
    )
