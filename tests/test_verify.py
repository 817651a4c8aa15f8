"""The verifier on real hosts: all green when converged, names each injected fault, never
hides one host behind another, and changes nothing."""

from __future__ import annotations

import pytest

from testbed.pyinfra_cli import pyinfra
from tests.helpers import failing, verify

APP = "myproject"
INI = f"/etc/{APP}/uwsgi.ini"
SITE = f"/etc/nginx/sites-available/{APP}"

# (fault injected as root, checks that must then fail: exactly these)
FAULTS = {
    "app unit and socket stopped": (
        f"systemctl stop {APP}.socket {APP}.service",
        {
            "app unit active",
            "app socket unit active",
            "uWSGI workers",
            "live release is current",
            "HTTP / via nginx",
            "response content",
            "data directory writable by the service",
        },
    ),
    "app unit disabled": (f"systemctl disable {APP}", {"app unit enabled"}),
    "master runs other options than its ini": (  # the deploy must heal it all the same
        f"cp -p {INI} /tmp/ini && sed -i 's/^processes = 5$/processes = 2/' {INI}"
        f" && systemctl reload {APP} && sleep 4 && cp -p /tmp/ini {INI}",
        {"uWSGI workers"},
    ),
    "site link removed": (f"rm /etc/nginx/sites-enabled/{APP}", {"site enabled"}),
    "nginx site broken": (
        f"echo 'garbage;' >> {SITE}",
        {"nginx -t", "nginx runs the deployed config"},
    ),
    "Nginx HTTP removed": ("ufw delete allow 'Nginx HTTP'", {"ufw allows Nginx HTTP"}),
    "socket mode 666": (f"chmod 666 /run/flask-deploy/{APP}.sock", {"socket mode"}),
    "ini changed without restart": (
        f"echo '# edited' >> {INI}",  # within the same second as the last start, too
        {"app unit runs the deployed config"},
    ),
}

# what verify may not change: everything in /etc, /srv and /run but the traces any SSH login
# leaves (sessions, journal, utmp, motd, sudo) and the mtime of the empty /run/ufw.lock,
# which `ufw status` itself touches
SNAPSHOT = (
    "find /etc /srv /run -mindepth 1 \\( -path /run/systemd -o -path /run/user -o -path /run/log"
    " -o -path /run/sudo -o -path /run/utmp -o -path /run/sshd -o -path /run/motd.dynamic"
    " -o -path /run/ufw.lock \\) -prune"
    " -o -printf '%p %y %m %u %g %s %T@ %l\\n' | sort;"
    " find /etc /srv -type f -exec sha256sum {} + | sort"
)


@pytest.fixture(scope="module")
def fleet(boot, workdir):
    """Two converged hosts."""
    hosts = boot(2)
    pyinfra(hosts, workdir).check()
    return hosts


def test_converged_hosts_pass_every_check(fleet, workdir, tmp_path):
    run, report = verify(fleet, workdir, tmp_path)
    assert run.returncode == 0, run.output[-3000:]
    assert report["ok"] is True
    assert "verify: PASS on all 2 hosts" in run.output
    assert len(report["hosts"][fleet[0].name]["checks"]) >= 20


@pytest.mark.parametrize("fault", list(FAULTS))
def test_each_fault_fails_its_check_and_only_its_host(fleet, workdir, tmp_path, fault):
    broken, healthy = fleet
    inject, expected = FAULTS[fault]
    broken.exec(inject)
    try:
        run, report = verify(fleet, workdir, tmp_path)
        assert run.returncode != 0
        assert f"verify: FAIL on 1 of 2 hosts: {broken.name}" in run.output
        assert failing(report, broken) == expected
        assert failing(report, healthy) == set()
        rows = run.output.splitlines()
        for name in expected:  # the table shows it too, on its own row
            assert any(r.startswith(f"{name}  ") and r.rstrip().endswith("FAIL") for r in rows)
    finally:
        pyinfra([broken], workdir).check()  # the deploy repairs the fault
    run, report = verify(fleet, workdir, tmp_path)
    assert run.returncode == 0, f"not repaired: {failing(report, broken)}"


def test_verify_changes_nothing_on_the_host(fleet, workdir, tmp_path):
    host = fleet[0]
    before = host.exec(SNAPSHOT).stdout
    run, _ = verify([host], workdir, tmp_path)
    assert run.returncode == 0
    after = host.exec(SNAPSHOT).stdout
    assert before == after
