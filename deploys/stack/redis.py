"""Each app's own Redis (``redis = true``): Debian's redis-server run by a unit of the app's
user with the app's sandbox (its drop-ins linked, as the workers'), on a unix socket only,
snapshots in its own data folder, ``maxmemory`` set, administration commands refused. The
package's shared instance (TCP 6379, user ``redis``) is masked before the package is
installed, so it never runs: the only way into an app's Redis is its socket, which only
the app's user can reach (REDIS_URL)."""

from __future__ import annotations

from pyinfra.operations import files

from deploys.config.datastores import REDIS_GRANTS
from deploys.config.fingerprint import digest
from deploys.config.layout import Layout
from deploys.config.settings import Settings
from deploys.ops.render import put_text, render
from deploys.ops.stamps import Level, changes_applied
from deploys.ops.typed import deploy
from deploys.ops.units import unit_loaded, unit_state
from deploys.stack.appservice import sandbox

PACKAGE_UNIT = "redis-server.service"  # the package's shared instance: masked


def redis_conf(settings: Settings) -> str:
    """The app's redis.conf text."""
    return render("redis.conf.j2", s=settings, layout=Layout.of(settings), grants=REDIS_GRANTS)


def redis_unit(settings: Settings) -> str:
    """The app's Redis unit text."""
    return render("redis.service.j2", s=settings, layout=Layout.of(settings))


def mask_shared_redis() -> None:
    """Mask the package's own instance before the package is installed (its postinst would
    start it, listening on TCP for every local user), and stop it if it ran already."""
    mask = files.link(
        name=f"{PACKAGE_UNIT} masked: no Redis shared by the host's users",
        path=Layout.system_unit(PACKAGE_UNIT),
        target="/dev/null",
    )
    unit_loaded(
        name=f"systemd knows {PACKAGE_UNIT} is masked", unit=PACKAGE_UNIT, _if=mask.did_change
    )


def stop_shared_redis() -> None:
    """The package's instance stopped (installed before this deploy masked it)."""
    unit_state(name=f"{PACKAGE_UNIT} stopped", unit=PACKAGE_UNIT, running=False)


@deploy("Redis")
def configure_redis(settings: Settings) -> None:
    """Write the app's redis.conf and unit, link the app's sandbox, restart its Redis when
    either changed (it saves its snapshot on the way down), keep it enabled and running."""
    layout = Layout.of(settings)
    unit, conf = redis_unit(settings), redis_conf(settings)
    unit_path = layout.system_unit(layout.redis_unit_name)
    triggers = (
        put_text(
            f"Redis {layout.redis_conf}",
            conf,
            layout.redis_conf,
            mode="640",
            user="root",
            group=settings.user,
        ),
        put_text(f"Unit {unit_path}", unit, unit_path),
        files.link(
            name=f"{unit_path}.d links the service's drop-ins",
            path=f"{unit_path}.d",
            target=f"{layout.unit}.d",
        ),
    )
    name = layout.redis_unit_name
    unit_loaded(name=f"systemd knows the current {name}", unit=name, drop_ins=(layout.sandbox,))
    changes_applied(
        name=f"Apply changes to {name}",
        stamp=layout.stamp(name),
        levels=[
            Level(
                "restart",
                digest(unit, conf, sandbox(settings)),
                [f"systemctl restart {name}"],
                triggers,
            )
        ],
        files={unit_path: unit, layout.redis_conf: conf},
    )
    unit_state(name=f"{name} enabled and running", unit=name, running=True, enabled=True)
