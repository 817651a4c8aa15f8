"""The inventory's database server (the ``database_servers`` group): PostgreSQL and Redis for
the apps of the app servers that ask for them (``postgresql``, ``redis``), over the private
network. PostgreSQL listens on the server's private address too and admits each app's role,
to its own database alone, from the app servers' addresses alone (scram-sha-256); each app's
Redis listens on a port of its own on that address and admits its app's user alone; UFW
admits the app servers alone. One password per app: made by the controller the first time
(``secrets``), kept root-only on the database server, read back from there on later runs
(sealed to the run's key: deploys/ops/sealed.py) and written, hidden, into the app servers'
``database.env``: never on a command line, in a log, a fact's output or ``--diff``."""

from __future__ import annotations

import ipaddress
import secrets
import shlex
import string

from pyinfra import host, state
from pyinfra.api import operation
from pyinfra.facts.files import FileContents, Sha256File
from pyinfra.operations import files

from deploys.config.datastores import REDIS_GRANTS, redis_port
from deploys.config.fingerprint import digest
from deploys.config.layout import Layout
from deploys.config.plan import HostPlan
from deploys.config.settings import Settings
from deploys.ops import ufw
from deploys.ops.fileops import secret_file
from deploys.ops.render import put_text, render
from deploys.ops.sealed import SealedFile, public_key, unseal
from deploys.ops.stamps import Level, changes_applied
from deploys.ops.typed import deploy
from deploys.ops.units import unit_loaded, unit_state
from deploys.stack.firewall import GUIDE_TEST_RULE, WEB_RULES
from deploys.stack.fleet import Fleet
from deploys.stack.postgresql import PORT, app_database, cluster_online

SECRETS = "/etc/flask-deploy/databases"  # root 0700: each app's password, what was applied of it
REDIS_ETC = "/etc/flask-deploy/redis"  # each app's Redis config and ACL (hashes): no secret
HBA_FILE = "/etc/flask-deploy/pg_hba.conf"  # the cluster's hba_file
CLUSTER_STAMP = f"{SECRETS}/postgresql.applied"
PASSWORD_ALPHABET = string.ascii_letters + string.digits  # 40 of them: about 238 bits
# the session settings under which a role is given its password: no log, sample or statistic
# of the statement (a failing one included), whatever the cluster's own settings
UNLOGGED = (
    ("log_statement", "none"),
    ("log_min_duration_statement", "-1"),
    ("log_min_error_statement", "panic"),
    ("log_transaction_sample_rate", "0"),
    ("pg_stat_statements.track_utility", "off"),
)


def password_file(app: str) -> str:
    return f"{SECRETS}/{app}.password"


def served(plan: HostPlan) -> list[Settings]:
    """The apps with a database or Redis here."""
    return [app for app in plan.apps if app.postgresql or app.redis]


def database_firewall_rules(plan: HostPlan, fleet: Fleet) -> tuple[list[str], list[str]]:
    """UFW's rules here: SSH, PostgreSQL's port and each app's Redis port from the app
    servers alone; no web rule."""
    ports = [PORT] if any(a.postgresql for a in plan.apps) else []
    ports += [redis_port(a.app_name) for a in plan.apps if a.redis]
    allow = [
        plan.host.ssh_allow,
        *(f"from {a} to any port {p} proto tcp" for a in fleet.app_servers for p in ports),
        *plan.host.firewall_allow,
    ]
    return allow, [GUIDE_TEST_RULE, *WEB_RULES]


def hba(plan: HostPlan, fleet: Fleet) -> str:
    """The cluster's pg_hba.conf: Debian's local rules, then each app's role to its own
    database from each app server."""
    apps = [a for a in plan.apps if a.postgresql]
    return render("pg_hba.conf.j2", apps=apps, servers=list(map(cidr, fleet.app_servers)))


def cidr(address: str) -> str:
    """An app server's address as pg_hba.conf takes it: an IP as the one address, a name as
    it is."""
    try:
        return str(ipaddress.ip_network(address))
    except ValueError:
        return address


def listen_command(address: str) -> str:
    """PostgreSQL told to listen on ``address`` too and to read our hba_file, then
    restarted (both take a restart)."""
    settings = {"listen_addresses": f"localhost,{address}", "hba_file": HBA_FILE}
    sql = [f"ALTER SYSTEM SET {name} = '{value}'" for name, value in settings.items()]
    return (
        "runuser -u postgres -- psql -XAq "
        + " ".join(f"-c {shlex.quote(s)}" for s in sql)
        + " && systemctl restart postgresql.service"
    )


@deploy("Database server")
def configure_database_server(plan: HostPlan, fleet: Fleet) -> None:
    """UFW, the folders of the apps' secrets and Redis configs, PostgreSQL listening on the
    private address with our hba rules (a reload when only the rules changed)."""
    if plan.host.firewall:
        allow, absent = database_firewall_rules(plan, fleet)
        ufw.policy(name=f"ufw: allow {', '.join(allow)}; deny incoming", allow=allow, absent=absent)
    files.directory(name=f"Folder {SECRETS} (root only)", path=SECRETS, user="root", mode="700")
    if plan.redis:
        files.directory(name=f"Folder {REDIS_ETC}", path=REDIS_ETC, user="root", mode="755")
    if not any(a.postgresql for a in plan.apps):
        return
    rules = hba(plan, fleet)
    rules_op = put_text(
        f"PostgreSQL {HBA_FILE}", rules, HBA_FILE, mode="640", user="root", group="postgres"
    )
    cluster_online()
    changes_applied(
        name="PostgreSQL listens on the private address, with the apps' rules",
        stamp=CLUSTER_STAMP,
        levels=[
            Level(
                "restart",
                digest(fleet.database_server, HBA_FILE),
                [listen_command(fleet.database_server)],
            ),
            Level(
                "reload",
                digest(rules),
                ["runuser -u postgres -- psql -XAqc 'SELECT pg_reload_conf()'"],
                (rules_op,),
            ),
        ],
        files={HBA_FILE: rules},
    )


def acl_script(settings: Settings) -> str:
    """The shell script that writes the app's Redis ACL from its password file: the default
    user off, the app's user known by the password's SHA-256 (no secret: Redis' user reads
    it); the password never an argument of a command."""
    app, user = settings.app_name, settings.user
    acl = f"{REDIS_ETC}/{app}.acl"
    return " && ".join(
        [
            f"pw=$(cat {password_file(app)})",
            'hash=$(printf %s "$pw" | sha256sum | cut -d" " -f1)',
            f'printf "user default off\\nuser {user} on #%s {REDIS_GRANTS}\\n" "$hash" > {acl}.new',
            f"chmod 644 {acl}.new && mv {acl}.new {acl}",
        ]
    )


@operation()
def acl_written(settings: Settings):
    """
    Write the app's Redis ACL from its password when the password changed since.

    + settings: the app's
    """
    app = settings.app_name
    have = host.get_fact(Sha256File, path=password_file(app))
    applied = f"{SECRETS}/{app}.acl-password"
    if have and host.get_fact(FileContents, path=applied) == [have]:
        host.noop(f"{app}'s Redis ACL is current")
        return
    yield acl_script(settings)
    yield f'sha256sum < {password_file(app)} | cut -d" " -f1 > {applied}'


_PASSWORDS: dict[str, str] = {}  # app -> its password, this run's (the controller's memory)


def app_password(settings: Settings, fleet: Fleet) -> str:
    """The app's password: the one the database server keeps, else a new one made here
    once for the whole run. Read before any operation runs, sealed to the run's key: the
    fact's output pyinfra prints with -vvv or --debug-facts is ciphertext. The hosts' deploy
    code runs side by side: the first answer is kept, so every host gets the same one."""
    app = settings.app_name
    if app not in _PASSWORDS:
        server = state.inventory.get_host(fleet.database_host)
        sealed = server.get_fact(SealedFile, path=password_file(app), key=public_key(), _sudo=True)
        kept = unseal(sealed).strip() if sealed else ""
        made = "".join(secrets.choice(PASSWORD_ALPHABET) for _ in range(40))
        _PASSWORDS.setdefault(app, kept or made)  # no switch of greenlet from read to here
    return _PASSWORDS[app]


def app_urls(settings: Settings, fleet: Fleet) -> str:
    """The app servers' database.env: the URLs of the app's database and Redis there."""
    user, app, address = settings.user, settings.app_name, fleet.database_server
    password = app_password(settings, fleet)
    lines = []
    if settings.postgresql:
        lines.append(f'DATABASE_URL="postgresql://{user}:{password}@{address}:{PORT}/{app}"')
    if settings.redis:
        port = redis_port(app)
        lines.append(f'REDIS_URL="redis://{user}:{password}@{address}:{port}/0"')
    return "\n".join(lines) + "\n"


def app_database_env(settings: Settings, fleet: Fleet):
    """On an app server: the app's database.env (root:<app> 0640), contents hidden."""
    return secret_file(
        name=f"{settings.app_name}'s URLs on {fleet.database_host} (hidden)",
        path=Layout.of(settings).database_env,
        content=app_urls(settings, fleet),
        user="root",
        group=settings.user,
    )


@operation()
def role_password(role: str, app: str):
    """
    Give ``role`` the app's password (sent to psql on its input, statement logging off; the
    cluster keeps its SCRAM verifier) when the password changed since it was last given.

    + role: the app's role
    + app: the app, whose password file holds it
    """
    secret, applied = password_file(app), f"{SECRETS}/{app}.role-password"
    have = host.get_fact(Sha256File, path=secret)
    if have and host.get_fact(FileContents, path=applied) == [have]:
        host.noop(f"{role}'s password is set (contents hidden)")
        return
    quiet = "".join(f"SET {name} = {value};\\n" for name, value in UNLOGGED)
    statements = f"{quiet}ALTER ROLE \\\"{role}\\\" PASSWORD '%s';\\n"
    yield (
        f'pw=$(cat {secret}) && printf "{statements}" "$pw"'
        " | runuser -u postgres -- psql -XAq -v ON_ERROR_STOP=1"
        f' && sha256sum < {secret} | cut -d" " -f1 > {applied}'
    )


def memory_max(maxmemory: str) -> str:
    """The Redis unit's memory ceiling: twice its data's (``redis_maxmemory``), plus 64 MB
    for clients' buffers and the snapshot's fork."""
    return f"{memory_max_bytes(maxmemory) >> 20}M"


def memory_max_bytes(maxmemory: str) -> int:
    """memory_max in bytes: also the most a snapshot of that Redis can hold."""
    number, unit = int(maxmemory[:-2]), maxmemory[-2:]
    megabytes = {"kb": number / 1024, "mb": number, "gb": number * 1024}[unit]
    return (int(2 * megabytes) + 64) << 20


def database_redis(settings: Settings, address: str) -> tuple[str, str]:
    """The app's Redis here: its unit and config texts."""
    context = {"s": settings, "layout": Layout.of(settings), "address": address}
    context |= {"port": redis_port(settings.app_name), "etc": REDIS_ETC}
    context["memory_max"] = memory_max(settings.redis_maxmemory)
    return render("database-redis.service.j2", **context), render(
        "database-redis.conf.j2", **context
    )


@deploy("App database")
def serve_app_data(settings: Settings, fleet: Fleet) -> None:
    """The app's password, its role and database (closed to PUBLIC), its Redis."""
    made = secret_file(
        name=f"{settings.app_name}'s password (root only, hidden)",
        path=password_file(settings.app_name),
        content=app_password(settings, fleet) + "\n",
        user="root",
        group="root",
        mode="600",
    )
    if settings.postgresql:
        app_database(settings)
        role_password(name=f"{settings.user}'s password", role=settings.user, app=settings.app_name)
    if settings.redis:
        layout = Layout.of(settings)
        unit, conf = database_redis(settings, fleet.database_server)
        name, conf_path = layout.redis_unit_name, f"{REDIS_ETC}/{settings.app_name}.conf"
        acl = acl_written(name=f"{settings.app_name}'s Redis ACL", settings=settings)
        triggers = (
            made,
            acl,
            put_text(f"Redis {conf_path}", conf, conf_path, mode="644", user="root"),
            put_text(f"Unit {layout.system_unit(name)}", unit, layout.system_unit(name)),
        )
        unit_loaded(name=f"systemd knows the current {name}", unit=name)
        changes_applied(
            name=f"Apply changes to {name}",
            stamp=f"{SECRETS}/{name}.applied",
            levels=[Level("restart", digest(unit, conf), [f"systemctl restart {name}"], triggers)],
            files={layout.system_unit(name): unit, conf_path: conf},
        )
        unit_state(name=f"{name} enabled and running", unit=name, running=True, enabled=True)
