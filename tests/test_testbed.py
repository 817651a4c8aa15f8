"""The test bed gives real Debian 12 hosts: systemd as PID 1, SSH, sudo, a reachable index."""

import runpy
import socket
import subprocess
import time

import pytest

import testbed


@pytest.fixture(scope="module")
def host(boot):
    return boot(1)[0]


def test_ssh_as_sudo_user(host):
    assert host.ssh("id -un").stdout.strip() == "deploy"
    assert host.ssh("sudo -n id -u").stdout.strip() == "0"


def test_systemd_is_pid_1_and_running(host):
    assert host.ssh("ps -p 1 -o comm=").stdout.strip() == "systemd"
    state = host.ssh("systemctl is-system-running", check=False).stdout.strip()
    assert state in ("running", "degraded")


def test_only_loopback_ports_are_published(host):
    ports = subprocess.run(["docker", "port", host.container], capture_output=True, text=True)
    lines = ports.stdout.split()
    published = [word for word in lines if ":" in word]
    assert published and all(p.startswith("127.0.0.1:") for p in published)


def test_pip_reaches_the_package_index(host):
    host.ssh(
        "sudo -n env DEBIAN_FRONTEND=noninteractive apt-get update -qq && "
        "sudo -n env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv"
    )
    out = host.ssh(
        "python3 -m venv ~/v && ~/v/bin/pip download --no-deps "
        "--no-cache-dir -d /tmp/dl flask==3.1.3 && ls /tmp/dl"
    )
    assert "Flask-3.1.3" in out.stdout or "flask-3.1.3" in out.stdout


def test_reboot_brings_ssh_back(host):
    testbed.reboot(host)
    assert host.ssh("systemctl is-system-running --wait", check=False).stdout.strip() in (
        "running",
        "degraded",
    )


def free_port() -> int:
    """A loopback TCP port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_unreachable_host_is_an_error():
    """The readiness check really fails on a host nobody answers for."""
    ghost = testbed.Host(
        "ghost",
        "none",
        ssh_port=free_port(),
        http_port=1,
        https_port=1,
        key_file=testbed.ensure_key(),
    )
    started = time.monotonic()
    with pytest.raises(testbed.TestbedError, match="SSH on ghost"):
        testbed.wait_for_ssh(ghost, timeout=1)
    assert time.monotonic() - started < 20


def test_destroyed_hosts_leave_no_container(boot):
    (extra,) = boot(1)
    testbed.destroy([extra])
    listed = subprocess.run(
        ["docker", "ps", "-aq", "--filter", f"id={extra.container}"], capture_output=True, text=True
    ).stdout
    assert listed.strip() == ""
    assert extra.ssh("true", check=False).returncode != 0


def test_a_fleet_record_makes_the_inventory_of_its_groups(tmp_path, monkeypatch):
    """What ``up --fleet 2`` records, loaded by pyinfra from inventories/local.py (a copy, away
    from your group_data): a load balancer and two app servers, each reached on its published
    SSH port and by the others at its container address."""
    hosts = [
        testbed.Host(f"h{i}", f"c{i}", 2200 + i, 8000 + i, 8400 + i, "key", address=f"10.1.0.{i}")
        for i in (1, 2, 3)
    ]
    state = tmp_path / "local.json"
    testbed.write_state(hosts, state, testbed.fleet_groups(hosts))
    monkeypatch.setenv("TESTBED_STATE", str(state))
    # the inventory's groups as pyinfra reads them: the file's module-level lists (pyinfra's
    # own loader, pyinfra_cli, patches threads with gevent on import: not in the tests)
    groups = runpy.run_path(str(testbed.REPO / "inventories/local.py"))

    def group(name):
        return [(host, data["private_address"], data["ssh_port"]) for host, data in groups[name]]

    assert group("load_balancers") == [("h1", "10.1.0.1", 2201)]
    assert group("app_servers") == [("h2", "10.1.0.2", 2202), ("h3", "10.1.0.3", 2203)]
    assert testbed.read_state(state) == hosts


def test_up_with_a_backup_server_puts_the_last_host_in_backup_servers():
    """``up --hosts 2 --backup-server`` and ``up --fleet 1 --backup-server``: the host booted
    last receives backups, the others are what they would be without it."""
    hosts = [testbed.Host(f"h{i}", f"c{i}", 0, 0, 0, "key") for i in (1, 2, 3)]
    assert testbed.local_groups(hosts, fleet=False, backup_server=True) == {
        "app_servers": ["h1", "h2"],
        "backup_servers": ["h3"],
    }
    assert testbed.local_groups(hosts, fleet=True, backup_server=True) == {
        "load_balancers": ["h1"],
        "app_servers": ["h2"],
        "backup_servers": ["h3"],
    }
    assert testbed.local_groups(hosts, fleet=False, backup_server=False) == {}
    four = [*hosts, testbed.Host("h4", "c4", 0, 0, 0, "key")]
    assert testbed.local_groups(four, fleet=True, backup_server=True, database_server=True) == {
        "load_balancers": ["h1"],
        "app_servers": ["h2"],
        "database_servers": ["h3"],
        "backup_servers": ["h4"],
    }
