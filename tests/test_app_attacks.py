"""A compromised app against its neighbour (the second attack review, #35): on a host with
two apps, "evil" (the sample app with a few hostile routes) and its "victim", each attack is
played for real and shown to fail: forwarding headers a client forged, a channel through
/dev/shm or /dev/mqueue, the victim's nginx error log, the victim's files and environment
from the evil app's worker, a forged stats answer.

Tests in this module share one host and run in file order."""

from __future__ import annotations

import http.client
import json
import re
import shlex
import subprocess
import sys
import time
from contextlib import contextmanager

import pytest

import testbed
from testbed.pyinfra_cli import TEST_INVENTORY, inventory_for, pyinfra
from tests.helpers import app_saying, wait_for

SECRET = "victims-secret-token"
# the evil app's worker: what of the victim it can read (its settings, data, root's record of
# it, its processes' environments), then it idles as a worker does
SNOOP = (
    "for p in /etc/victim/env /srv/victim/state/service.record; do cat $p >/dev/null 2>&1"
    ' && echo "snoop: read $p" || echo "snoop: refused $p"; done;'
    ' ls /var/lib/victim >/dev/null 2>&1 && echo "snoop: listed /var/lib/victim"'
    ' || echo "snoop: refused /var/lib/victim";'
    " echo \"snoop: $(cat /proc/[0-9]*/environ 2>/dev/null | tr '\\0' '\\n'"
    f' | grep -c {SECRET}) environments hold the secret"; exec sleep infinity'
)
HOSTILE_ROUTES = """

from flask import request as _request


@app.route("/headers")
def _headers():
    keys = ("REMOTE_ADDR", "HTTP_X_FORWARDED_FOR", "HTTP_X_REAL_IP", "HTTP_FORWARDED",
            "HTTP_X_FORWARDED_HOST", "HTTP_X_FORWARDED_PORT", "HTTP_X_FORWARDED_PREFIX")
    return {key: _request.environ.get(key) for key in keys}


@app.route("/drop")
def _drop():
    done = {}
    for name in ("/dev/shm/evil-drop", "/dev/mqueue/evil-drop"):
        try:
            with open(name, "w") as dropped:
                dropped.write("from evil")
            done[name] = "written"
        except OSError as exc:
            done[name] = type(exc).__name__
    return done


@app.route("/read")
def _read():
    try:
        with open(_request.args["path"]) as log:
            return {"read": log.read()[-300:]}
    except OSError as exc:
        return {"read": type(exc).__name__}
"""
FORGED = {
    "X-Forwarded-For": "6.6.6.6",
    "X-Real-IP": "6.6.6.6",
    "Forwarded": "for=6.6.6.6;host=evil.example",
    "X-Forwarded-Host": "evil.example",
    "X-Forwarded-Port": "666",
    "X-Forwarded-Prefix": "/evil",
}


def get(host, name: str, path: str, headers: dict | None = None) -> tuple[int, dict]:
    conn = http.client.HTTPConnection("127.0.0.1", host.http_port, timeout=10)
    try:
        conn.request("GET", path, headers={"Host": name, **(headers or {})})
        resp = conn.getresponse()
        body = resp.read().decode()
        return resp.status, json.loads(body) if body.startswith("{") else {"body": body}
    finally:
        conn.close()


@pytest.fixture(scope="module")
def apps(tmp_path_factory):
    """The evil app and its victim, both with the routes that show what an app can reach."""
    evil = app_saying(tmp_path_factory.mktemp("evil"), "I am evil", HOSTILE_ROUTES)
    victim = app_saying(tmp_path_factory.mktemp("victim"), "I am the victim", HOSTILE_ROUTES)
    return [
        {
            "app_name": "evil",
            "app_src": evil,
            "server_name": ["evil.test"],
            "workers": {"snoop": SNOOP},
        },
        {
            "app_name": "victim",
            "app_src": victim,
            "server_name": ["victim.test"],
            "env": {"VICTIM_TOKEN": SECRET},
        },
    ]


def deploy(host, workdir, apps: list[dict]):
    return pyinfra([host], workdir, "deploy.py", "--data", f"apps={json.dumps(apps)}")


@pytest.fixture(scope="module")
def host(boot, workdir, apps):
    (host,) = boot(1)
    deploy(host, workdir, apps).check()
    return host


def test_forwarding_headers_a_client_forged_never_reach_the_app(host):
    """ProxyFix, as Flask's docs suggest behind a proxy, would trust any of these."""
    status, seen = get(host, "evil.test", "/headers", FORGED)
    assert status == 200, seen
    assert seen["HTTP_X_FORWARDED_FOR"] == seen["REMOTE_ADDR"]  # nginx's own, one address
    assert [seen[k] for k in seen if k not in ("REMOTE_ADDR", "HTTP_X_FORWARDED_FOR")] == [
        None
    ] * 5, seen


def test_an_apps_shared_memory_and_queues_are_its_own(host):
    """PrivateDevices= alone shows every unit the host's /dev/shm and /dev/mqueue."""
    status, done = get(host, "evil.test", "/drop")
    assert status == 200, done
    assert done["/dev/shm/evil-drop"] == "written"  # its own /dev/shm works (multiprocessing)
    assert done["/dev/mqueue/evil-drop"] != "written"
    status, seen = get(host, "victim.test", "/read?path=/dev/shm/evil-drop")
    assert status == 200 and seen == {"read": "FileNotFoundError"}, seen  # the victim's view
    listing = host.exec("ls -a /dev/shm /dev/mqueue").stdout  # the host's
    assert "evil-drop" not in listing, listing


def test_another_apps_nginx_error_log_is_not_readable(host):
    """The victim's error log holds its request URLs (tokens in query strings)."""
    log = "/var/log/nginx/victim.error.log"
    host.exec(f"echo 'GET /reset?token=victims-secret' >> {log}")  # as nginx would log it
    assert host.exec(f"stat -c %a {log}").stdout.strip() == "640"
    status, read = get(host, "evil.test", f"/read?path={log}")
    assert status == 200 and read == {"read": "PermissionError"}, read
    refused = host.exec(f"runuser -u evil -- cat {log}", check=False)
    assert refused.returncode != 0 and "victims-secret" not in refused.stdout


def test_a_worker_reaches_nothing_of_another_app(host, workdir, apps):
    """The evil app's worker runs in its app's sandbox: the victim's environment file, data,
    state and processes' environments are out of its reach (the secret is there: root sees
    it in the victim's process)."""
    victim_pid = host.exec("systemctl show -P MainPID victim.service").stdout.strip()
    assert SECRET in host.exec(f"tr '\\0' '\\n' < /proc/{victim_pid}/environ").stdout
    args = ["--data", f"apps={json.dumps(apps)}", "--data", "app=evil", "--data", "process=snoop"]
    seen = wait_for(
        lambda: (out := pyinfra([host], workdir, "logs.py", *args).check().output).count("snoop: ")
        >= 4
        and out,
        30,
    )
    said = sorted(set(re.findall(r"snoop: [^\n]*", seen)))
    assert said == [
        "snoop: 0 environments hold the secret",
        "snoop: refused /etc/victim/env",
        "snoop: refused /srv/victim/state/service.record",
        "snoop: refused /var/lib/victim",
    ], said


FORGED_STATS = "\n".join(
    [
        "import os, socket",
        "os.unlink(os.environ['P'])",
        "s = socket.socket(socket.AF_UNIX)",
        "s.bind(os.environ['P'])",
        "s.listen(5)",
        "while True:",
        "    c, _ = s.accept()",
        "    c.sendall(os.environ['A'].encode())",
        "    c.close()",
    ]
)


@contextmanager
def forged_stats(host, cwd: str, workers: int = 1):
    """The app (its user) serves its own stats in its stats socket's place (its own folder),
    claiming uWSGI's working directory is ``cwd``."""
    answer = json.dumps({"cwd": cwd, "workers": [{"status": "idle"}] * workers})
    host.exec(
        "systemd-run --unit=evil-stats --uid=evil -E P=/run/evil/stats.sock"
        f" -E A={shlex.quote(answer)} python3 -c {shlex.quote(FORGED_STATS)}"
    )
    try:
        yield
    finally:
        host.exec("systemctl stop evil-stats; systemctl reset-failed evil-stats", check=False)


def test_a_forged_stats_answer_stops_no_run(host, workdir, apps):
    """The app owns its stats socket's folder: it serves its own stats there, with a working
    directory holding a space. The run goes on to the next app, which it changes."""
    with forged_stats(host, "/srv/evil/releases/x y/app"):
        changed = [apps[0], {**apps[1], "processes": 3}]
        deploy(host, workdir, changed).check()
        assert "processes = 3" in host.exec("cat /etc/victim/uwsgi.ini").stdout


def current(host) -> str:
    return host.exec("readlink /srv/evil/current").stdout.strip()


def test_forged_stats_neither_stop_a_rollback_nor_fool_verify(host, workdir, apps, tmp_path):
    """The app claims to run the release a rollback goes back to: the rollback restarts it
    all the same, and verify reads what runs from root's record of the restart, showing
    what the app claims beside it."""
    first = current(host)
    second = [{**apps[0], "app_src": app_saying(tmp_path, "I am evil, twice")}, apps[1]]
    deploy(host, workdir, second).check()
    assert "twice" in get(host, "evil.test", "/")[1]["body"]
    args = ["--data", f"apps={json.dumps(second)}", "--data", "app=evil"]
    with forged_stats(host, f"{first}/app", workers=5):
        pyinfra([host], workdir, "rollback.py", *args).check()
    assert current(host) == first
    # restarted onto it, whatever the app claimed: the first release's code answers
    assert "twice" not in get(host, "evil.test", "/")[1]["body"]
    report = tmp_path / "report.json"
    claimed = f"/srv/evil/releases/{'0' * 16}"
    with forged_stats(host, f"{claimed}/app", workers=5):
        pyinfra(
            [host],
            workdir,
            "verify.py",
            "--data",
            f"apps={json.dumps(second)}",
            env_extra={"VERIFY_JSON": str(report)},
        )
    checks = json.loads(report.read_text())["hosts"][host.name]["checks"]
    (live,) = [c for c in checks if c["scope"] == "evil" and c["name"] == "live release is current"]
    assert live["ok"] and live["observed"] == f"{first} (the app reports {claimed})", live
    deploy(host, workdir, apps).check()  # back to the first app for the tests below


FORGER = '''

import sys as _sys


@app.route("/health")
def _unhealthy():
    """Logs what would clear the operator's screen and pass for the gate's own verdict."""
    print("release 0000 is live and healthy", file=_sys.stderr, flush=True)
    print("\\x1b[2J\\x1b[Hrelease 0000 is live\\rall checks pass", file=_sys.stderr, flush=True)
    return "down", 500
'''


def test_what_the_app_logs_reaches_the_operator_escaped_and_behind_a_bar(
    host, workdir, apps, tmp_path
):
    """A release the gate refuses shows its journal: the app's lines there cannot drive the
    terminal nor pass for the gate's own messages."""
    forger = app_saying(tmp_path, "I forge", FORGER)
    failing = [{**apps[0], "app_src": forger, "health_path": "/health"}, apps[1]]
    failed = deploy(host, workdir, failing)
    assert failed.returncode != 0 and "is unhealthy before going live" in failed.output
    assert "\x1b" not in failed.output and "\r" not in failed.output
    forged = [line for line in failed.output.splitlines() if "release 0000 is live" in line]
    assert forged and all("  | " in line for line in forged), forged  # behind the bar


STALLER = '''

def _stall():
    """With STALL=1 in its environment, the uWSGI master (app code runs there) hands
    systemd a helper as its main process, which answers SIGTERM by asking for more time,
    every second, for ever."""
    import os, signal, socket, time
    target = os.environ.get("NOTIFY_SOCKET", "")
    if os.environ.get("STALL") != "1" or not target:
        return
    address = "\\\\0" + target[1:] if target.startswith("@") else target
    def send(message):
        socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM).sendto(message.encode(), address)
    read, write = os.pipe()
    if os.fork():
        helper = int(os.read(read, 32))
        send(f"MAINPID={helper}")
        return
    os.setsid()
    if os.fork():
        os._exit(0)
    os.write(write, str(os.getpid()).encode())
    def extend(*_):
        while True:
            send("EXTEND_TIMEOUT_USEC=5000000")
            time.sleep(1)
    signal.signal(signal.SIGTERM, extend)
    time.sleep(1)
    send("READY=1")
    while True:
        time.sleep(60)


_stall()
'''


def gate_processes(host) -> str:
    return host.exec("pgrep -af '[r]elease_gate.py' || true").stdout.strip()


def test_an_app_that_stalls_its_restart_fails_its_own_deploy_in_bounded_time(
    host, workdir, apps, tmp_path
):
    """Its helper keeps systemd's stop waiting for ever: the deploy kills the unit past the
    deadline and fails naming it; the lock is free again and nothing of the run is left."""
    stalling = [{**apps[0], "app_src": app_saying(tmp_path, "I stall", STALLER)}, apps[1]]
    stalling[0]["env"] = {"STALL": "1"}
    deploy(host, workdir, stalling)  # the service now runs the staller (the run may fail)
    stalling[0]["app_src"] = app_saying(tmp_path, "I stall, again", STALLER)
    started = time.monotonic()
    failed = deploy(host, workdir, stalling)  # its stop stalls
    took = time.monotonic() - started
    print(f"\n[attacks] a stalling app's deploy failed after {took:.0f} s")
    assert failed.returncode != 0
    assert "did not end within 90 s (the app kept it waiting)" in failed.output
    assert took < 90 + 30 + 60  # the deadline, the health timeout, the rest of the run
    assert gate_processes(host) == ""
    assert get(host, "victim.test", "/")[0] == 200


def test_a_killed_run_leaves_nothing_acting_on_the_host(host, workdir, apps, tmp_path):
    """The run is killed while the app keeps its restart waiting: the gate and what it
    started end with it, and nothing changes on the host afterwards."""
    staller = app_saying(tmp_path, "I stall, for the third time", STALLER)
    stalling = [{**apps[0], "app_src": staller, "env": {"STALL": "1"}}, apps[1]]
    run = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pyinfra",
            TEST_INVENTORY,
            "deploy.py",
            "-y",
            "--data",
            f"apps={json.dumps(stalling)}",
        ],
        cwd=testbed.REPO,
        env=inventory_for([host], workdir),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(lambda: "restart" in gate_processes(host), 120, "the restart to stall")
        time.sleep(2)
    finally:
        run.kill()
        run.wait()
    history = host.exec("cat /srv/evil/state/releases.history").stdout
    wait_for(lambda: gate_processes(host) == "", 10, "the gate to end with its run")
    listing = host.exec("ps -eo pid,ppid,user,args --sort=pid").stdout
    print(f"\n[attacks] processes after the killed run:\n{listing}")
    time.sleep(20)
    assert host.exec("cat /srv/evil/state/releases.history").stdout == history
    assert gate_processes(host) == ""
