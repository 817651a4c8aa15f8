"""The deploy on real hosts: converge, idempotence, dry runs, targeted reloads, reboot, fleets.

Tests in this module share one converged host and run in file order.
"""

from __future__ import annotations

import os
import shutil
import time

import pytest

import testbed
from testbed.pyinfra_cli import SUMMARY_ROW_RE, pyinfra, pyinfra_cli
from tests.helpers import APP, HELLO, body_of, main_pid, nginx_workers, uwsgi_workers, wait_for

BARE_HOSTS = True  # a bare Debian host's first converge, nginx and all

SITE_CHANGE = f"Site /etc/nginx/sites-available/{APP}: test and reload nginx"


def test_dry_run_diff_on_a_fresh_host_changes_nothing(boot, workdir):
    (fresh,) = boot(1)
    run = pyinfra([fresh], workdir, "deploy.py", "--diff", dry=True).check()
    assert f"Will create /etc/nginx/sites-available/{APP}" in run.output
    assert f"uwsgi_pass unix:/run/flask-deploy/{APP}.sock;" in run.output  # the file diff
    assert "Will write /etc/myproject/env (contents hidden)" in run.output
    assert run.changed > 20
    untouched = fresh.exec(
        f"dpkg -s nginx >/dev/null 2>&1 && echo nginx; test -e /srv/{APP} && echo srv; "
        f"test -e /etc/{APP} && echo etc; id {APP} >/dev/null 2>&1 && echo user; true"
    ).stdout.split()
    assert untouched == []


def test_fresh_host_serves_the_app_through_nginx(converged):
    host, run = converged
    assert run.changed > 20
    status, body = testbed.http_get(host.http_port)
    assert (status, HELLO in body) == (200, True)


def test_unit_is_active_and_enabled(converged):
    host, _ = converged
    assert host.exec(f"systemctl is-active {APP}").stdout.strip() == "active"
    assert host.exec(f"systemctl is-enabled {APP}").stdout.strip() == "enabled"


def test_socket_is_root_www_data_mode_660_in_a_root_only_folder(converged):
    host, _ = converged
    stat = host.exec(f"stat -c '%A %U %G' /run/flask-deploy /run/flask-deploy/{APP}.sock")
    assert stat.stdout.split() == ["drwxr-xr-x", "root", "root", "srw-rw----", "root", "www-data"]


def test_app_user_is_a_system_user_without_login_or_other_groups(converged):
    host, _ = converged
    entry = host.exec(f"getent passwd {APP}").stdout.strip().split(":")
    assert int(entry[2]) < 1000 and entry[6] == "/usr/sbin/nologin"
    assert host.exec(f"id -Gn {APP}").stdout.split() == [APP]


def test_firewall_is_active_and_lets_http_in_only_through_nginx_http(converged, workdir):
    host, _ = converged
    status = host.exec("ufw status verbose").stdout
    assert "Status: active" in status and "deny (incoming)" in status
    assert "5000" not in status and "443" not in status
    host.exec("ufw delete allow 'Nginx HTTP'")
    wait_for(
        lambda: testbed.http_get(host.http_port, timeout=2)[0] is None, 10, "HTTP to be blocked"
    )
    run = pyinfra([host], workdir).check()
    assert run.changed == 1  # the rule, nothing else
    assert HELLO in wait_for(lambda: body_of(host), 10, "HTTP through 'Nginx HTTP'")


def test_second_run_changes_nothing(converged, workdir):
    host, _ = converged
    assert pyinfra([host], workdir).check().changed == 0
    assert pyinfra([host], workdir, dry=True).check().changed == 0


def test_a_run_that_changes_nothing_reads_its_facts_in_a_few_round_trips(converged, workdir):
    """Each fact used to be its own SSH command under sudo (about 75 on this run); batched
    in one shell kept open (deploys/speed/factcache.py, deploys/speed/batchshell.py), which
    the deploy lock's process becomes (deploys/release/lock.py), the sudo log shows that one
    command."""
    host, _ = converged
    since = int(host.exec("date +%s").stdout) + 1  # the journal counts whole seconds
    time.sleep(1.1)
    assert pyinfra([host], workdir).check().changed == 0
    log = host.exec(f"journalctl -q --since @{since} _COMM=sudo -o cat").stdout
    invocations = [line for line in log.splitlines() if "COMMAND=" in line]
    assert len(invocations) == 1 and "host.lock" in invocations[0], "\n".join(invocations)


def test_production_example_inventory_previews_a_server(converged, tmp_path):
    """The real-server inventory and its group data, copied as the README says, reach a host
    from environment variables; an unset secret stops the run; the secret never shows."""
    host, _ = converged
    shutil.copy(testbed.REPO / "inventories/production.example.py", tmp_path / "production.py")
    (tmp_path / "group_data").mkdir()
    shutil.copy(
        testbed.REPO / "inventories/group_data/production.example.py",
        tmp_path / "group_data/production.py",
    )
    env = {
        **os.environ,
        "DEPLOY_HOST": "127.0.0.1",
        "DEPLOY_SSH_PORT": str(host.ssh_port),
        "DEPLOY_USER": host.ssh_user,
    }
    env.pop("FLASK_SECRET_KEY", None)
    args = [str(tmp_path / "production.py"), "deploy.py", "--diff"]
    args += ["--data", f"ssh_key={host.key_file}", "--data", "ssh_known_hosts_file=/dev/null"]

    refused = pyinfra_cli(*args, env=env, dry=True)
    assert refused.returncode != 0
    assert "env: no value for FLASK_SECRET_KEY" in refused.output

    secret = "s3cret-only-in-the-env-file"
    run = pyinfra_cli(*args, env={**env, "FLASK_SECRET_KEY": secret}, dry=True).check()
    assert "+ processes = 4" in run.output  # the group data applies (a diff line)
    assert "Will write /etc/myproject/env (contents hidden)" in run.output
    assert secret not in run.output
    assert "processes = 5" in host.exec(f"cat /etc/{APP}/uwsgi.ini").stdout  # a dry run


def test_code_change_restarts_only_uwsgi(converged, workdir, tmp_path):
    host, _ = converged
    app = tmp_path / "app"
    shutil.copytree(testbed.REPO / "app", app)
    source = app / "myproject.py"
    source.write_text(source.read_text().replace(HELLO, "Hello Again!"))
    master, workers, web = main_pid(host, APP), uwsgi_workers(host), nginx_workers(host)

    run = pyinfra([host], workdir, "deploy.py", "--data", f"app_src={app}").check()

    assert "Hello Again!" in body_of(host)  # live when the run ends
    assert main_pid(host, APP) != master  # restarted while its handover instance served
    assert len(uwsgi_workers(host)) == 5 and not uwsgi_workers(host) & workers
    assert host.exec(f"systemctl is-active {APP}-handover", check=False).stdout.strip() == (
        "inactive"
    )
    assert nginx_workers(host) == web
    assert f"Nginx site | {SITE_CHANGE}" not in run.changed_ops()


def test_nginx_change_reloads_only_nginx(converged, workdir):
    host, _ = converged
    pyinfra([host], workdir).check()  # back to the repo's app
    wait_for(lambda: (b := body_of(host)) and HELLO in b, 30, "the original app")
    wait_for(lambda: len(uwsgi_workers(host)) == 5, 30, "uWSGI workers")
    master, workers, web = main_pid(host, APP), uwsgi_workers(host), nginx_workers(host)

    run = pyinfra([host], workdir, "deploy.py", "--data", "client_max_body_size=20m").check()

    assert run.changed_ops() == [f"Nginx site | {SITE_CHANGE}"]
    wait_for(lambda: nginx_workers(host) and not nginx_workers(host) & web, 15, "nginx to reload")
    assert "client_max_body_size 20m;" in host.exec(f"cat /etc/nginx/sites-enabled/{APP}").stdout
    assert (main_pid(host, APP), uwsgi_workers(host)) == (master, workers)


def test_reboot_brings_the_app_back(converged):
    host, _ = converged
    testbed.reboot(host)
    assert HELLO in wait_for(lambda: body_of(host), 60, "the app after a reboot")
    assert "Status: active" in host.exec("ufw status").stdout


@pytest.mark.parametrize("users", [("deploy", "root")])
def test_two_hosts_one_as_sudo_user_one_as_root_converge_in_one_run(boot, workdir, users):
    hosts = boot(2)
    for host, user in zip(hosts, users, strict=True):
        host.ssh_user = user
    run = pyinfra(hosts, workdir).check()
    assert run.changed > 40
    for host in hosts:
        assert HELLO in (body_of(host) or "")
    rerun = pyinfra(hosts, workdir).check()
    assert rerun.changed == 0
    # each operation is one for both hosts (run on both at once), not one per host
    rows = [row for row in SUMMARY_ROW_RE.findall(rerun.output) if row[0] != "Grand total"]
    assert rows and {int(row[1]) for row in rows} == {2}, rerun.output[-4000:]
