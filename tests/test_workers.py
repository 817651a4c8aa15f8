"""Workers and timers (#28) with the example app (examples/notes): its job queue's worker in
two instances and its digest on a timer go to a fresh host from settings only; a job queued
through the web runs in a worker, the timer fires; a no-op touches no worker; systemd
restarts a killed worker, verify flags a stopped one and a deploy heals it; a redeploy lets
the job in hand finish on the old code while the site serves; a release whose worker cannot
start switches web and workers back; rollback moves the workers back; workers and timers
taken out of the settings stop and go; the Procfile's worker runs its own release's command,
also after a switch back.

Tests in this module share one host and run in file order."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime

import pytest

from testbed import wait_for
from testbed.load import Load
from testbed.pyinfra_cli import pyinfra
from tests.helpers import failing
from tests.test_real_app import NAME, changed_app, data_args, request, run

WORKER = "notes-worker-tasks"
INSTANCES = (f"{WORKER}@1.service", f"{WORKER}@2.service")
TIMER = "notes-timer-digest"
FROM_PROCFILE = {"workers": "Procfile", "timers": {}}  # examples/notes/Procfile: worker
PROCFILE_WORKER = "notes-worker-worker@1.service"
PROCESSES = {
    "workers": {
        "tasks": {"command": "flask --app notes worker", "instances": 2, "stop_timeout": 60}
    },
    # a run takes longer than the period: one is always in progress (runs never overlap)
    "timers": {
        "digest": {"command": "sleep 12 && flask --app notes digest", "on_calendar": "*:*:0/10"}
    },
}


def deploy(host, workdir, entry: str = "deploy.py", *args: str, **overrides):
    return run(host, workdir, entry, *args, **{**PROCESSES, **overrides})


def failed_checks(host, workdir, tmp_path, **overrides) -> set[str]:
    """The names of the checks verify.py fails on the host (with these settings)."""
    report = tmp_path / "report.json"
    env = {"VERIFY_JSON": str(report)}
    pyinfra([host], workdir, "verify.py", *data_args(**{**PROCESSES, **overrides}), env_extra=env)
    return failing(json.loads(report.read_text()), host)


def job(host, body: dict) -> int:
    status, _, text = request(host, "POST", "/jobs", body)
    assert status == 202, text
    return json.loads(text)["id"]


def job_state(host, number: int) -> dict:
    status, _, text = request(host, "GET", f"/jobs/{number}.json")
    assert status == 200, text
    return json.loads(text)


def finished(host, number: int, timeout: float = 60) -> dict:
    """The job once a worker finished it."""
    return wait_for(
        lambda: (s := job_state(host, number))["status"] in ("done", "failed") and s, timeout
    )


def main_pids(host) -> dict[str, str]:
    return {
        unit: host.exec(f"systemctl show -P MainPID {unit}").stdout.strip() for unit in INSTANCES
    }


def live_release(host) -> str:
    return host.exec("readlink -f /srv/notes/current").stdout.strip()


@pytest.fixture(scope="module")
def host(boot, workdir):
    (host,) = boot(1)
    return host


def test_a_job_queued_through_the_web_runs_in_a_worker_and_the_timer_fires(host, workdir, tmp_path):
    started = time.monotonic()
    deploy(host, workdir).check()
    took = time.monotonic() - started
    print(f"\n[workers] fresh deploy with 2 workers and a timer: {took:.1f} s")
    done = finished(host, job(host, {"kind": "count"}))
    assert done["status"] == "done" and done["ran_in"] == f"{live_release(host)}/app/notes", done
    digests = wait_for(lambda: json.loads(request(host, "GET", "/digests.json")[2]), 45)
    assert digests[0]["ran_in"] == f"{live_release(host)}/app/notes", digests
    for unit in (INSTANCES[0], f"{TIMER}.service"):
        score = host.exec(f"systemd-analyze security {unit} | tail -n 1").stdout
        assert float(score.split(":")[1].split()[0]) <= 2.0, score
    assert failed_checks(host, workdir, tmp_path) == set()


def test_a_no_op_deploy_touches_no_worker(host, workdir):
    before = main_pids(host)
    again = deploy(host, workdir).check()
    assert again.changed == 0, again.output[-3000:]
    assert main_pids(host) == before


def test_systemd_restarts_a_killed_worker_and_a_deploy_a_stopped_one(host, workdir, tmp_path):
    killed = main_pids(host)[INSTANCES[0]]
    host.exec(f"kill -9 {killed}")
    wait_for(lambda: main_pids(host)[INSTANCES[0]] not in ("0", killed), 30)
    assert finished(host, job(host, {"kind": "count"}))["status"] == "done"
    host.exec(f"systemctl stop {INSTANCES[1]}")
    assert f"worker {INSTANCES[1]} active" in failed_checks(host, workdir, tmp_path)
    healed = deploy(host, workdir).check()
    assert healed.changed == 1, healed.output[-3000:]  # the workers' step alone
    assert host.exec(f"systemctl is-active {INSTANCES[1]}").stdout.strip() == "active"


def digests_from(host, release: str) -> list[str]:
    """When each digest the timer's runs in ``release`` wrote was written (ISO, UTC)."""
    digests = json.loads(request(host, "GET", "/digests.json")[2])
    return [d["created"] for d in digests if d["ran_in"] == f"{release}/app/notes"]


def test_a_redeploy_lets_the_job_in_hand_finish_on_the_old_code(host, workdir, tmp_path):
    """The worker's job and the timer's run in progress both finish on the old release; the
    next of each runs on the new one."""
    old = live_release(host)
    slow = job(host, {"kind": "sleep", "seconds": 20})
    wait_for(lambda: job_state(host, slow)["status"] == "running", 30)
    with Load(host.http_port, path="/notes.json", host_header=NAME) as load:
        load.wait_for(50)
        started = time.monotonic()
        result = deploy(host, workdir, app_src=changed_app(tmp_path, "v2", "Jobs")).check()
        took = time.monotonic() - started
        load.wait_for(len(load.samples) + 100)
    print(f"\n[workers] redeploy with a 20 s job in hand: {took:.1f} s; {load.summary()}")
    assert load.failed == [], load.summary()
    new = live_release(host)
    assert new != old
    slow_done = job_state(host, slow)
    assert slow_done["status"] == "done" and slow_done["ran_in"] == f"{old}/app/notes", slow_done
    after = finished(host, job(host, {"kind": "count"}))
    assert after["ran_in"] == f"{new}/app/notes", after
    assert "Live release is healthy through nginx, workers on it" in result.output
    switched = int(host.exec("stat -c %Y /srv/notes/current").stdout)
    switched_at = datetime.fromtimestamp(switched, UTC).isoformat()
    wait_for(lambda: digests_from(host, new), 45)
    assert any(created > switched_at for created in digests_from(host, old))
    runs = host.exec("journalctl -o cat -u notes-timer-digest.service").stdout
    assert "Failed" not in runs and "Killing" not in runs, runs[-2000:]


def test_a_worker_that_cannot_start_switches_web_and_workers_back(host, workdir, tmp_path):
    good = live_release(host)
    broken = changed_app(tmp_path, "v3", "Broken worker")
    jobs = f"{broken}/notes/jobs.py"
    with open(jobs) as f:
        source = f.read()
    with open(jobs, "w") as f:  # the web app is fine; its worker dies at start
        f.write(source.replace("    stop = []\n", '    raise SystemExit("no queue for me")\n', 1))
    failed = deploy(host, workdir, app_src=broken)
    assert failed.returncode != 0
    assert f"worker {WORKER}@" in failed.output and "did not stay up" in failed.output
    assert "no queue for me" in failed.output  # its log tail
    assert live_release(host) == good and "switched back" in failed.output
    assert "<h1>Jobs</h1>" in request(host, "GET", "/")[2]
    for unit in INSTANCES:
        assert host.exec(f"systemctl is-active {unit}").stdout.strip() == "active"
    assert finished(host, job(host, {"kind": "count"}))["ran_in"] == f"{good}/app/notes"
    assert failed_checks(host, workdir, tmp_path) == set()


def test_rollback_moves_the_workers_back(host, workdir):
    live = live_release(host)
    result = deploy(host, workdir, "rollback.py").check()
    back = live_release(host)
    assert back != live and "workers on it" in result.output
    assert finished(host, job(host, {"kind": "count"}))["ran_in"] == f"{back}/app/notes"


def test_workers_and_timers_taken_out_of_the_settings_stop_and_go(host, workdir, tmp_path):
    """The settings' two instances of tasks and the timer give way to the Procfile's one
    worker: they stop and their units go; logs.py shows one process's journal."""
    logs = deploy(host, workdir, "logs.py", "--data", "process=tasks").check()
    assert "worker: pid" in logs.output and "digest:" not in logs.output
    result = deploy(host, workdir, **FROM_PROCFILE).check()
    assert result.changed > 0
    for unit in INSTANCES:
        assert host.exec(f"systemctl is-active {unit}", check=False).stdout.strip() != "active"
    left = host.exec(f"ls /etc/systemd/system | grep -e {TIMER} -e {WORKER}", check=False)
    assert left.stdout == "", left.stdout
    assert host.exec(f"systemctl is-active {PROCFILE_WORKER}").stdout.strip() == "active"
    assert finished(host, job(host, {"kind": "count"}))["status"] == "done"
    assert failed_checks(host, workdir, tmp_path, **FROM_PROCFILE) == set()


def test_a_release_whose_procfile_worker_fails_goes_back_to_its_own_procfile(
    host, workdir, tmp_path
):
    """A worker reads its command from its release's Procfile: switched back, it runs the
    previous release's command again, not the new one that failed."""
    good = live_release(host)
    broken = changed_app(tmp_path, "v4", "Broken Procfile")
    with open(f"{broken}/Procfile", "w") as procfile:
        procfile.write(
            "release: flask --app notes migrate\nworker: flask --app notes no-such-worker\n"
        )
    failed = deploy(host, workdir, app_src=broken, **FROM_PROCFILE)
    assert failed.returncode != 0 and "No such command 'no-such-worker'" in failed.output
    assert live_release(host) == good and "switched back" in failed.output
    assert "still failing" not in failed.output, failed.output[-3000:]
    assert host.exec(f"systemctl is-active {PROCFILE_WORKER}").stdout.strip() == "active"
    assert finished(host, job(host, {"kind": "count"}))["ran_in"] == f"{good}/app/notes"
    assert failed_checks(host, workdir, tmp_path, **FROM_PROCFILE) == set()
