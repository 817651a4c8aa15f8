"""The verifier's checks of an app's own database and Redis: the cluster online, the
database owned by the app's role and closed to PUBLIC, the app's user connecting through the
URL the app gets; its Redis running the deployed config, answering its user on the socket,
on no TCP port, sandboxed like the app, and the package's shared instance masked."""

from __future__ import annotations

from dataclasses import replace

from pyinfra import host

from deploys.config.datastores import database_url
from deploys.config.layout import Layout
from deploys.config.settings import Settings
from deploys.ops.facts import AnswerAs, TcpListeners, UnitStatus
from deploys.ops.output import printable
from deploys.stack.postgresql import (
    AS_POSTGRES,
    DatabaseAccess,
    PostgresClusters,
    serving_cluster,
)
from deploys.stack.redis import PACKAGE_UNIT
from deploys.verify.checks import Check, _applied_check, _check, _unit_checks
from deploys.verify.processes import exposure_check


def _answer(user: str, argv: list[str]) -> tuple[str, bool]:
    """What ``argv`` printed as ``user`` (one line), and whether it exited 0."""
    answer = host.get_fact(AnswerAs, user=user, argv=argv)
    said = printable(" | ".join(answer["output"])) or "nothing"
    return said, answer["status"] == 0


def database_checks(settings: Settings) -> list[Check]:
    """The cluster, the database's owner and privileges, a query as the app's user."""
    cluster = serving_cluster(host.get_fact(PostgresClusters))
    observed = (
        "none"
        if cluster is None
        else f"{cluster['version']}/{cluster['name']} "
        + ("online" if cluster["online"] else "down")
    )
    access = host.get_fact(DatabaseAccess, **AS_POSTGRES).get(settings.app_name)
    said, ok = _answer(settings.user, ["psql", database_url(settings), "-XAtc", "SELECT 1"])
    return [
        Check(
            "PostgreSQL cluster on port 5432",
            "online",
            observed,
            bool(cluster and cluster["online"]),
        ),
        _check(
            f"database {settings.app_name} owner",
            settings.user,
            access["owner"] if access else "no database",
        ),
        _check(
            f"database {settings.app_name} closed to PUBLIC",
            "only its owner connects",
            "no database"
            if not access
            else "PUBLIC may connect"
            if access["public"]
            else "only its owner connects",
        ),
        Check(
            f"{settings.user} queries its database through DATABASE_URL",
            "SELECT 1 answers 1",
            said,
            ok and said == "1",
        ),
    ]


def redis_checks(settings: Settings) -> list[Check]:
    """The app's Redis unit, its config as applied, PING on its socket as the app's user,
    no TCP port, its sandbox; the package's instance masked and stopped."""
    layout = Layout.of(settings)
    unit = layout.redis_unit_name
    status = host.get_fact(UnitStatus, unit=unit)
    said, ok = _answer(settings.user, ["redis-cli", "-s", layout.redis_socket, "ping"])
    shared = host.get_fact(UnitStatus, unit=PACKAGE_UNIT)
    shared_state = (
        f"{shared.get('UnitFileState') or 'missing'}, {shared.get('ActiveState') or 'inactive'}"
    )
    return [
        *_unit_checks(f"Redis {unit}", status),
        _applied_check(f"Redis {unit}", status, layout.stamp(unit)),
        Check(
            f"{settings.user} reaches its Redis through REDIS_URL",
            "PONG",
            said,
            ok and said == "PONG",
        ),
        _check(
            f"Redis {unit} TCP ports",
            "none",
            ", ".join(host.get_fact(TcpListeners, unit=unit)) or "none",
        ),
        exposure_check("Redis", unit),
        _check(f"{PACKAGE_UNIT} (shared by every user)", "masked, inactive", shared_state),
    ]


def datastore_checks(settings: Settings) -> list[Check]:
    """The app's database and Redis, when it has them."""
    checks = [
        *(database_checks(settings) if settings.postgresql else []),
        *(redis_checks(settings) if settings.redis else []),
    ]
    return [replace(c, scope=settings.app_name) for c in checks]
