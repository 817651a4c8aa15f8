"""The uWSGI service: ini, environment file and systemd unit, applied by restart or graceful
reload only when they (or the code or virtualenv) changed."""

from __future__ import annotations

from pyinfra.api import deploy
from pyinfra.api.operation import OperationMeta
from pyinfra.operations import systemd

from deploys.converge import (
    Level,
    apply_pending,
    daemon_reload_if_needed,
    secret_file,
    socket_permissions,
)
from deploys.layout import Layout
from deploys.render import digest, put_text, render
from deploys.settings import Settings


def uwsgi_ini(settings: Settings) -> str:
    """The uWSGI ini text."""
    layout = Layout.of(settings)
    binary = "uwsgi" if settings.uwsgi_from_source else "python3"
    return render(
        "uwsgi.ini.j2", s=settings, layout=layout, binary_path=f"{layout.live_venv}/bin/{binary}"
    )


def systemd_unit(settings: Settings) -> str:
    """The systemd unit text."""
    return render("app.service.j2", s=settings, layout=Layout.of(settings))


def env_file(settings: Settings) -> str:
    """The EnvironmentFile text (may hold secrets: never logged or diffed)."""
    return render("env.j2", s=settings)


@deploy("App environment")
def write_app_environment(settings: Settings) -> OperationMeta:
    """Write the app's EnvironmentFile (before any release check imports the app)."""
    layout = Layout.of(settings)
    return secret_file(
        name=f"Environment {layout.env_file}",
        path=layout.env_file,
        content=env_file(settings),
        user="root",
        group=settings.user,
    )


@deploy("uWSGI service")
def configure_app_service(
    settings: Settings, code_changes: list[OperationMeta], env_change: OperationMeta
):
    """Write the ini and unit; restart on unit/env changes, reload gracefully on ini/code/venv
    changes (``code_changes``: operations that rewrote code or the venv, e.g. a deleted venv
    rebuilt; ``env_change``: the env file's operation); keep the unit enabled and running."""
    layout = Layout.of(settings)
    ini, unit, env = uwsgi_ini(settings), systemd_unit(settings), env_file(settings)
    ini_op = put_text(
        f"uWSGI ini {layout.ini}", ini, layout.ini, mode="640", user="root", group=settings.user
    )
    unit_op = put_text(f"Unit {layout.unit}", unit, layout.unit)
    daemon_reload_if_needed(
        name=f"systemd knows the current {layout.unit_name}", unit=layout.unit_name
    )
    service = layout.unit_name
    apply_pending(
        name=f"Apply changes to {service}",
        stamp=layout.stamp(service),
        levels=[
            Level(
                "restart",
                digest(unit, env),
                [f"systemctl restart {service}"],
                [unit_op, env_change],
            ),
            Level(
                "reload",
                digest(ini),
                [f"systemctl reload-or-restart {service}"],
                [ini_op, *code_changes],
            ),
        ],
    )
    systemd.service(
        name=f"{service} enabled and running", service=service, running=True, enabled=True
    )
    socket_permissions(
        name=f"Socket {layout.socket} is 660 www-data",
        path=layout.socket,
        mode="660",
        group="www-data",
    )
