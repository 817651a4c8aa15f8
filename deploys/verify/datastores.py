"""The verifier's checks of an app's own database and Redis: the cluster online, the
database owned by the app's role and closed to PUBLIC, the app's user connecting through the
URL the app gets; its Redis running the deployed config, answering its user on the socket,
on no TCP port, sandboxed like the app, and the package's shared instance masked."""

from __future__ import annotations

import shlex
from dataclasses import replace

from pyinfra import host
from pyinfra.api import FactBase
from pyinfra.facts.files import File
from pyinfra.facts.postgres import PostgresRoles

from deploys.config.datastores import database_url, redis_port
from deploys.config.layout import Layout
from deploys.config.plan import HostPlan
from deploys.config.settings import Settings
from deploys.ops.facts import AnswerAs, TcpListeners, UnitStatus
from deploys.ops.output import printable
from deploys.stack.database_server import SECRETS, database_firewall_rules, served
from deploys.stack.fleet import Fleet
from deploys.stack.postgresql import (
    AS_POSTGRES,
    PORT,
    ROLE_POWERS,
    DatabaseAccess,
    PostgresClusters,
    serving_cluster,
)
from deploys.stack.redis import PACKAGE_UNIT
from deploys.verify.checks import Check, _applied_check, _check, _unit_checks, ufw_checks
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
    said, ok = _answer(settings.user, ["psql", database_url(settings), "-XAtc", "SELECT 1"])
    return [
        Check(
            "PostgreSQL cluster on port 5432",
            "online",
            observed,
            bool(cluster and cluster["online"]),
        ),
        *_database_state(settings),
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
    """The app's database and Redis, when it has them (here, or on the database server)."""
    if settings.database_server:
        return [replace(c, scope=settings.app_name) for c in remote_checks(settings)]
    checks = [
        *(database_checks(settings) if settings.postgresql else []),
        *(redis_checks(settings) if settings.redis else []),
    ]
    return [replace(c, scope=settings.app_name) for c in checks]


class RemoteAnswers(FactBase):
    """What the app's database and Redis on the database server answer its user on this app
    server through the URLs of its database.env (taken apart in the shell into libpq's
    variables and a Redis AUTH, so no password is ever a command's argument): ``{"psql":
    [lines], "redis": [lines]}``."""

    def command(self, user: str, env_file: str) -> str:
        script = (
            f"set -a; . {env_file}; set +a; "
            'if [ -n "$DATABASE_URL" ]; then echo "--psql"; ('
            " u=${DATABASE_URL#*://}; PGUSER=${u%%:*}; r=${u#*:}; PGPASSWORD=${r%%@*};"
            " r=${r#*@}; PGHOST=${r%%:*}; r=${r#*:}; PGPORT=${r%%/*}; PGDATABASE=${r#*/};"
            " export PGUSER PGPASSWORD PGHOST PGPORT PGDATABASE; unset DATABASE_URL REDIS_URL;"
            ' timeout 10 psql -XAtc "SELECT 1" 2>&1 ); fi; '
            'if [ -n "$REDIS_URL" ]; then echo "--redis"; ('
            " u=${REDIS_URL#*://}; ru=${u%%:*}; r=${u#*:}; pw=${r%%@*}; r=${r#*@};"
            " h=${r%%:*}; r=${r#*:}; p=${r%%/*};"
            ' exec 3<>"/dev/tcp/$h/$p"'
            ' && printf "AUTH %s %s\\r\\nPING\\r\\nQUIT\\r\\n" "$ru" "$pw" >&3'
            " && timeout 5 cat <&3 | tr -d '\\r' ) 2>&1; fi"
        )
        return (
            f"timeout -s KILL 15 runuser -u {shlex.quote(user)} -- setpriv --no-new-privs"
            f" bash -c {shlex.quote(script)} || true"
        )

    @staticmethod
    def default():
        return {}

    def process(self, output):
        answers: dict[str, list[str]] = {}
        current = None
        for line in output:
            if line in ("--psql", "--redis"):
                current = answers.setdefault(line[2:], [])
            elif current is not None and line.strip():
                current.append(line.strip())
        return answers


def remote_checks(settings: Settings) -> list[Check]:
    """On an app server of a database server: its database.env private to the app, and the
    database and Redis there answering the app's user through it."""
    layout = Layout.of(settings)
    env = host.get_fact(File, path=layout.database_env)
    mode = f"{env.get('user')}:{env.get('group')} {env.get('mode')}" if env else "missing"
    answers = host.get_fact(RemoteAnswers, user=settings.user, env_file=layout.database_env)
    checks = [
        _check(
            f"{layout.database_env} (the URLs, with the password)",
            f"root:{settings.user} 640",
            mode,
        )
    ]
    wanted = {
        "psql": (settings.postgresql, "queries its database", "1"),
        "redis": (settings.redis, "reaches its Redis", "+OK | +PONG | +OK"),
    }
    for kind, (asked, what, expected) in wanted.items():
        said = printable(" | ".join(answers.get(kind, []))) or "nothing"
        if asked:
            label = f"{settings.user} {what} on {settings.database_server}"
            checks.append(_check(label, expected, said))
    return checks


def database_server_checks(plan: HostPlan, fleet: Fleet) -> list[Check]:
    """The database server: UFW admitting the app servers alone, PostgreSQL online and
    listening on loopback and the private address only; per app its database (owner,
    PUBLIC) and its Redis (unit, config, its one address and port, sandbox)."""
    checks = ufw_checks(*database_firewall_rules(plan, fleet)) if plan.host.firewall else []
    if plan.postgresql:
        cluster = serving_cluster(host.get_fact(PostgresClusters))
        unit = f"postgresql@{cluster['version']}-{cluster['name']}.service" if cluster else ""
        found = set(host.get_fact(TcpListeners, unit=unit)) if unit else set()
        listening = ", ".join(sorted(found - {f"[::1]:{PORT}"})) or "nothing"  # localhost
        wanted = f"127.0.0.1:{PORT}, {fleet.database_server}:{PORT}"
        checks.append(_check("PostgreSQL listens on (and ::1)", wanted, listening))
    for app in served(plan):
        states = [
            *(_database_state(app) if app.postgresql else []),
            *(_redis_state(app, fleet) if app.redis else []),
        ]
        checks += [replace(c, scope=app.app_name) for c in states]
    return checks


def _database_state(settings: Settings) -> list[Check]:
    """The app's database owned by its role, closed to PUBLIC; the role able to log in and
    nothing more."""
    access = host.get_fact(DatabaseAccess, **AS_POSTGRES).get(settings.app_name)
    role = host.get_fact(PostgresRoles, **AS_POSTGRES).get(settings.user, {})
    powers = [p for p in ROLE_POWERS if role.get("super" if p == "superuser" else p)]
    closed = "PUBLIC may connect" if access and access["public"] else "only its owner connects"
    return [
        _check(
            f"database {settings.app_name} owner",
            settings.user,
            access["owner"] if access else "no database",
        ),
        _check(
            f"database {settings.app_name} closed to PUBLIC",
            "only its owner connects",
            closed if access else "no database",
        ),
        _check(f"role {settings.user}'s powers", "none", ", ".join(powers) or "none"),
    ]


def _redis_state(settings: Settings, fleet: Fleet) -> list[Check]:
    unit = Layout.of(settings).redis_unit_name
    status = host.get_fact(UnitStatus, unit=unit)
    port = f"{fleet.database_server}:{redis_port(settings.app_name)}"
    listening = ", ".join(sorted(host.get_fact(TcpListeners, unit=unit))) or "nothing"
    return [
        *_unit_checks(f"Redis {unit}", status),
        _applied_check(f"Redis {unit}", status, f"{SECRETS}/{unit}.applied"),
        _check(f"Redis {unit} listens on", port, listening),
        exposure_check("Redis", unit),
    ]
