"""Retired apps and renames on a load balancer in front of two app servers (test-bed hosts;
traffic only from the runner's loopback and between the hosts): an app renamed (the new
name in apps, the old in retired_apps) keeps its name through the load balancer, the old
app's other names are refused there like any unknown name, its site is gone from the load
balancer, a second run changes nothing and verify passes on every host; logs.py on the load
balancer shows the app server that answered a request, with its status."""

from __future__ import annotations

import json
import time
import uuid

import pytest

import testbed
from testbed.load import Load
from testbed.pyinfra_cli import fleet_pyinfra
from tests.helpers import HELLO, app_saying, wait_for

OLD = {"app_name": "old", "server_name": ["shop.test", "legacy.test"]}
NEW = {"app_name": "new", "server_name": ["shop.test"]}  # app_src: the renamed app's
GREETING = "Hello from the renamed app!"


def run(hosts, workdir, entry: str, apps: list[dict], retired: tuple[str, ...] = (), **kw):
    """pyinfra on the fleet (first host: the load balancer) with these apps and retired."""
    values = {"apps": apps, "retired_apps": list(retired)}
    data = [f"--data={key}={json.dumps(value)}" for key, value in values.items()]
    return fleet_pyinfra(hosts, workdir, entry, *data, **kw)


def answer(balancer, name: str, path: str = "/") -> tuple[int | None, str]:
    return testbed.http_get(balancer.http_port, path, host_header=name)


@pytest.fixture(scope="module")
def fleet(boot, workdir):
    """The load balancer and two app servers, serving the app ``old``."""
    hosts = boot(3)
    started = time.monotonic()
    run(hosts, workdir, "deploy.py", [OLD]).check()
    print(f"\n[fleet retire] fresh balancer + 2 app servers: {time.monotonic() - started:.1f} s")
    return hosts


@pytest.fixture(scope="module")
def renamed(fleet, workdir, tmp_path_factory):
    """The run that renames ``old`` to ``new`` (which takes shop.test, not legacy.test)."""
    new = {**NEW, "app_src": app_saying(tmp_path_factory.mktemp("new"), GREETING)}
    status, body = answer(fleet[0], "legacy.test")
    assert status == 200 and HELLO in body  # the old app, before
    started = time.monotonic()
    with Load(fleet[0].http_port, host_header="shop.test") as load:  # shop.test stays up
        load.wait_for(50)
        run(fleet, workdir, "deploy.py", [new], ("old",)).check()
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
    again = run(fleet, workdir, "deploy.py", renamed, ("old",)).check()
    assert again.changed == 0, again.changed_ops()
    report = tmp_path / "report.json"
    verified = run(
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
    shown = run(fleet, workdir, "logs.py", renamed).check().output
    assert f"{balancer.name}: nginx access log /var/log/nginx/new.access.log" in shown
    line = next(line for line in shown.splitlines() if probe in line)
    assert "upstream_status=200" in line, line
    assert any(f"upstream={server.address}:80" in line for server in servers), line
    modes = balancer.exec("stat -c %a /var/log/nginx/new.access.log /var/log/nginx/new.error.log")
    assert modes.stdout.split() == ["640", "640"]  # client data: root and adm only
