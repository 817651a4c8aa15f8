"""Each app's own PostgreSQL database (``postgresql = true``): Debian's PostgreSQL (the
distribution's major version, or the cluster the host has already: never another major
version under it), a role named after the app's user and a database named after the app,
owned by it, PUBLIC's CONNECT revoked. The app connects over the local socket with peer
authentication (its system user is its role): no password exists. Roles and databases are
created, never dropped or re-created."""

from __future__ import annotations

from typing import Any

from pyinfra import host, logger
from pyinfra.api import FactBase, operation
from pyinfra.facts.postgres import PostgresRoles
from pyinfra.operations import postgres

from deploys.config.plan import HostPlan
from deploys.config.settings import Settings
from deploys.ops.context import SettingsRefused
from deploys.ops.typed import deploy

PORT = 5432  # the cluster DATABASE_URL reaches: libpq's default port
SERVER_PACKAGE = "postgresql"  # Debian's: its supported major version, which creates "main"
# peer authentication as the superuser
AS_POSTGRES: dict[str, Any] = {"_sudo": True, "_sudo_user": "postgres"}


class PostgresClusters(FactBase):
    """The host's PostgreSQL clusters (pg_lsclusters) and the major versions its Debian
    supports: ``{"clusters": [{"version": "15", "name": "main", "port": 5432, "online":
    True}], "supported": ["15"]}``; none without postgresql-common."""

    def command(self) -> str:
        return (
            "if command -v pg_lsclusters >/dev/null; then pg_lsclusters -h; echo --;"
            " /usr/share/postgresql-common/supported-versions; fi; true"
        )

    @staticmethod
    def default():
        return {"clusters": [], "supported": []}

    def process(self, output):
        """pg_lsclusters' columns (version, cluster, port, status...), then the versions."""
        clusters, supported, past = [], [], False
        for line in output:
            if line.strip() == "--":
                past = True
            elif past and line.strip():
                supported.append(line.strip())
            elif len(fields := line.split()) >= 4 and fields[2].isdigit():
                version, name, port, status = fields[:4]
                clusters.append(
                    {
                        "version": version,
                        "name": name,
                        "port": int(port),
                        "online": status.startswith("online"),
                    }
                )
        return {"clusters": clusters, "supported": supported}


class DatabaseAccess(FactBase):
    """Each database's owner and whether PUBLIC (every role) may connect to it: ``{name:
    {"owner": role, "public": bool}}``; read as the postgres superuser (AS_POSTGRES)."""

    def requires_command(self) -> str:
        return "psql"

    def command(self) -> str:
        return (
            "psql -XAt -F '|' -c \"SELECT datname, pg_get_userbyid(datdba),"
            " has_database_privilege('public', oid, 'CONNECT') FROM pg_database\""
        )

    @staticmethod
    def default():
        return {}

    def process(self, output):
        rows = (line.rsplit("|", 2) for line in output if line.count("|") >= 2)
        return {name: {"owner": owner, "public": flag == "t"} for name, owner, flag in rows}


def serving_cluster(clusters: dict) -> dict | None:
    """The cluster on PORT (the one the apps' URL reaches), or None."""
    return next((c for c in clusters["clusters"] if c["port"] == PORT), None)


def cluster_problem(clusters: dict) -> str | None:
    """Why the apps' databases cannot go into the host's clusters: some exist, none on PORT
    (creating one would be a cluster beside the operator's)."""
    if clusters["clusters"] and serving_cluster(clusters) is None:
        found = ", ".join(
            f"{c['version']}/{c['name']} on {c['port']}" for c in clusters["clusters"]
        )
        return (
            f"postgresql: this host's PostgreSQL clusters ({found}) have none on port {PORT},"
            f" which DATABASE_URL reaches: move one to {PORT} (port in its postgresql.conf),"
            " or create one (pg_createcluster --start VERSION main)"
        )
    return None


def check_postgresql(plan: HostPlan) -> None:
    """Before any change: a host whose clusters cannot take the apps' databases is refused;
    one of another major version than Debian's is used as it is, and said so; an app that
    no longer asks for the database it has here is warned of (its data stays)."""
    clusters = host.get_fact(PostgresClusters)
    if clusters["clusters"]:
        warn_of_dropped_databases(plan)
    if not plan.postgresql:
        return
    problem = cluster_problem(clusters)
    if problem:
        raise SettingsRefused(problem)
    cluster = serving_cluster(clusters)
    if cluster and clusters["supported"] and cluster["version"] not in clusters["supported"]:
        logger.warning(
            f"{host.name}: PostgreSQL {cluster['version']} (cluster {cluster['name']}) serves"
            f" the apps' databases as it is; this Debian's is {', '.join(clusters['supported'])}:"
            " the deploy never changes a cluster's major version (pg_upgradecluster, when you"
            " choose: docs/databases.md)"
        )


def warn_of_dropped_databases(plan: HostPlan) -> None:
    """Say so when an app with a database on this host no longer sets ``postgresql``: its
    environment loses DATABASE_URL with this run (the database itself stays)."""
    quitting = [a for a in plan.apps if not a.postgresql and not a.database_server]
    if not quitting:
        return
    databases = host.get_fact(DatabaseAccess, **AS_POSTGRES)
    for app in quitting:
        if databases.get(app.app_name, {}).get("owner") == app.user:
            logger.warning(
                f"{host.name}: {app.app_name} has a database here but postgresql is off: its"
                " environment loses DATABASE_URL with this run (the database stays); set"
                " postgresql = true again if the app still uses it"
            )


def server_packages(plan: HostPlan) -> list[str]:
    """Debian's PostgreSQL server when an app wants a database and the host has no cluster
    (one there already is used: another version's server is not installed beside it)."""
    if not plan.postgresql:
        return []
    return [] if host.get_fact(PostgresClusters)["clusters"] else [SERVER_PACKAGE]


@operation()
def cluster_online():
    """
    Start the cluster the apps' databases live in, when it is down (it starts at boot with
    Debian's postgresql.service).
    """
    cluster = serving_cluster(host.get_fact(PostgresClusters))
    if cluster is None:
        host.noop(f"the {SERVER_PACKAGE} package creates and starts the cluster")
    elif cluster["online"]:
        host.noop(f"PostgreSQL {cluster['version']}/{cluster['name']} is online")
    else:
        yield f"systemctl start postgresql@{cluster['version']}-{cluster['name']}.service"


ROLE_POWERS = ("superuser", "createdb", "createrole", "replication", "bypassrls")


@operation()
def role_limited(role: str):
    """
    Take from ``role`` every power beyond logging in (superuser, creating databases and
    roles, replication, bypassing row security): a role of that name that existed before
    the app (pyinfra's role operation leaves an existing one as it is) gets no more than
    its own database.

    + role: the app's role
    """
    powers = host.get_fact(PostgresRoles).get(role, {})
    held = [
        power for power in ROLE_POWERS if powers.get("super" if power == "superuser" else power)
    ]
    if not held:
        host.noop(f"{role} holds no power beyond logging in")
        return
    limits = " ".join(f"NO{power.upper()}" for power in ROLE_POWERS)
    yield f"psql -XAtc 'ALTER ROLE \"{role}\" {limits}'"


@operation()
def connect_revoked(database: str):
    """
    Revoke PUBLIC's CONNECT on ``database``: only its owner (and superusers) may connect.

    + database: its name (created by then; under ``--dry`` it may not exist yet)
    """
    if host.get_fact(DatabaseAccess).get(database, {"public": True})["public"]:
        yield f"psql -XAtc 'REVOKE CONNECT ON DATABASE \"{database}\" FROM PUBLIC'"
    else:
        host.noop(f"only {database}'s owner may connect to it")


def app_database(settings: Settings) -> None:
    """The app's role (its system user's name) and its database owned by it (UTF-8),
    connectable by that role alone."""
    postgres.role(
        name=f"PostgreSQL role {settings.user}", role=settings.user, login=True, **AS_POSTGRES
    )
    role_limited(
        name=f"{settings.user} may do nothing but log in", role=settings.user, **AS_POSTGRES
    )
    postgres.database(
        name=f"PostgreSQL database {settings.app_name}",
        database=settings.app_name,
        owner=settings.user,
        template="template0",
        encoding="UTF8",
        **AS_POSTGRES,
    )
    connect_revoked(
        name=f"Only {settings.user} connects to {settings.app_name}",
        database=settings.app_name,
        **AS_POSTGRES,
    )


@deploy("PostgreSQL")
def configure_database(settings: Settings) -> None:
    """The cluster online, the app's role (peer authentication: no password) and database."""
    cluster_online()
    app_database(settings)
