"""PostgreSQL and Redis for each app (#29) with the example app examples/board (SQLAlchemy and
Alembic on PostgreSQL, an RQ worker and a counter on Redis), on one fresh host from settings
only: a post made through the web is shouted by a job the worker runs; a no-op changes and
restarts nothing; the data lives through a redeploy and a rollback; a second app on the host,
www-data and nobody cannot reach the board's database or Redis, nor the board Redis'
administration; a changed Redis setting restarts its Redis alone (its data kept); drift (PUBLIC
granted CONNECT, Redis stopped) fails verify and a deploy heals it; a retired app's Redis
stops, its data and database stay.

Tests in this module share one host and run in file order."""

from __future__ import annotations

import http.client
import json
import re
import shutil
import time
import urllib.parse

import pytest

from testbed import REPO, wait_for
from testbed.pyinfra_cli import pyinfra
from tests.helpers import failing

NAME = "board.test"
BOARD = {
    "app_name": "board",
    "app_src": str(REPO / "examples/board"),
    "app_module": "board:create_app()",
    "server_name": NAME,
    "postgresql": True,
    "redis": True,
    "release_command": ["alembic upgrade head"],
    "workers": "Procfile",
    "health_path": "/health",
    "health_text": "ok",
}
OTHER = {  # the sample app beside it, with a database and a Redis of its own
    "app_name": "myproject",
    "app_src": str(REPO / "app"),
    "app_module": "wsgi:app",
    "server_name": "other.test",
    "release_command": [],
    "workers": {},
    "health_path": "/",
    "health_text": "Hello There!",
}
OTHER_HERE = {**OTHER, "postgresql": True, "redis": True}
SOCKET = "/run/board-redis/redis.sock"
DATABASE_URL = "postgresql:///board?host=/run/postgresql"
TIMES: dict[str, float] = {}


def run(host, workdir, entry: str = "deploy.py", *args: str, **overrides):
    args = (*args, "--data", f"apps={json.dumps([{**BOARD, **overrides}, OTHER_HERE])}")
    started = time.monotonic()
    result = pyinfra([host], workdir, entry, *args)
    TIMES[entry] = time.monotonic() - started
    return result


def request(host, method: str, path: str, form: dict | None = None) -> tuple[int, str]:
    """(status, text) of a request through nginx with the board's Host header."""
    conn = http.client.HTTPConnection("127.0.0.1", host.http_port, timeout=10)
    try:
        headers = {"Host": NAME, "Content-Type": "application/x-www-form-urlencoded"}
        body = urllib.parse.urlencode(form) if form is not None else None
        conn.request(method, path, body=body, headers=headers)
        resp = conn.getresponse()
        return resp.status, resp.read().decode()
    finally:
        conn.close()


def visits(host) -> int:
    """The board's visit counter (in Redis), which this request raises."""
    status, page = request(host, "GET", "/")
    assert status == 200, page
    return int(re.search(r"(\d+) visits", page).group(1))


def post(host, text: str) -> int:
    status, body = request(host, "POST", "/api/posts", {"text": text})
    assert status == 201, body
    return json.loads(body)["id"]


def shouted(host, number: int, timeout: float = 60) -> str:
    """The post's shout, once the worker's job wrote it."""

    def ready():
        status, body = request(host, "GET", f"/api/posts/{number}")
        assert status == 200, body
        return json.loads(body)["shout"]

    return wait_for(ready, timeout, what=f"post {number}'s job")


def as_user(host, user: str, command: str):
    """``command`` run as ``user`` on the host (exit status and output, not raising)."""
    return host.exec(f"runuser -u {user} -- {command} 2>&1", check=False)


def failed_checks(host, workdir, tmp_path, **overrides) -> set[str]:
    report = tmp_path / "report.json"
    args = ("--data", f"apps={json.dumps([{**BOARD, **overrides}, OTHER_HERE])}")
    pyinfra([host], workdir, "verify.py", *args, env_extra={"VERIFY_JSON": str(report)})
    return failing(json.loads(report.read_text()), host)


def invocation(host, unit: str) -> str:
    return host.exec(f"systemctl show -P InvocationID {unit}").stdout.strip()


def database_oid(host) -> str:
    query = "SELECT oid FROM pg_database WHERE datname = 'board'"
    return host.exec(f'runuser -u postgres -- psql -XAtc "{query}"').stdout.strip()


@pytest.fixture(scope="module")
def host(boot, workdir):
    (host,) = boot(1)
    return host


def test_a_fresh_host_gets_a_database_and_a_redis_from_settings_only(host, workdir, tmp_path):
    result = run(host, workdir).check()
    print(f"\n[board] fresh converge with PostgreSQL and Redis: {TIMES['deploy.py']:.1f} s")
    assert "Running upgrade  -> 0001" in result.output  # Alembic, as the release command
    number = post(host, "hello")
    assert shouted(host, number) == "HELLO!"  # the RQ worker ran the job through Redis
    env = host.exec("cat /etc/board/env").stdout
    assert f'DATABASE_URL="{DATABASE_URL}"' in env and f'REDIS_URL="unix://{SOCKET}"' in env
    listening = host.exec("ss -Hltn").stdout
    assert ":6379" not in listening  # no shared Redis, no TCP port of any app's
    assert failed_checks(host, workdir, tmp_path) == set()


def test_a_no_op_changes_and_restarts_nothing(host, workdir):
    units = ("board-redis.service", "board.service", "board-worker-worker@1.service")
    before = {unit: invocation(host, unit) for unit in units} | {"oid": database_oid(host)}
    result = run(host, workdir).check()
    print(f"\n[board] no-op with PostgreSQL and Redis: {TIMES['deploy.py']:.1f} s")
    assert result.changed == 0, result.changed_ops()
    after = {unit: invocation(host, unit) for unit in units} | {"oid": database_oid(host)}
    assert after == before


def test_data_lives_through_a_redeploy_and_a_rollback(host, workdir, tmp_path):
    numbers = [post(host, f"note {n}") for n in range(3)]
    app = tmp_path / "board"
    shutil.copytree(BOARD["app_src"], app, ignore=shutil.ignore_patterns("__pycache__"))
    page = app / "board/templates/index.html"
    page.write_text(page.read_text().replace("<h1>Board</h1>", "<h1>Board 2</h1>"))
    counted = visits(host)
    run(host, workdir, app_src=str(app)).check()
    assert "<h1>Board 2</h1>" in request(host, "GET", "/")[1]
    assert [shouted(host, n) for n in numbers] == ["NOTE 0!", "NOTE 1!", "NOTE 2!"]
    run(host, workdir, "rollback.py", "--data", "app=board").check()
    assert "<h1>Board</h1>" in request(host, "GET", "/")[1]
    assert shouted(host, numbers[-1]) == "NOTE 2!"
    assert shouted(host, post(host, "after rollback")) == "AFTER ROLLBACK!"
    assert visits(host) > counted  # Redis' data too


def test_other_users_reach_neither_the_database_nor_the_redis(host):
    """Another app's user, www-data and nobody: no connection to the board's database, no
    way into its Redis; the board itself cannot change its Redis' configuration."""
    for user in ("myproject", "www-data", "nobody"):
        denied = as_user(host, user, f"psql '{DATABASE_URL}' -XAtc 'SELECT count(*) FROM post'")
        assert denied.returncode != 0, (user, denied.stdout)
        assert "permission denied for database" in denied.stdout or (
            f'role "{user}" does not exist' in denied.stdout
        ), denied.stdout
        redis = as_user(host, user, f"redis-cli -s {SOCKET} get visits")
        assert "Permission denied" in redis.stdout, (user, redis.stdout)
    own = as_user(
        host, "myproject", "psql 'postgresql:///myproject?host=/run/postgresql' -XAtc 'SELECT 1'"
    )
    assert own.stdout.strip() == "1"  # the other app has a database of its own
    admin = as_user(host, "board", f"redis-cli -s {SOCKET} config set dir /tmp")
    assert "NOPERM" in admin.stdout, admin.stdout
    moved = as_user(host, "board", f"redis-cli -s {SOCKET} config set port 6379")
    assert "NOPERM" in moved.stdout and ":6379" not in host.exec("ss -Hltn").stdout


def test_a_changed_redis_setting_restarts_its_redis_alone(host, workdir, tmp_path):
    web, worker = (
        invocation(host, "board.service"),
        invocation(host, "board-worker-worker@1.service"),
    )
    redis = invocation(host, "board-redis.service")
    as_user(host, "board", f"redis-cli -s {SOCKET} set kept yes")
    run(host, workdir, redis_maxmemory="64mb").check()
    assert invocation(host, "board-redis.service") != redis
    assert (
        invocation(host, "board.service"),
        invocation(host, "board-worker-worker@1.service"),
    ) == (web, worker)
    assert as_user(host, "board", f"redis-cli -s {SOCKET} get kept").stdout.strip() == "yes"
    assert "maxmemory 64mb" in host.exec("cat /etc/board/redis.conf").stdout
    assert failed_checks(host, workdir, tmp_path, redis_maxmemory="64mb") == set()


def test_drift_fails_verify_and_a_deploy_heals_it(host, workdir, tmp_path):
    host.exec("runuser -u postgres -- psql -XAtc 'GRANT CONNECT ON DATABASE board TO PUBLIC'")
    host.exec("runuser -u postgres -- psql -XAtc 'ALTER ROLE board SUPERUSER CREATEDB'")
    host.exec("systemctl stop board-redis.service")
    failed = failed_checks(host, workdir, tmp_path)
    assert {
        "database board closed to PUBLIC",
        "Redis board-redis.service active",
        "role board's powers",
    } <= failed, failed
    run(host, workdir).check()
    assert failed_checks(host, workdir, tmp_path) == set()


def test_a_retired_app_keeps_its_database_and_redis_data(host, workdir):
    args = ("--data", f"apps={json.dumps([OTHER_HERE])}", "--data", 'retired_apps=["board"]')
    pyinfra([host], workdir, "deploy.py", *args).check()
    state = host.exec(
        "systemctl is-active board-redis.service; systemctl is-enabled board-redis.service",
        check=False,
    )
    assert state.stdout.split() == ["inactive", "disabled"]
    assert host.exec("test -s /var/lib/board-redis/dump.rdb && echo kept").stdout.strip() == "kept"
    rows = host.exec("runuser -u postgres -- psql -XAt -d board -c 'SELECT count(*) FROM post'")
    assert int(rows.stdout) >= 5
