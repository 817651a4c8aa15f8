"""PostgreSQL and Redis (#29) without a host: the settings, the environment the app gets, the
Redis texts, the cluster decisions and the facts on output captured from a real Debian 12
host (tests/captured/postgres-clusters*.txt, database-access.txt, answer-as-psql-*.txt,
tcp-listeners-sshd.txt), the operations' commands."""

from __future__ import annotations

import shlex
import subprocess
from pathlib import Path
from types import SimpleNamespace

import gevent
import pytest
from pyinfra.facts.files import FileContents, Sha256File
from pyinfra.facts.postgres import PostgresRoles

from deploys.config.datastores import app_environment, linked_urls, own_urls, redis_port
from deploys.config.plan import load_plan
from deploys.config.settings import SettingsError, load_settings
from deploys.ops.context import SettingsRefused
from deploys.ops.facts import AnswerAs, TcpListeners
from deploys.stack import database_server
from deploys.stack.appservice import env_file, sandbox
from deploys.stack.database_server import (
    acl_script,
    app_urls,
    database_firewall_rules,
    database_redis,
    hba,
    listen_command,
    memory_max,
    role_password,
)
from deploys.stack.fleet import Fleet
from deploys.stack.postgresql import (
    AS_POSTGRES,
    DatabaseAccess,
    PostgresClusters,
    check_postgresql,
    cluster_online,
    cluster_problem,
    connect_revoked,
    role_limited,
    server_packages,
)
from deploys.stack.redis import redis_conf, redis_unit
from tests.fakehost import commands, fact

CAPTURED = Path(__file__).parent / "captured"
BOTH = {"postgresql": True, "redis": True}


def lines(name: str) -> list[str]:
    return (CAPTURED / name).read_text().splitlines()


def clusters(name: str) -> dict:
    return PostgresClusters().process(lines(name))


# -- settings and the environment the app gets ---------------------------------------------


def test_the_app_gets_socket_urls_without_a_password():
    settings = load_settings(BOTH)
    assert linked_urls(settings) == {
        "DATABASE_URL": "postgresql:///myproject?host=/run/postgresql",
        "REDIS_URL": "unix:///run/myproject-redis/redis.sock",
    }
    assert 'DATABASE_URL="postgresql:///myproject?host=/run/postgresql"' in env_file(settings)
    assert linked_urls(load_settings({})) == {}


def test_an_app_that_sets_its_own_url_keeps_it():
    settings = load_settings({**BOTH, "env": {"DATABASE_URL": "postgresql://db.example/x"}})
    assert own_urls(settings) == ["DATABASE_URL"]
    env = app_environment(settings)
    assert env["DATABASE_URL"] == "postgresql://db.example/x"
    assert env["REDIS_URL"] == "unix:///run/myproject-redis/redis.sock"


@pytest.mark.parametrize(
    ("data", "named"),
    [
        ({"redis_maxmemory": "lots"}, "redis_maxmemory"),
        ({"redis_maxmemory": "0mb"}, "redis_maxmemory"),
        ({"redis_maxmemory_policy": "lru"}, "redis_maxmemory_policy"),
        ({"postgresql": "maybe"}, "postgresql"),
        ({"app_name": "shop-redis"}, "app_name: 'shop-redis' ends like"),
    ],
)
def test_bad_settings_are_refused_naming_the_key(data, named):
    with pytest.raises(SettingsError, match=named):
        load_settings(data)


def test_the_sandbox_hides_the_hosts_database_and_redis_files():
    text = sandbox(load_settings({}))
    assert "InaccessiblePaths=-/etc/postgresql -/var/lib/postgresql" in text
    assert "InaccessiblePaths=-/etc/redis -/var/lib/redis" in text


# -- the app's Redis ------------------------------------------------------------------------


def test_redis_listens_on_its_socket_alone_with_memory_bounded():
    settings = load_settings({**BOTH, "redis_maxmemory": "64mb"})
    conf = redis_conf(settings).splitlines()
    for line in (
        "port 0",
        "unixsocket /run/myproject-redis/redis.sock",
        "unixsocketperm 700",
        "dir /var/lib/myproject-redis",
        "maxmemory 64mb",
        "maxmemory-policy noeviction",
        "user default on nopass ~* &* +@all -@admin +client|list +bgsave +lastsave",
    ):
        assert line in conf
    unit = redis_unit(settings)
    for line in ("User=myproject", "RuntimeDirectoryMode=0700", "StateDirectory=myproject-redis"):
        assert line in unit.splitlines()


# -- PostgreSQL: the clusters, the database, the facts ----------------------------------------


def test_pg_lsclusters_is_read_as_captured():
    found = clusters("postgres-clusters.txt")
    assert found["supported"] == ["15"]
    assert found["clusters"] == [
        {"version": "15", "name": "main", "port": 5432, "online": True},
        {"version": "15", "name": "second", "port": 5433, "online": False},
    ]
    assert cluster_problem(found) is None
    assert PostgresClusters().process([]) == PostgresClusters.default()


def test_clusters_none_of_which_serves_the_default_port_are_refused(fake):
    found = clusters("postgres-clusters-none-on-5432.txt")
    problem = cluster_problem(found)
    assert problem and "15/main on 5435, 15/second on 5433" in problem
    assert "pg_createcluster" in problem
    fake({fact(PostgresClusters): found})
    with pytest.raises(SettingsRefused, match="none on port 5432"):
        check_postgresql(load_plan({"postgresql": True}))


def test_the_server_package_only_where_no_cluster_is(fake):
    plan = load_plan({"postgresql": True})
    fake({fact(PostgresClusters): PostgresClusters.default()})
    assert server_packages(plan) == ["postgresql"]
    assert server_packages(load_plan({})) == []


def test_an_existing_cluster_is_used_as_it_is(fake):
    fake({fact(PostgresClusters): clusters("postgres-clusters.txt")})
    assert server_packages(load_plan({"postgresql": True})) == []
    assert commands(cluster_online) == []


def test_a_down_cluster_is_started(fake):
    found = clusters("postgres-clusters.txt")
    found["clusters"][0]["online"] = False
    fake({fact(PostgresClusters): found})
    assert commands(cluster_online) == ["systemctl start postgresql@15-main.service"]


def test_public_connect_is_revoked_once(fake):
    access = DatabaseAccess().process(lines("database-access.txt"))
    assert access["board"] == {"owner": "board", "public": False}
    assert access["postgres"] == {"owner": "postgres", "public": True}
    host = fake({fact(DatabaseAccess): access})
    assert commands(connect_revoked, "board") == []
    assert host.noops == ["only board's owner may connect to it"]
    assert commands(connect_revoked, "template1") == [
        "psql -XAtc 'REVOKE CONNECT ON DATABASE \"template1\" FROM PUBLIC'"
    ]
    assert len(commands(connect_revoked, "new")) == 1  # not created yet (--dry)


def test_a_command_as_a_user_is_read_with_its_status():
    assert AnswerAs().process(lines("answer-as-psql-ok.txt")) == {"output": ["1"], "status": 0}
    denied = AnswerAs().process(lines("answer-as-psql-denied.txt"))
    assert denied["status"] == 2 and 'role "nobody" does not exist' in denied["output"][0]
    assert AnswerAs().command("board", ["redis-cli", "-s", "/run/x.sock", "ping"]) == (
        "timeout -s KILL 10 runuser -u board -- setpriv --no-new-privs"
        ' redis-cli -s /run/x.sock ping 2>&1; echo "exit=$?"'
    )


def test_a_units_tcp_listeners_are_read_from_their_cgroups():
    def listening(unit: str) -> list[str]:
        fact = TcpListeners()
        fact.command(unit)
        return fact.process(lines("tcp-listeners.txt"))

    assert listening("postgresql@15-main.service") == ["172.17.0.6:5432", "127.0.0.1:5432"]
    assert listening("board-redis.service") == ["172.17.0.6:6410"]
    assert listening("redis.service") == []  # a name the cgroup only ends with
    assert TcpListeners().process([]) == []


# -- a fleet's database server ------------------------------------------------------------


FLEET = Fleet(
    load_balancers=("10.0.0.2",),
    app_servers=("10.0.0.11", "10.0.0.12"),
    balancing=False,
    batches=(("app1",), ("app2",)),
    names=("app1", "app2"),
    database_server="10.0.0.20",
    database_host="db1",
    serving_data=True,
)


def test_the_database_server_admits_the_app_servers_alone():
    plan = load_plan({**BOTH, "app_name": "board"})
    allow, absent = database_firewall_rules(plan, FLEET)
    port = redis_port("board")
    assert allow == [
        "OpenSSH",
        "from 10.0.0.11 to any port 5432 proto tcp",
        f"from 10.0.0.11 to any port {port} proto tcp",
        "from 10.0.0.12 to any port 5432 proto tcp",
        f"from 10.0.0.12 to any port {port} proto tcp",
    ]
    assert "Nginx HTTP" in absent and "5000" in absent
    rules = hba(plan, FLEET).splitlines()
    assert "host    board    board    10.0.0.11/32    scram-sha-256" in rules
    assert "local   all             all                                     peer" in rules
    assert "10.0.0.2" not in hba(plan, FLEET)  # the load balancer
    words = shlex.split(listen_command("10.0.0.20"))
    assert words[:6] == ["runuser", "-u", "postgres", "--", "psql", "-XAq"]
    assert "ALTER SYSTEM SET listen_addresses = 'localhost,10.0.0.20'" in words
    assert "ALTER SYSTEM SET hba_file = '/etc/flask-deploy/pg_hba.conf'" in words


def test_the_app_servers_get_the_urls_and_redis_a_hash(monkeypatch):
    settings = load_settings({**BOTH, "app_name": "board"})
    monkeypatch.setitem(database_server._PASSWORDS, "board", "s3cret")
    urls = app_urls(settings, FLEET).splitlines()
    assert urls == [
        'DATABASE_URL="postgresql://board:s3cret@10.0.0.20:5432/board"',
        f'REDIS_URL="redis://board:s3cret@10.0.0.20:{redis_port("board")}/0"',
    ]
    script = acl_script(settings)
    assert script.startswith("pw=$(cat /etc/flask-deploy/databases/board.password)")
    assert 'printf %s "$pw" | sha256sum' in script and "s3cret" not in script
    assert "user default off\\nuser board on #%s ~* &* +@all -@admin" in script


class SlowServer:
    """A database server whose facts answer after a switch of greenlet, as a real one's do;
    ``kept``: its password file's text (None: no file), sealed by this machine's openssl."""

    def __init__(self, tmp_path, kept):
        self.path, self.reads = tmp_path / "board.password", 0
        if kept is not None:
            self.path.write_text(kept)

    def get_fact(self, fact_class, path, key, _sudo):
        self.reads += 1
        gevent.sleep(0.01)
        command = fact_class().command(path=str(self.path), key=key)
        output = subprocess.run(["sh", "-c", command], capture_output=True, text=True).stdout
        return fact_class().process(output.splitlines())


@pytest.mark.parametrize("kept", [None, "Kept0password\n"])
def test_hosts_reading_the_password_at_once_get_one(monkeypatch, tmp_path, kept):
    """The hosts' deploy code runs side by side (pyinfra spawns one greenlet per host): all
    get the same password, the kept one when there is one."""
    server = SlowServer(tmp_path, kept)
    monkeypatch.setattr(database_server, "_PASSWORDS", {})
    inventory = SimpleNamespace(get_host=lambda _: server)
    monkeypatch.setattr(database_server, "state", SimpleNamespace(inventory=inventory))
    settings = load_settings({**BOTH, "app_name": "board"})
    readers = [gevent.spawn(database_server.app_password, settings, FLEET) for _ in range(3)]
    gevent.joinall(readers, raise_error=True)
    answers = {reader.value for reader in readers}
    assert len(answers) == 1 and server.reads == 3
    (password,) = answers
    assert password == "Kept0password" if kept else len(password) == 40


def test_a_role_password_is_given_again_only_when_it_changed(fake):
    secret = "/etc/flask-deploy/databases/board.password"
    applied = "/etc/flask-deploy/databases/board.role-password"
    fake({fact(Sha256File, path=secret): "abc", fact(FileContents, path=applied): ["abc"]})
    assert commands(role_password, "board", "board") == []
    fake({fact(Sha256File, path=secret): "abd", fact(FileContents, path=applied): ["abc"]})
    (command,) = commands(role_password, "board", "board")
    assert command.startswith(f"pw=$(cat {secret}) && printf ")
    assert "SET log_statement = none" in command and "| runuser -u postgres -- psql" in command


def test_database_server_is_derived_never_set_by_hand():
    with pytest.raises(SettingsError, match="database_server: set by the inventory"):
        load_settings({"database_server": "10.0.0.20"})


def test_two_apps_meeting_on_one_redis_port_are_refused():
    seen: dict[int, str] = {}
    for number in range(2000):
        name = f"app{number}"
        if redis_port(name) in seen:
            pair = [seen[redis_port(name)], name]
            break
        seen[redis_port(name)] = name
    apps = [{"app_name": n, "server_name": f"{n}.example", "redis": True} for n in pair]
    with pytest.raises(SettingsError, match="would share a Redis port"):
        load_plan({"apps": apps})


def test_a_fleet_with_a_database_server_rolls_in_its_steps(fake):
    fake().loop_position = []  # in_turn's record of the host's turns
    kinds = [step.kind for step in FLEET.steps()]
    assert kinds == ["data", "migrated", "prepared", "switched", "checked", "switched", "checked"]
    assert FLEET.rolling and not FLEET.runs_apps


def test_a_role_that_existed_before_the_app_loses_its_powers(fake):
    roles = {"board": {"super": True, "createdb": False, "canlogin": True}}
    fake({fact(PostgresRoles): roles})
    (command,) = commands(role_limited, "board")
    assert command == (
        'psql -XAtc \'ALTER ROLE "board" NOSUPERUSER NOCREATEDB NOCREATEROLE'
        " NOREPLICATION NOBYPASSRLS'"
    )
    host = fake({fact(PostgresRoles): {"board": {"super": False, "canlogin": True}}})
    assert commands(role_limited, "board") == []
    assert host.noops == ["board holds no power beyond logging in"]


@pytest.mark.parametrize("name", ["postgres", "redis", "pg_monitor"])
def test_the_databases_own_users_are_no_apps(name):
    for key in ("app_name", "app_user"):
        with pytest.raises(SettingsError, match="a name of the host's PostgreSQL or Redis"):
            load_settings({key: name})


def test_a_database_servers_redis_has_a_user_and_a_memory_ceiling_of_its_own():
    settings = load_settings({**BOTH, "app_name": "board", "redis_maxmemory": "1gb"})
    unit, conf = database_redis(settings, "10.0.0.20")
    for line in (
        "DynamicUser=yes",
        "MemoryMax=2112M",
        "StateDirectory=board-redis",
    ):
        assert line in unit.splitlines()
    assert "aclfile /etc/flask-deploy/redis/board.acl" in conf
    assert f"port {redis_port('board')}" in conf and "bind 10.0.0.20" in conf
    assert "sanitize-dump-payload yes" in conf.splitlines()
    assert memory_max("128mb") == "320M" and memory_max("512kb") == "65M"


def test_an_app_that_no_longer_asks_for_its_database_is_warned_of(fake, caplog):
    access = {"myproject": {"owner": "myproject", "public": False}}
    fake(
        {
            fact(PostgresClusters): clusters("postgres-clusters.txt"),
            fact(DatabaseAccess, **AS_POSTGRES): access,
        }
    )
    check_postgresql(load_plan({}))
    assert "myproject has a database here but postgresql is off" in caplog.text
