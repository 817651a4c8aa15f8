"""The uWSGI service: ini, environment file, sandbox, socket, service and handover units; a
change to any of them (or to the code or virtualenv) is applied by restarting the service
while its handover instance serves (release_gate.py restart), a changed socket unit by
restarting the socket."""

from __future__ import annotations

from pyinfra import host, logger
from pyinfra.api.operation import OperationMeta
from pyinfra.operations import files

from deploys.config.datastores import app_environment, own_urls
from deploys.config.fingerprint import digest
from deploys.config.layout import Layout
from deploys.config.settings import Settings
from deploys.ops.facts import UnitStatus
from deploys.ops.fileops import secret_file, socket_permissions
from deploys.ops.render import put_text, render
from deploys.ops.stamps import Level, changes_applied
from deploys.ops.typed import deploy
from deploys.ops.units import unit_loaded, unit_state
from deploys.release.gate import restart_command
from deploys.release.live import live_release

# uWSGI's per-request "magic variables" that load code, change directories, set the
# environment, read files or reload the server (uWSGI's core/protocol.c); uwsgi.ini refuses
# a request carrying any of them
MAGIC_VARS = (
    "UWSGI_FILE",
    "UWSGI_SCRIPT",
    "UWSGI_MODULE",
    "UWSGI_CALLABLE",
    "UWSGI_PYHOME",
    "UWSGI_HOME",
    "UWSGI_CHDIR",
    "UWSGI_APPID",
    "UWSGI_SETENV",
    "UWSGI_POSTFILE",
    "UWSGI_TOUCH_RELOAD",
    "UWSGI_CACHE_GET",
)


def uwsgi_ini(settings: Settings) -> str:
    """The uWSGI ini text."""
    layout = Layout.of(settings)
    binary = "uwsgi" if settings.uwsgi_from_source else "python3"
    return render(
        "uwsgi.ini.j2",
        s=settings,
        layout=layout,
        binary_path=f"{layout.live_venv}/bin/{binary}",
        magic_vars=MAGIC_VARS,
    )


def record_command(layout: Layout) -> str:
    """What the unit runs as root before each start: write ``INVOCATION_ID RELEASE``
    (systemd's id of this run, and the release ``current`` names) into root's record,
    replacing it at once. ``$$``: the shell's, not systemd's, expansion. It gets the app's
    environment file too: every program by its absolute path, and the settings refuse the
    names that steer a program's start (ENV_RESERVED_RE)."""
    record = layout.service_record
    return (
        f'/bin/sh -c \'echo "$$INVOCATION_ID $$(/bin/readlink -f {layout.current})"'
        f" > {record}.new && /bin/mv -f {record}.new {record}'"
    )


def systemd_unit(settings: Settings) -> str:
    """The service unit text."""
    layout = Layout.of(settings)
    return render("app.service.j2", s=settings, layout=layout, record=record_command(layout))


def handover_unit(settings: Settings) -> str:
    """The handover unit text: the second uWSGI that serves while the service restarts."""
    return render("app-handover.service.j2", s=settings, layout=Layout.of(settings))


def socket_unit(settings: Settings) -> str:
    """The socket unit text: the socket nginx connects to."""
    return render("app.socket.j2", s=settings, layout=Layout.of(settings))


def sandbox(settings: Settings) -> str:
    """The drop-in with the app's identity and sandbox, shared by every unit running its code."""
    return render("sandbox.conf.j2", s=settings, layout=Layout.of(settings))


def env_file(settings: Settings) -> str:
    """The EnvironmentFile text (may hold secrets: never logged or diffed)."""
    return render("env.j2", s=settings, env=app_environment(settings))


_SAID: set[tuple[str, str]] = set()  # (app, name) whose own URL was reported in this run


def report_own_urls(settings: Settings) -> None:
    """Say once per run that the app's ``env`` keeps its own DATABASE_URL or REDIS_URL."""
    for name in own_urls(settings):
        if (settings.app_name, name) not in _SAID:
            _SAID.add((settings.app_name, name))
            logger.warning(
                f"{settings.app_name}: env sets {name} itself: the app keeps that value, not"
                " the URL of the database or Redis the deploy provides it (docs/databases.md)"
            )


@deploy("App environment")
def write_app_environment(settings: Settings) -> list[OperationMeta]:
    """Write the app's EnvironmentFile and sandbox (before any release check runs the app).
    Returns their operations."""
    layout = Layout.of(settings)
    report_own_urls(settings)
    files.directory(
        name=f"Directory {layout.unit}.d", path=f"{layout.unit}.d", user="root", mode="755"
    )
    return [
        put_text(f"Sandbox {layout.sandbox}", sandbox(settings), layout.sandbox),
        secret_file(
            name=f"Environment {layout.env_file}",
            path=layout.env_file,
            content=env_file(settings),
            user="root",
            group=settings.user,
        ),
    ]


def service_drifted(layout: Layout, settings: Settings) -> bool:
    """Whether the service runs other options than its ini's (another worker count: a master
    started by hand) or a handover instance was left running (an interrupted restart)."""
    live = live_release(layout, settings)
    handover = host.get_fact(
        UnitStatus, unit=layout.handover_unit_name, along=layout.units_read_together
    )
    return (live["release"] is not None and live["workers"] != settings.processes) or handover.get(
        "ActiveState", "inactive"
    ) not in ("inactive", "")


@deploy("uWSGI service")
def configure_app_service(
    settings: Settings, code_changes: list[OperationMeta], env_changes: list[OperationMeta]
):
    """Write the ini and units; restart the service without a pause (the handover instance
    serving meanwhile) on any ini, unit, sandbox, environment, code or venv change
    (``code_changes``: operations that rewrote code or the venv, e.g. a deleted venv rebuilt;
    ``env_changes``: the env file's and sandbox's operations), the socket and service on a
    socket unit change; keep both units enabled and running."""
    layout = Layout.of(settings)
    ini, unit, handover, sock, env = (
        uwsgi_ini(settings),
        systemd_unit(settings),
        handover_unit(settings),
        socket_unit(settings),
        env_file(settings),
    )
    ini_op = put_text(
        f"uWSGI ini {layout.ini}", ini, layout.ini, mode="640", user="root", group=settings.user
    )
    socket_op = put_text(f"Unit {layout.socket_unit}", sock, layout.socket_unit)
    unit_ops = [
        put_text(f"Unit {layout.unit}", unit, layout.unit),
        put_text(f"Unit {layout.handover_unit}", handover, layout.handover_unit),
        files.link(
            name=f"{layout.handover_drop_ins} links the service's drop-ins",
            path=layout.handover_drop_ins,
            target=f"{layout.unit}.d",
        ),
    ]
    units = layout.units_read_together
    unit_loaded(
        name=f"systemd knows the current {layout.socket_unit_name}",
        unit=layout.socket_unit_name,
        along=units,
    )
    for name in (layout.unit_name, layout.handover_unit_name):  # one drop-in folder
        unit_loaded(
            name=f"systemd knows the current {name}",
            unit=name,
            drop_ins=(layout.sandbox,),
            along=units,
        )
    service, socket = layout.unit_name, layout.socket_unit_name
    changes_applied(
        name=f"Apply changes to {service}",
        stamp=layout.stamp(service),
        levels=[
            Level(
                "socket",
                digest(sock),
                [
                    f"systemctl stop {service} {layout.handover_unit_name} {socket}",
                    f"systemctl start {socket} {service}",
                ],
                (socket_op,),
                files=(layout.socket_unit,),
            ),
            Level(
                "handover",
                digest(ini, unit, handover, sandbox(settings), env),
                [restart_command(layout, settings)],
                (ini_op, *unit_ops, *env_changes, *code_changes),
                drifted=lambda: service_drifted(layout, settings),
            ),
        ],
        files={
            layout.unit: unit,
            layout.handover_unit: handover,
            layout.socket_unit: sock,
            layout.sandbox: sandbox(settings),
            layout.env_file: env,
            layout.ini: ini,
        },
    )
    for name in (socket, service):
        unit_state(
            name=f"{name} enabled and running", unit=name, running=True, enabled=True, along=units
        )
    socket_permissions(
        name=f"Socket {layout.socket} is 660 root:www-data",
        path=layout.socket,
        mode="660",
        user="root",
        group="www-data",
    )
