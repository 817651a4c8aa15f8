"""Several apps on one host (the sample app and the example notes app): each answers only
for its names, lives isolated from the other, and deploys without touching the other;
apps leave the host only when retired, and their data stays."""

from __future__ import annotations

import json
import time

import pytest

import testbed
from testbed.load import Load
from testbed.pyinfra_cli import pyinfra
from tests.helpers import HELLO, NOTES, app_saying, main_pid, wait_for

HELLO_APP = {"app_name": "hello", "server_name": "hello.test"}
APPS = [HELLO_APP, NOTES]
TIMES: dict[str, float] = {}


def run(host, workdir, entry="deploy.py", *args, apps=APPS, **data):
    """pyinfra with ``apps`` (and more top-level data) given as --data, timed."""
    extra = []
    for key, value in {"apps": apps, **data}.items():
        extra += ["--data", f"{key}={value if isinstance(value, str) else json.dumps(value)}"]
    started = time.monotonic()
    result = pyinfra([host], workdir, entry, *extra, *args)
    TIMES[entry] = time.monotonic() - started
    return result


def closed_once_reloaded(host, name: str) -> bool:
    """nginx closes a request for ``name`` once its reload is through (``systemctl reload``
    returns before the old workers stop taking connections)."""
    return wait_for(lambda: answer(host, name)[0] is None, 10, f"nginx to close {name}")


def answer(host, name: str, path: str = "/") -> tuple[int, str]:
    return testbed.http_get(host.http_port, path, host_header=name)


@pytest.fixture(scope="module")
def host(boot, workdir):
    (host,) = boot(1)
    run(host, workdir).check()
    TIMES["fresh"] = TIMES["deploy.py"]
    return host


def test_each_app_answers_only_for_its_names(host):
    status, body = answer(host, "hello.test")
    assert status == 200 and HELLO in body
    assert answer(host, "notes.test", "/health")[1] == "ok\n"
    assert answer(host, "hello.test", "/health")[0] == 404  # the sample app has no /health
    assert answer(host, "unknown.test")[0] is None  # nginx closes it: neither app


def test_a_rerun_changes_nothing(host, workdir):
    assert run(host, workdir).check().changed == 0
    print(f"\n[two apps] fresh {TIMES['fresh']:.1f} s, no-op {TIMES['deploy.py']:.1f} s")


def test_one_app_cannot_read_the_others_secrets_data_or_socket(host):
    secrets = ("/etc/notes/env", "/var/lib/notes/instance/notes.sqlite", "/srv/notes/current/app/")
    for path in secrets:
        attempt = host.exec(f"runuser -u hello -- cat {path}", check=False)
        assert "Permission denied" in attempt.stderr, (path, attempt)
    socket = host.exec(
        'runuser -u hello -- python3 -c "import socket; s=socket.socket(socket.AF_UNIX);'
        " s.connect('/run/flask-deploy/notes.sock')\"",
        check=False,
    )
    assert "Permission denied" in socket.stderr


def test_deploying_one_app_leaves_the_other_serving_untouched(host, workdir, tmp_path):
    notes_master = main_pid(host, "notes.service")
    greeting = "Hello again!"
    changed = [{**HELLO_APP, "app_src": app_saying(tmp_path, greeting)}, NOTES]
    with Load(host.http_port, path="/notes.json", host_header="notes.test") as load:
        load.wait_for(50)
        run(host, workdir, apps=changed).check()
        load.wait_for(len(load.samples) + 100)
    print(f"\n[two apps] redeploy of hello: {TIMES['deploy.py']:.1f} s; notes: {load.summary()}")
    assert load.failed == [], load.summary()
    assert main_pid(host, "notes.service") == notes_master
    assert greeting in answer(host, "hello.test")[1]
    run(host, workdir).check()  # back to the sample app for the tests below


def test_a_failing_app_stops_the_run_before_the_next_app(host, workdir, tmp_path):
    notes_release = host.exec("readlink /srv/notes/current").stdout
    broken = app_saying(tmp_path, "Broken", extra="\nraise RuntimeError('boom')\n")
    changed_notes = {**NOTES, "processes": 3}
    failed = run(host, workdir, apps=[{**HELLO_APP, "app_src": broken}, changed_notes])
    assert failed.returncode != 0 and "boom" in failed.output
    assert host.exec("readlink /srv/notes/current").stdout == notes_release
    assert "processes = 3" not in host.exec("cat /etc/notes/uwsgi.ini").stdout
    assert HELLO in answer(host, "hello.test")[1]


def test_rollback_and_run_need_the_app_on_a_shared_host(host, workdir):
    refused = run(host, workdir, "rollback.py")
    assert refused.returncode != 0
    assert "several apps (hello, notes): rollback.py acts on one" in refused.output
    one = run(host, workdir, "run.py", app="notes", command="id -un").check()
    assert "] notes" in one.output


def test_verify_names_the_app_whose_check_fails(host, workdir, tmp_path):
    run_ok, report = verify_apps(host, workdir, tmp_path)
    assert run_ok.returncode == 0, run_ok.output[-3000:]
    scopes = {c["scope"] for c in report["hosts"][host.name]["checks"]}
    assert scopes == {"host", "hello", "notes"}
    host.exec("systemctl stop notes.service notes.socket")
    try:
        failed_run, report = verify_apps(host, workdir, tmp_path)
    finally:
        host.exec("systemctl start notes.socket notes.service")
    failed = {(c["scope"], c["name"]) for c in report["hosts"][host.name]["checks"] if not c["ok"]}
    assert ("notes", "app unit active") in failed
    assert not [scope for scope, _ in failed if scope != "notes"]
    assert failed_run.returncode != 0 and f"{host.name} (app notes)" in failed_run.output


def verify_apps(host, workdir, tmp_path, apps=APPS, **data):
    report = tmp_path / "report.json"
    result = pyinfra(
        [host],
        workdir,
        "verify.py",
        "--data",
        f"apps={json.dumps(apps)}",
        *[f"--data={k}={json.dumps(v)}" for k, v in data.items()],
        env_extra={"VERIFY_JSON": str(report)},
    )
    return result, json.loads(report.read_text())


def test_names_the_host_uses_otherwise_are_refused_before_any_change(host, workdir):
    """An app named like a system group (its rights would go to the app), or claiming a
    name that an app left out of the settings still serves: refused, nothing changes."""
    journal = run(host, workdir, apps=[*APPS, {"app_name": "systemd-journal"}])
    assert journal.returncode != 0
    assert "the group 'systemd-journal' exists on" in journal.output
    assert host.exec("getent passwd systemd-journal", check=False).returncode != 0
    thief = {"app_name": "thief", "server_name": "hello.test"}
    taken = run(host, workdir, apps=[NOTES, thief])
    assert taken.returncode != 0
    assert "'hello.test' of thief is still served by hello, which is on" in taken.output
    assert host.exec("getent passwd thief", check=False).returncode != 0


def test_the_default_server_moves_between_apps(host, workdir):
    """The second app becomes the default server, then names its hosts again: the catch-all
    never clashes with a site's old default_server."""
    run(host, workdir, apps=[HELLO_APP, {**NOTES, "server_name": "_"}]).check()
    assert answer(host, "unknown.test", "/health")[1] == "ok\n"  # notes answers any name
    run(host, workdir).check()
    assert closed_once_reloaded(host, "unknown.test")


def test_an_app_left_out_keeps_running_until_retired(host, workdir, tmp_path):
    left_out = run(host, workdir, apps=[NOTES]).check()
    assert "app hello is on this host (active) but not in apps" in left_out.output
    assert left_out.changed == 0
    assert HELLO in answer(host, "hello.test")[1]
    flagged, report = verify_apps(host, workdir, tmp_path, apps=[NOTES])
    failed = {c["name"]: c["observed"] for c in report["hosts"][host.name]["checks"] if not c["ok"]}
    assert flagged.returncode != 0 and failed == {"apps not in the settings running": "hello"}
    host.exec("runuser -u hello -- mkdir /var/lib/hello/keep")
    retired = run(host, workdir, apps=[NOTES], retired_apps=["hello", "ssh"])
    assert retired.check().changed > 0
    assert "no app ssh was deployed on this host: nothing to retire" in retired.output
    assert host.exec("systemctl is-active ssh.service").stdout.strip() == "active"
    assert closed_once_reloaded(host, "hello.test")  # the catch-all: no app answers
    assert answer(host, "notes.test", "/health")[1] == "ok\n"
    assert host.exec("systemctl is-active hello.service", check=False).stdout.strip() == "inactive"
    assert host.exec("test -d /var/lib/hello/keep && ls /srv/hello/releases").stdout.strip()
    result, _ = verify_apps(host, workdir, tmp_path, apps=[NOTES], retired_apps=["hello"])
    assert result.returncode == 0, result.output[-3000:]
    assert run(host, workdir, apps=[NOTES], retired_apps=["hello"]).check().changed == 0
