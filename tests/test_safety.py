"""Safe under bad input, drift and interruption: refused runs touch nothing, drift is repaired,
killed runs converge, broken nginx configs never go live, busy apt locks are waited for."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

import testbed
from testbed.pyinfra_cli import TEST_INVENTORY, inventory_for, pyinfra
from tests.helpers import HELLO, body_of, failing, uwsgi_workers, verify, wait_for

BARE_HOSTS = True  # bad settings refused before a bare host is touched

APP = "myproject"
UNTOUCHED = (
    f"dpkg -s nginx >/dev/null 2>&1 && echo nginx; test -e /srv/{APP} && echo srv;"
    f" test -e /etc/{APP} && echo etc; id {APP} >/dev/null 2>&1 && echo user;"
    " test -e /etc/apt/apt.conf.d/80-lock-timeout && echo apt; true"
)


@pytest.fixture(scope="module")
def host(boot, workdir):
    """One converged host."""
    (host,) = boot(1)
    pyinfra([host], workdir).check()
    return host


@pytest.fixture(scope="module")
def fresh(boot):
    (fresh,) = boot(1)
    return fresh


def test_bad_settings_refuse_the_run_before_touching_a_fresh_host(fresh, workdir):
    run = pyinfra(
        [fresh],
        workdir,
        "deploy.py",
        "--data",
        "processes=0",
        "--data",
        "app_name=../etc",
        "--data",
        "proceses=3",
    )
    assert run.returncode != 0
    assert "processes: Input should be greater than or equal to 1 (given 0)" in run.output
    assert "app_name: '../etc' is not allowed" in run.output
    assert "proceses: unknown setting; did you mean 'processes'?" in run.output
    assert "Starting operation" not in run.output
    assert fresh.exec(UNTOUCHED).stdout.split() == []


def test_an_app_needing_another_python_is_refused_before_touching_a_fresh_host(
    fresh, workdir, tmp_path
):
    """requires-python = ">=3.12" on Debian 12 (Python 3.11): refused, naming the fix."""
    app = tmp_path / "app"
    shutil.copytree(testbed.REPO / "app", app)
    (app / "pyproject.toml").write_text('[project]\nname = "hello"\nrequires-python = ">=3.12"\n')
    run = pyinfra([fresh], workdir, "deploy.py", "--data", f"app_src={app}")
    assert run.returncode != 0
    said = "myproject: pyproject.toml says requires-python = '>=3.12' and the host's Python is 3.11"
    assert said in run.output and "Debian 13 has 3.13" in run.output, run.output[-2000:]
    assert "Starting operation" not in run.output
    assert fresh.exec(UNTOUCHED).stdout.split() == []


def test_busy_apt_lock_is_waited_for(fresh, workdir):
    """Another apt run holds the dpkg lock for 25 s (as unattended-upgrades would); the deploy
    waits for it and succeeds."""
    fresh.exec(
        "nohup apt-get -o 'DPkg::Pre-Invoke::=sleep 25' install -y --reinstall sudo"
        " >/root/holder.log 2>&1 &"
    )
    wait_for(lambda: "sleep 25" in fresh.exec("ps -eo args").stdout, 30, "apt to hold the lock")
    started = time.monotonic()
    output = pyinfra([fresh], workdir, "deploy.py", "-vv").check().output  # shows commands
    assert time.monotonic() - started > 5  # it did have to wait
    assert HELLO in (body_of(fresh) or "")
    assert "Setting up sudo" in fresh.exec("cat /root/holder.log").stdout
    # this first run allowed SSH before enabling UFW, and SSH still works
    assert output.index("ufw allow OpenSSH") < output.index("ufw --force enable")
    assert "Status: active" in fresh.ssh("sudo ufw status").stdout


DRIFT = {
    "ini edited by hand": f"sed -i 's/^processes = .*/processes = 2/' /etc/{APP}/uwsgi.ini"
    f" && systemctl restart {APP}",
    "unit file deleted": f"rm /etc/systemd/system/{APP}.service && systemctl daemon-reload",
    "venv deleted": f"rm -rf /srv/{APP}/venvs/*/",
    "site link removed, default site back": f"rm /etc/nginx/sites-enabled/{APP} && ln -s"
    " /etc/nginx/sites-available/default /etc/nginx/sites-enabled/default"
    " && systemctl reload nginx",
    "nginx stopped": "systemctl stop nginx",
    "app unit stopped and disabled": f"systemctl disable --now {APP}",
    "ufw disabled": "ufw disable",
    "port 5000 allowed": "ufw allow 5000",
}


@pytest.mark.parametrize("drift", list(DRIFT))
def test_drift_is_repaired_by_the_next_run(host, workdir, tmp_path, drift):
    host.exec(DRIFT[drift])
    run = pyinfra([host], workdir).check()
    assert run.changed > 0
    wait_for(lambda: body_of(host), 30, "the app to serve")
    wait_for(lambda: len(uwsgi_workers(host)) == 5, 30, "5 uWSGI workers")
    result, report = verify([host], workdir, tmp_path)
    assert result.returncode == 0, failing(report, host)
    assert pyinfra([host], workdir).check().changed == 0


def test_run_killed_between_config_change_and_reload_converges_next_time(host, workdir, tmp_path):
    cmd = [
        sys.executable,
        "-m",
        "pyinfra",
        "-y",
        TEST_INVENTORY,
        "deploy.py",
        "--data",
        "processes=3",
    ]
    env = {**inventory_for([host], workdir), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        cmd,
        cwd=testbed.REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    seen = []
    for line in proc.stdout:
        seen.append(line)
        if "Starting operation: uWSGI service | Unit" in line:
            os.killpg(proc.pid, signal.SIGKILL)  # right after the ini was written
            break
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL, "".join(seen[-20:])
    assert "processes = 3" in host.exec(f"cat /etc/{APP}/uwsgi.ini").stdout
    assert len(uwsgi_workers(host)) == 5  # the new config is not live

    run = pyinfra([host], workdir, "deploy.py", "--data", "processes=3").check()
    assert "uWSGI service | Apply changes to myproject.service" in run.changed_ops()
    wait_for(lambda: len(uwsgi_workers(host)) == 3, 30, "3 uWSGI workers")
    result, report = verify([host], workdir, tmp_path)
    assert result.returncode != 0 and failing(report, host) == {"uWSGI workers"}  # 5 wanted
    pyinfra([host], workdir).check()
    wait_for(lambda: len(uwsgi_workers(host)) == 5, 30, "5 uWSGI workers again")


def test_config_failing_nginx_test_never_goes_live(host, workdir):
    site = f"/etc/nginx/sites-available/{APP}"
    good = host.exec(f"cat {site}").stdout
    web = host.exec("pgrep -f '^nginx: worker'").stdout.split()
    run = pyinfra([host], workdir, "deploy.py", "--data", "client_max_body_size=99999999999999g")
    assert run.returncode != 0
    assert '"client_max_body_size" directive invalid value' in run.output  # nginx's own words
    assert host.exec(f"cat {site}").stdout == good  # the previous site is back on disk
    assert host.exec("pgrep -f '^nginx: worker'").stdout.split() == web  # never reloaded
    assert HELLO in (body_of(host) or "")
    assert pyinfra([host], workdir).check().changed == 0
