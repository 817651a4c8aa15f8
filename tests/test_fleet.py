"""A load balancer in front of two app servers (all test-bed hosts; traffic only between the
runner's loopback and the hosts' own addresses): the balancer spreads requests over both,
the app servers take HTTP from the balancer alone and see the client's address, a stopped
app server is skipped and named by verify, a re-run changes nothing, and the app's timer
runs on one app server only. Then, on the same fleet, retired apps and renames: the app is
retired (its timer with it) for another, which is renamed (the new name in apps, the old in
retired_apps) and keeps its name through the load balancer, the old app's other names are
refused there like any unknown name, its site is gone from the load balancer, a second run
changes nothing and verify passes on every host; logs.py on the load balancer shows the app
server that answered a request, with its status.

Tests in this module share one fleet and run in file order."""

from __future__ import annotations

import json
import time
import uuid

import pytest

import testbed
from testbed.load import Load
from testbed.pyinfra_cli import fleet_pyinfra
from tests.helpers import HELLO, app_saying, wait_for
from tests.timeline import rolled_under_load

TIMER = "myproject-timer-tick"
TIMERS = ["--data", 'timers={"tick": {"command": "hostname", "on_calendar": "*:*:0/5"}}']
PROBE = (
    'python3 -c "import urllib.request,sys; print(urllib.request.urlopen('
    "'http://{address}/', timeout=3).status)\""
)


def run(hosts, workdir, entry: str = "deploy.py", *args: str, **kwargs):
    """pyinfra on the fleet, the app with a timer (a scheduled job runs on one server)."""
    return fleet_pyinfra(hosts, workdir, entry, *TIMERS, *args, **kwargs)


@pytest.fixture(scope="module")
def fleet(boot, workdir):
    hosts = boot(3)
    started = time.monotonic()
    run(hosts, workdir).check()
    print(f"\n[fleet] fresh balancer + 2 app servers: {time.monotonic() - started:.1f} s")
    return hosts


def served_by(server) -> int:
    """Requests the app server's nginx logged."""
    return int(server.exec("wc -l < /var/log/nginx/access.log").stdout)


def test_the_balancer_spreads_requests_over_the_app_servers(fleet):
    balancer, *servers = fleet
    before = [served_by(s) for s in servers]
    for _ in range(20):
        status, body = testbed.http_get(balancer.http_port)
        assert status == 200 and HELLO in body
    assert all(served_by(s) > n for s, n in zip(servers, before, strict=True))
    client = servers[0].exec("tail -n 1 /var/log/nginx/access.log").stdout.split()[0]
    assert client != balancer.address  # the client's address, from X-Forwarded-For


def test_app_servers_take_http_from_the_balancer_only(fleet):
    balancer, first, second = fleet
    assert balancer.exec(PROBE.format(address=first.address)).stdout.strip() == "200"
    other = second.exec(PROBE.format(address=first.address), check=False)
    assert other.returncode != 0  # another host, not a balancer: UFW drops it
    assert testbed.http_get(first.http_port, timeout=3)[0] is None  # nor the runner directly


def test_a_rerun_changes_nothing_and_verify_passes(fleet, workdir, tmp_path):
    assert run(fleet, workdir).check().changed == 0
    report = tmp_path / "report.json"
    result = run(fleet, workdir, "verify.py", env_extra={"VERIFY_JSON": str(report)})
    assert result.returncode == 0, result.output[-3000:]
    balancer_checks = json.loads(report.read_text())["hosts"][fleet[0].name]["checks"]
    upstream = next(c for c in balancer_checks if c["name"].startswith("upstream"))
    assert upstream["observed"] == f"{fleet[1].address}, {fleet[2].address}"


def test_a_timer_runs_on_the_first_app_server_only(fleet):
    _, first, second = fleet
    name = first.exec("hostname").stdout.strip()
    runs = f"journalctl -o cat -u {TIMER}.service | grep -c -x {name}"
    wait_for(lambda: int(first.exec(runs, check=False).stdout.strip() or 0) >= 2, 30)
    assert (
        second.exec(f"ls /etc/systemd/system | grep -c {TIMER}", check=False).stdout.strip() == "0"
    )
    assert TIMER not in second.exec("systemctl list-timers --all --no-pager").stdout


def test_a_stopped_app_server_is_skipped_and_named(fleet, workdir, tmp_path):
    """The second app server refuses the balancer's connections, as a host whose nginx is
    down does. Not ``docker stop``: that frees its address, which a host another test
    module boots meanwhile may take, and answer for it."""
    balancer, _, second = fleet
    dead = f"INPUT -s {balancer.address} -p tcp --dport 80 -j REJECT --reject-with tcp-reset"
    second.exec(f"iptables -I {dead}")
    try:
        answers = [testbed.http_get(balancer.http_port, timeout=10)[0] for _ in range(10)]
        print(f"\n[fleet] one app server stopped: {answers.count(200)} of 10 answered 200")
        assert answers == [200] * 10
        report = tmp_path / "report.json"
        result = run(fleet, workdir, "verify.py", env_extra={"VERIFY_JSON": str(report)})
        checks = json.loads(report.read_text())["hosts"][balancer.name]["checks"]
        failed = {c["name"] for c in checks if not c["ok"]}
        assert result.returncode != 0 and failed == {f"app server {second.address} answers /"}
    finally:
        second.exec(f"iptables -D {dead}")
    run(fleet, workdir).check()
    assert run(fleet, workdir, "verify.py").returncode == 0


def release_of(server) -> str:
    return server.exec("readlink /srv/myproject/current").stdout.strip()


def test_a_rolling_release_fails_no_request(fleet, workdir, tmp_path):
    balancer, *servers = fleet
    greeting = "Rolled out!"
    app = app_saying(tmp_path, greeting)
    result, tl = rolled_under_load(
        fleet,
        "fleet: rolling release, 2 app servers",
        lambda: run(fleet, workdir, "deploy.py", "--data", f"app_src={app}").check(),
    )
    tl.assert_rolled(balancer, servers)
    assert "checked from the load balancers" in result.output
    assert len({release_of(s) for s in servers}) == 1
    assert greeting in testbed.http_get(balancer.http_port)[1]
    again = run(fleet, workdir, "deploy.py", "--data", f"app_src={app}").check()
    assert again.changed == 0  # nothing to roll: nothing checked


def test_a_release_failing_on_the_first_batch_stops_the_rollout(fleet, workdir, tmp_path):
    balancer, first, second = fleet
    before = {s.name: release_of(s) for s in (first, second)}
    broken = app_saying(
        tmp_path,
        "Broken on the first server",
        extra=(
            "\nimport socket\n\n\n@app.before_request\ndef _broken_here():\n"
            f"    if socket.gethostname() == {first.name!r}:\n        return 'broken', 500\n"
        ),
    )
    result, tl = rolled_under_load(
        fleet,
        "fleet: a release failing on the first batch",
        lambda: run(fleet, workdir, "deploy.py", "--data", f"app_src={broken}"),
    )
    assert result.returncode != 0 and first.name in result.output
    assert all(tl.changes(host, what) == [] for host in fleet for what in ("current", "master"))
    assert {s.name: release_of(s) for s in (first, second)} == before  # nobody switched
    assert "Broken" not in testbed.http_get(balancer.http_port)[1]


def test_rollback_goes_batch_by_batch(fleet, workdir):
    balancer, *servers = fleet
    _, tl = rolled_under_load(
        fleet,
        "fleet: rolling rollback, 2 app servers",
        lambda: run(fleet, workdir, "rollback.py").check(),
    )
    tl.assert_rolled(balancer, servers)
    assert len({release_of(s) for s in servers}) == 1
    assert HELLO in testbed.http_get(balancer.http_port)[1]
    assert run(fleet, workdir, "verify.py").returncode == 0


# Retired apps and renames on the fleet (the tests above leave it serving myproject)

OLD = {"app_name": "old", "server_name": ["shop.test", "legacy.test"]}
NEW = {"app_name": "new", "server_name": ["shop.test"]}  # app_src: the renamed app's
GREETING = "Hello from the renamed app!"


def run_apps(hosts, workdir, entry: str, apps: list[dict], retired: tuple[str, ...] = (), **kw):
    """pyinfra on the fleet with these apps and retired (myproject too: the fleet's first
    app, retired with its timer by the first of these runs)."""
    values = {"apps": apps, "retired_apps": ["myproject", *retired]}
    data = [f"--data={key}={json.dumps(value)}" for key, value in values.items()]
    return fleet_pyinfra(hosts, workdir, entry, *data, **kw)


def answer(balancer, name: str, path: str = "/") -> tuple[int | None, str]:
    return testbed.http_get(balancer.http_port, path, host_header=name)


@pytest.fixture(scope="module")
def serving_old(fleet, workdir):
    """The fleet, after the tests above, serving the app ``old`` in place of myproject."""
    started = time.monotonic()
    run_apps(fleet, workdir, "deploy.py", [OLD]).check()
    print(f"\n[fleet retire] myproject retired, old deployed: {time.monotonic() - started:.1f} s")
    for server in fleet[1:]:
        assert TIMER not in server.exec("systemctl list-timers --all --no-pager").stdout
    return fleet


@pytest.fixture(scope="module")
def renamed(serving_old, workdir, tmp_path_factory):
    """The run that renames ``old`` to ``new`` (which takes shop.test, not legacy.test)."""
    fleet = serving_old
    new = {**NEW, "app_src": app_saying(tmp_path_factory.mktemp("new"), GREETING)}
    status, body = answer(fleet[0], "legacy.test")
    assert status == 200 and HELLO in body  # the old app, before
    started = time.monotonic()
    with Load(fleet[0].http_port, host_header="shop.test") as load:  # shop.test stays up
        load.wait_for(50)
        run_apps(fleet, workdir, "deploy.py", [new], ("old",)).check()
        load.wait_for(len(load.samples) + 50)
    print(f"\n[fleet retire] rename old -> new: {time.monotonic() - started:.1f} s")
    print(f"[fleet retire] shop.test during the rename: {load.summary()}")
    assert load.failed == [], load.summary()  # the old app served it until each switch
    assert all(HELLO in s.body for s in load.samples[:10]) and GREETING in load.samples[-1].body
    return [new]


def test_the_new_name_serves_and_the_retired_names_are_refused(fleet, renamed):
    balancer, *servers = fleet
    status, body = answer(balancer, "shop.test")
    assert status == 200 and GREETING in body
    wait_for(lambda: answer(balancer, "legacy.test")[0] is None, 10, "legacy.test closed")
    site_left = balancer.exec("ls /etc/nginx/sites-available /etc/nginx/sites-enabled").stdout
    assert "old" not in site_left.split()
    assert "conflicting" not in balancer.exec("nginx -t 2>&1").stdout
    for server in servers:
        assert server.exec("systemctl is-active old", check=False).stdout.strip() == "inactive"


def test_a_second_run_changes_nothing_and_verify_passes_everywhere(
    fleet, renamed, workdir, tmp_path
):
    again = run_apps(fleet, workdir, "deploy.py", renamed, ("old",)).check()
    assert again.changed == 0, again.changed_ops()
    report = tmp_path / "report.json"
    verified = run_apps(
        fleet, workdir, "verify.py", renamed, ("old",), env_extra={"VERIFY_JSON": str(report)}
    )
    assert verified.returncode == 0, verified.output[-3000:]
    hosts = json.loads(report.read_text())["hosts"]
    for host in fleet:
        retired = {c["name"] for c in hosts[host.name]["checks"] if c["scope"] == "old"}
        assert "site removed" in retired, host.name


def test_logs_on_the_balancer_show_the_app_server_that_answered(fleet, renamed, workdir):
    balancer, *servers = fleet
    probe = f"/?probe={uuid.uuid4().hex}"
    assert answer(balancer, "shop.test", probe)[0] == 200
    shown = run_apps(fleet, workdir, "logs.py", renamed).check().output
    assert f"{balancer.name}: nginx access log /var/log/nginx/new.access.log" in shown
    line = next(line for line in shown.splitlines() if probe in line)
    assert "upstream_status=200" in line, line
    assert any(f"upstream={server.address}:80" in line for server in servers), line
    modes = balancer.exec("stat -c %a /var/log/nginx/new.access.log /var/log/nginx/new.error.log")
    assert modes.stdout.split() == ["640", "640"]  # client data: root and adm only
