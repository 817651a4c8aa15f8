"""The inventory's database server (the ``database_servers`` group): PostgreSQL and Redis for
the apps of the app servers that ask for them (``postgresql``, ``redis``), over the private
network. PostgreSQL listens on the server's private address too and admits each app's role,
to its own database alone, from the app servers' addresses alone (scram-sha-256); each app's
Redis listens on a port of its own on that address and admits its app's user alone; UFW
admits the app servers alone. One password per app, made on the database server from its own
randomness into root-only files, reaches the app servers' ``database.env`` through the
deploy's own connections: never on a command line, in a log, a fact or ``--diff``."""

from __future__ import annotations

import ipaddress
import json
import shlex
from io import BytesIO

from pyinfra import host, state
from pyinfra.api import FileUploadCommand, FunctionCommand, operation
from pyinfra.facts.files import File, FileContents, Sha256File
from pyinfra.operations import files

from deploys.config.datastores import REDIS_GRANTS, redis_port
from deploys.config.fingerprint import digest
from deploys.config.layout import Layout
from deploys.config.plan import HostPlan
from deploys.config.settings import Settings
from deploys.ops import ufw
from deploys.ops.render import put_text, render
from deploys.ops.stamps import Level, changes_applied
from deploys.ops.typed import deploy
from deploys.ops.units import unit_loaded, unit_state
from deploys.stack.firewall import GUIDE_TEST_RULE, WEB_RULES
from deploys.stack.fleet import Fleet
from deploys.stack.postgresql import PORT, app_database, cluster_online

SECRETS = "/etc/flask-deploy/databases"  # root 0700: each app's password and URLs
REDIS_ETC = "/etc/flask-deploy/redis"  # each app's Redis config and ACL (hashes): no secret
HBA_FILE = "/etc/flask-deploy/pg_hba.conf"  # the cluster's hba_file
CLUSTER_STAMP = f"{SECRETS}/postgresql.applied"
PASSWORD_CHARS = 40  # letters and digits: about 238 bits
# the session settings under which a role is given its password: no log, sample or statistic
# of the statement (a failing one included), whatever the cluster's own settings
UNLOGGED = (
    ("log_statement", "none"),
    ("log_min_duration_statement", "-1"),
    ("log_min_error_statement", "panic"),
    ("log_transaction_sample_rate", "0"),
    ("pg_stat_statements.track_utility", "off"),
)


def secret_file(app: str) -> str:
    return f"{SECRETS}/{app}.password"


def urls_file(app: str) -> str:
    """The lines an app server's database.env gets (the URLs, with the password)."""
    return f"{SECRETS}/{app}.env"


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


def credentials_script(settings: Settings, address: str) -> str:
    """The shell script that makes the app's password once (root-only, from the host's
    randomness; never an argument of a command) and writes the URLs its app servers get and
    its Redis' ACL (the password's SHA-256) from it."""
    app, user = settings.app_name, settings.user
    secret, urls = secret_file(app), urls_file(app)
    lines = []
    if settings.postgresql:
        lines.append(f'DATABASE_URL=\\"postgresql://{user}:%s@{address}:{PORT}/{app}\\"\\n')
    if settings.redis:
        lines.append(f'REDIS_URL=\\"redis://{user}:%s@{address}:{redis_port(app)}/0\\"\\n')
    passwords = " ".join(['"$pw"'] * len(lines))
    script = [
        "umask 077",
        f"[ -s {secret} ] || {{ head -c 64 /dev/urandom | base64 -w0 | tr -dc A-Za-z0-9"
        f" | head -c {PASSWORD_CHARS} > {secret}.new && mv {secret}.new {secret}; }}",
        f"pw=$(cat {secret})",
        f'printf "{"".join(lines)}" {passwords} > {urls}.new',
        f"mv {urls}.new {urls}",
    ]
    if settings.redis:
        acl = f"{REDIS_ETC}/{app}.acl"
        script += [
            'hash=$(printf %s "$pw" | sha256sum | cut -d" " -f1)',
            f'printf "user default off\\nuser {user} on #%s {REDIS_GRANTS}\\n" "$hash" > {acl}.new',
            f"chmod 644 {acl}.new && mv {acl}.new {acl}",  # a hash: Redis' user reads it
        ]
    return " && ".join(script)


def params_file(app: str) -> str:
    """What the app's URLs and ACL were last written for (no secret)."""
    return f"{SECRETS}/{app}.params"


def credentials_params(settings: Settings, address: str) -> str:
    """The record of what the app's URLs and ACL are written for."""
    return json.dumps({"script": credentials_script(settings, address)}, sort_keys=True)


@operation()
def credentials_made(settings: Settings, address: str):
    """
    Make the app's password here once, and the URLs and ACL written from it again when
    what they name (address, port, role) changed; a record of that (no secret) beside.

    + settings: the app's
    + address: this database server's private address
    """
    record, wanted = params_file(settings.app_name), credentials_params(settings, address)
    made = host.get_fact(File, path=secret_file(settings.app_name))
    if made and "\n".join(host.get_fact(FileContents, path=record) or []) == wanted:
        host.noop(f"{settings.app_name}'s password and URLs are made (contents hidden)")
        return
    yield credentials_script(settings, address)
    yield f"printf %s {shlex.quote(wanted)} > {record}"


@operation()
def role_password(role: str, app: str):
    """
    Give ``role`` the app's password (sent to psql on its input, statement logging off; the
    cluster keeps its SCRAM verifier) when the password changed since it was last given.

    + role: the app's role
    + app: the app, whose password file holds it
    """
    secret, applied = secret_file(app), f"{SECRETS}/{app}.role-password"
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
    number, unit = int(maxmemory[:-2]), maxmemory[-2:]
    megabytes = {"kb": number / 1024, "mb": number, "gb": number * 1024}[unit]
    return f"{int(2 * megabytes) + 64}M"


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
    made = credentials_made(
        name=f"{settings.app_name}: password and URLs (root only)",
        settings=settings,
        address=fleet.database_server,
    )
    if settings.postgresql:
        app_database(settings)
        role_password(name=f"{settings.user}'s password", role=settings.user, app=settings.app_name)
    if settings.redis:
        layout = Layout.of(settings)
        unit, conf = database_redis(settings, fleet.database_server)
        name, conf_path = layout.redis_unit_name, f"{REDIS_ETC}/{settings.app_name}.conf"
        triggers = (
            made,
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


def _copy(name: str, source: str, buffer: BytesIO) -> None:
    """Read ``source`` (root's) from the database server ``name`` into ``buffer``, through a
    copy in its SSH user's private upload folder."""
    server = state.inventory.get_host(name)
    temp = server.get_temp_filename(temp_directory=server.data._temp_dir)  # one per copy
    if not server.get_file(source, buffer, remote_temp_filename=temp, _sudo=True):
        raise OSError(f"could not read {source} on {name}")
    buffer.seek(0)


def urls_in_place(settings: Settings, fleet: Fleet) -> str | None:
    """The SHA-256 of the app's URLs file on the database server, read before the run
    changes anything, when the run leaves it as it is; None when it writes it now (its
    password or what the URLs name is new) or the server cannot be read."""
    server = state.inventory.get_host(fleet.database_host)
    app = settings.app_name
    made = server.get_fact(File, path=secret_file(app), _sudo=True)
    record = server.get_fact(FileContents, path=params_file(app), _sudo=True) or []
    if not made or "\n".join(record) != credentials_params(settings, fleet.database_server):
        return None
    return server.get_fact(Sha256File, path=urls_file(app), _sudo=True)


@operation()
def database_env_copied(settings: Settings, source_host: str, in_place: str | None):
    """
    Copy the app's URLs (with its password) from the database server into the app's
    database.env (root:<app> 0640) unless it holds them already, through the deploy's
    connections: the contents never show.

    + settings: the app's
    + source_host: the database server's inventory name
    + in_place: the SHA-256 of the URLs there when this run leaves them (urls_in_place)
    """
    dest = Layout.of(settings).database_env
    if in_place is not None and in_place == host.get_fact(Sha256File, path=dest):
        host.noop(f"{dest} is up to date (contents hidden)")
        return
    host.log(f"Will write {dest} from {source_host} (contents hidden)")
    buffer = BytesIO()
    quoted, owner = shlex.quote(dest), f"root:{settings.user}"
    yield f"touch {quoted} && chown {owner} {quoted} && chmod 640 {quoted}"
    yield FunctionCommand(_copy, (source_host, urls_file(settings.app_name), buffer), {})
    temp = host.get_temp_filename(temp_directory=host.data._temp_dir)
    yield FileUploadCommand(buffer, dest, remote_temp_filename=temp)
    yield f"chown {owner} {quoted} && chmod 640 {quoted}"
