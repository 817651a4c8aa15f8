"""PostgreSQL and Redis (#29) without a host: the settings, the environment the app gets, the
Redis texts, the cluster decisions and the facts on output captured from a real Debian 12
host (tests/captured/postgres-clusters*.txt, database-access.txt, answer-as-psql-*.txt,
tcp-listeners-sshd.txt), the operations' commands."""

from __future__ import annotations

from pathlib import Path

import pytest

from deploys.config.datastores import app_environment, linked_urls, own_urls
from deploys.config.plan import load_plan
from deploys.config.settings import SettingsError, load_settings
from deploys.ops.context import SettingsRefused
from deploys.ops.facts import AnswerAs, TcpListeners
from deploys.stack.appservice import env_file, sandbox
from deploys.stack.postgresql import (
    DatabaseAccess,
    PostgresClusters,
    check_postgresql,
    cluster_online,
    cluster_problem,
    connect_revoked,
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
        "user default on nopass ~* &* +@all -@admin",
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
        'runuser -u board -- redis-cli -s /run/x.sock ping 2>&1; echo "exit=$?"'
    )


def test_a_units_tcp_listeners_are_read():
    listening = TcpListeners().process(lines("tcp-listeners-sshd.txt"))
    assert len(listening) == 2 and all("sshd" in line for line in listening)
    assert TcpListeners().process([]) == []
