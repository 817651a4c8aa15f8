"""A database server for a fleet (#29): a load balancer, two app servers and a database server
(test-bed hosts; traffic between the runner's loopback and the hosts' own addresses only)
deploy examples/board from settings only. Both app servers share its PostgreSQL database and
Redis (a post made through one is read through the other, its job run by either's worker);
the release command ran once, on one app server, before any checked the release; the
database server admits the app servers alone (the load balancer is refused by PostgreSQL
and Redis alike); the app's password shows in no journal, log or run output (a re-run
with -vvv prints every fact's output and command); a re-run
changes nothing and verify passes on every host, the checks of the database server
included. With backups (#30), the database server backs up the app's database and Redis
and copies them to the backup server (the fleet's fifth host), the app servers their data
directories; restore.py puts the database and Redis back, in order: every app server stopped
the app before the database server began, and started it again after it ended (the hosts'
journals record it).

Tests in this module share one fleet and run in file order."""

from __future__ import annotations

import json
import time

import pytest

from testbed.pyinfra_cli import pyinfra
from tests.helpers import failing
from tests.test_datastores import BOARD, post, request, shouted

GROUPS = ("load_balancers", "app_servers", "app_servers", "database_servers", "backup_servers")
BACKUPS = {"backups": True, "backup_keep": 3, "backup_copy_to": "backup_servers"}
OUTPUTS: list[str] = []  # every run's output, searched for the password at the end
RECEIVERS: list = []  # the backup server, booted with the fleet


def run(hosts, workdir, entry: str = "deploy.py", *args: str, **kwargs):
    """pyinfra on the fleet: the first host the load balancer, the fourth the database
    server, the board app with its database and Redis there, backed up to the backup
    server."""
    hosts = [*hosts, *RECEIVERS]
    groups: dict[str, list[str]] = {}
    for group, host in zip(GROUPS, hosts, strict=True):
        groups.setdefault(group, []).append(host.name)
    settings = [
        arg
        for key, value in {**BOARD, **BACKUPS}.items()
        for arg in ("--data", f"{key}={value if isinstance(value, str) else json.dumps(value)}")
    ]
    env = {"TESTBED_GROUPS": json.dumps(groups), **kwargs.pop("env_extra", {})}
    result = pyinfra(hosts, workdir, entry, *settings, *args, env_extra=env, **kwargs)
    OUTPUTS.append(result.output)
    return result


SPARE: list = []  # a fresh host, the new database server at the end


@pytest.fixture(scope="module")
def fleet(boot, workdir):
    *hosts, receiver, spare = boot(6)
    RECEIVERS.append(receiver)
    SPARE.append(spare)
    started = time.monotonic()
    result = run(hosts, workdir).check()
    took = time.monotonic() - started
    print(f"\n[database server] a fresh fleet of 5, PostgreSQL, Redis, backups: {took:.1f} s")
    return hosts, result


def reaches(source, address: str, port: int) -> bool:
    """Whether ``source`` opens a TCP connection to ``address:port`` within 3 s."""
    probe = f"timeout 3 bash -c 'echo > /dev/tcp/{address}/{port}'"
    return source.exec(probe, check=False).returncode == 0


def test_the_app_servers_share_one_database_and_redis(fleet):
    (balancer, *_servers, _database), _ = fleet
    numbers = [post(balancer, f"shared {n}") for n in range(4)]  # spread over both servers
    for number in numbers:  # read back through either, in turn: the same rows
        assert shouted(balancer, number) == f"SHARED {numbers.index(number)}!"
    for server in _servers:  # each worker ran some of the jobs: one queue
        log = server.exec("journalctl -u 'board-worker-*' --no-pager").stdout
        assert "Job OK" in log, server.name


def journal_times(host, unit: str, event: str) -> list[float]:
    """When systemd logged ``event`` ("Starting", "Deactivated") of ``unit`` on the host."""
    lines = host.exec(f"journalctl -o short-unix --no-pager -u {unit}").stdout.splitlines()
    return [float(line.split()[0]) for line in lines if event in line and f"{unit}" in line]


def test_the_release_command_ran_once_before_the_other_checked(fleet):
    """Recorded by the hosts' journals: the first app server's release command finished
    before the second's release checks ended and its candidate (the first to read the
    data) started, and the second ran none."""
    (_, first, second, _), result = fleet
    ran = journal_times(first, "board-release-command.service", "Deactivated successfully")
    assert len(ran) == 1, result.output[-3000:]
    assert journal_times(second, "board-release-command.service", "Starting") == []
    checked = journal_times(second, "board-import-check.service", "Deactivated")
    served = journal_times(second, "board-candidate.service", "Started")  # reads the data
    assert checked and served and ran[0] < min(checked) and ran[0] < min(served)
    assert "Running upgrade  -> 0001" in result.output


def test_the_database_server_admits_the_app_servers_alone(fleet):
    (balancer, first, second, database), _ = fleet
    redis = int(
        database.exec("grep -h '^port' /etc/flask-deploy/redis/board.conf").stdout.split()[1]
    )
    for port in (5432, redis):
        assert reaches(first, database.address, port) and reaches(second, database.address, port)
        assert not reaches(balancer, database.address, port), port
    for user in ("www-data", "nobody"):  # the password file, on an app server
        denied = first.exec(f"runuser -u {user} -- cat /etc/board/database.env", check=False)
        assert denied.returncode != 0


def test_a_rerun_changes_nothing_and_verify_passes_everywhere(fleet, workdir, tmp_path):
    hosts, _ = fleet
    rerun = run(hosts, workdir, "deploy.py", "-vvv").check()  # facts printed
    assert rerun.changed == 0
    report = tmp_path / "report.json"
    run(hosts, workdir, "verify.py", env_extra={"VERIFY_JSON": str(report)})
    found = json.loads(report.read_text())
    for host in hosts:
        assert failing(found, host) == set(), host.name
    names = {c["name"] for c in found["hosts"][hosts[-1].name]["checks"]}
    assert {"database board closed to PUBLIC", "PostgreSQL listens on (and ::1)"} <= names


ROOT = "/var/backups/flask-deploy/board"


def redis_cli(database, command: str) -> str:
    """A Redis command on the board's Redis at the database server, as its user (the
    password from root's file, in redis-cli's environment)."""
    port = database.exec("grep -h '^port' /etc/flask-deploy/redis/board.conf").stdout.split()[1]
    return database.exec(
        "REDISCLI_AUTH=$(cat /etc/flask-deploy/databases/board.password)"
        f" redis-cli --no-auth-warning --user board -h {database.address} -p {port} {command}"
    ).stdout.strip()


def manifests(host) -> list[dict]:
    """The host's backups of the board, oldest first: their manifests."""
    names = host.exec(f"ls -1 {ROOT}", check=False).stdout.split()
    return [json.loads(host.exec(f"cat {ROOT}/{n}/manifest.json").stdout) for n in sorted(names)]


def test_the_database_server_backs_up_the_database_and_redis_and_copies_them(fleet, workdir):
    (balancer, first, second, database), _ = fleet
    kept = post(balancer, "kept")
    redis_cli(database, "SET board:mark before")
    result = run([balancer, first, second, database], workdir, "backup.py").check()
    (taken,) = manifests(database)
    assert sorted(p["name"] for p in taken["parts"]) == ["postgresql.dump", "redis.rdb"]
    assert taken["found"]["redis"] == "saved" and taken["release"] == ""
    for server in (first, second):  # their data directories, not the database
        assert [p["name"] for p in manifests(server)[-1]["parts"]] == ["data.tar"]
    store = f"/srv/flask-backups/{database.name}/board/{taken['backup']}"
    copied = RECEIVERS[0].exec(f"ls {store}", check=False).stdout.split()
    assert {"postgresql.dump", "redis.rdb", "manifest.json"} <= set(copied), result.output[-2000:]
    listing = run([balancer, first, second, database], workdir, "backups.py").check().output
    assert f"--- {database.name}: 1 backup of board ---" in listing
    assert f"from {database.name}: 1 backup of board" in listing
    KEPT.append(kept)


KEPT: list[int] = []  # the post made before the backup


def after(host, unit: str, event: str, since: float) -> list[float]:
    """When systemd logged ``event`` of ``unit`` on the host since ``since``."""
    return [t for t in journal_times(host, unit, event) if t > since]


def test_restore_puts_the_database_and_redis_back_with_the_app_stopped_meanwhile(
    fleet, workdir, tmp_path
):
    hosts, _ = fleet
    balancer, first, second, database = hosts
    (kept,) = KEPT
    lost = post(balancer, "made after the backup")
    redis_cli(database, "SET board:mark after")
    refusals = time.time()
    alone = run(hosts, workdir, "restore.py", "--data", "backup=latest", "--limit", database.name)
    assert alone.returncode != 0 and f"does not reach {first.name}, {second.name}" in alone.output
    missing = ("--data", "backup=latest", "--data", "database_backup=20000101T000000Z")
    refused = run(hosts, workdir, "restore.py", *missing)  # before any app server stops
    assert refused.returncode != 0, refused.output[-2000:]
    assert f"database_backup: {database.name} keeps no backup '20000101T000000Z'" in refused.output
    began = time.time()
    assert not after(first, "board.service", "Stopped", refusals)  # the refusals stopped none
    result = run(hosts, workdir, "restore.py", "--data", "backup=latest").check()
    assert redis_cli(database, "GET board:mark") == "before", result.output[-3000:]
    for _ in range(4):  # through either app server: the row made before, not the one after
        assert request(balancer, "GET", f"/api/posts/{kept}")[0] == 200
        assert request(balancer, "GET", f"/api/posts/{lost}")[0] == 404
    # the order, as the hosts' journals recorded it
    servers = (first, second)
    stopped = max(max(after(h, "board.service", "Stopped", began)) for h in servers)
    redis_down = min(after(database, "board-redis.service", "Stopping", began))
    redis_up = max(after(database, "board-redis.service", "Started", began))
    started = min(max(after(h, "board.service", "Started", began)) for h in servers)
    assert stopped < redis_down < redis_up < started, result.output[-3000:]
    report = tmp_path / "report.json"
    run(hosts, workdir, "verify.py", env_extra={"VERIFY_JSON": str(report)})
    found = json.loads(report.read_text())
    for host in [*hosts, *RECEIVERS]:
        assert failing(found, host) == set(), host.name


def test_a_new_database_server_is_restored_from_the_backup_servers_copy(fleet, workdir, tmp_path):
    """The disaster: the database server is gone. A fresh one takes its place in the
    inventory (deploy.py: the app servers get its address and a new password), then
    restore.py --data from_host=OLD fetches OLD's newest backup from the backup server onto
    it and restores it there, the app stopped on the app servers meanwhile."""
    (balancer, first, second, old), _ = fleet
    (spare,), receiver = SPARE, RECEIVERS[0]
    (kept,) = KEPT
    old.exec("systemctl stop postgresql.service board-redis.service")  # gone
    hosts = [balancer, first, second, spare]
    run(hosts, workdir).check()
    assert request(balancer, "GET", f"/api/posts/{kept}")[0] != 200  # an empty database
    newest = sorted(receiver.exec(f"ls /srv/flask-backups/{old.name}/board").stdout.split())[-1]
    args = ("--data", f"from_host={old.name}", "--data", "backup=latest")
    restored = run(hosts, workdir, "restore.py", *args)
    assert restored.returncode == 0, restored.output[-4000:]
    assert f"restored board from backup {newest.removesuffix('.json')}" in restored.output
    for _ in range(4):
        assert request(balancer, "GET", f"/api/posts/{kept}")[0] == 200
    assert redis_cli(spare, "GET board:mark") == "before"
    own = manifests(spare)[-1]["backup"]  # its own, taken right after, copied off it
    assert own > newest and f"backup {own} of board copied to" in restored.output
    offered = receiver.exec("ls -A /var/lib/flask-restores/outgoing 2>/dev/null; true")
    assert offered.stdout == ""  # withdrawn
    report = tmp_path / "report.json"
    run(hosts, workdir, "verify.py", env_extra={"VERIFY_JSON": str(report)})
    found = json.loads(report.read_text())
    for host in [*hosts, receiver]:
        assert failing(found, host) == set(), host.name


def test_the_password_shows_nowhere(fleet):
    hosts, _ = fleet
    for database in (hosts[-1], *SPARE):
        password = database.exec("cat /etc/flask-deploy/databases/board.password").stdout
        assert len(password.strip()) == 40
        for host in [*hosts, *RECEIVERS, *SPARE]:
            logs = "journalctl --no-pager; cat /var/log/postgresql/*.log 2>/dev/null; true"
            assert password.strip() not in host.exec(logs).stdout, host.name
        assert not any(password.strip() in output for output in OUTPUTS)
