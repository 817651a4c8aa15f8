"""The release checks' pure parts (files/release_gate.py and deploys/hostside run on hosts,
standard library only)."""

import os
import pwd
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import deploys
from deploys.config.layout import GATE_SCRIPT
from deploys.config.settings import load_settings
from deploys.hostside import health
from deploys.hostside.gate import Paths, prune, switch
from deploys.hostside.handover import suspended
from deploys.hostside.live import STATS_LIMIT, as_user
from deploys.hostside.rules import previous_release, release_in_record
from deploys.hostside.sandbox import IMPORT_CHECK, app_environment, sandbox_properties
from deploys.hostside.units import escaped, unit_log
from deploys.release.gate import gate_files
from deploys.release.live import LiveRelease
from deploys.stack.appservice import sandbox


def test_release_checks_take_every_setting_of_the_services_sandbox(tmp_path):
    drop_in = tmp_path / "sandbox.conf"
    drop_in.write_text(sandbox(load_settings({})))
    properties = sandbox_properties(str(drop_in))
    settings = [
        line
        for line in drop_in.read_text().splitlines()
        if line and not line.startswith(("#", "["))
    ]
    assert properties == [f"--property={line}" for line in settings]
    assert "--property=User=myproject" in properties
    assert "--property=SystemCallFilter=~@privileged @resources" in properties
    assert len(properties) > 25


NOTES = Path(__file__).resolve().parent.parent / "examples/notes"


def load_check(spec: str, folder: Path = NOTES) -> subprocess.CompletedProcess:
    """The gate's app-loading check, run here with this venv's Flask, as on a host."""
    return subprocess.run(
        [sys.executable, "-c", IMPORT_CHECK, spec],
        cwd=folder,
        capture_output=True,
        text=True,
    )


def test_the_load_check_builds_a_factory_app_like_uwsgi():
    assert load_check("notes:create_app()").returncode == 0


def test_the_load_check_refuses_a_factory_given_as_the_app():
    result = load_check("notes:create_app")
    assert result.returncode == 1
    assert "notes:create_app gives <function create_app" in result.stderr
    assert "not a WSGI app of (environ, start_response)" in result.stderr
    assert "for an app factory write app_module = 'notes:create_app()'" in result.stderr


def test_the_load_check_shows_a_factorys_own_error(tmp_path):
    (tmp_path / "shop.py").write_text("def make():\n    raise RuntimeError('no DATABASE_URL')\n")
    result = load_check("shop:make()", tmp_path)
    assert result.returncode == 1 and "RuntimeError: no DATABASE_URL" in result.stderr
    assert "has no 'other'" in load_check("shop:other", tmp_path).stderr


def test_app_commands_get_the_release_venv_and_source_root():
    env = app_environment(Path("/srv/a/releases/1"), "shop:create_app()", "src")
    assert env == [
        "--setenv=PATH=/srv/a/releases/1/venv/bin:/usr/local/bin:/usr/bin:/bin",
        "--setenv=VIRTUAL_ENV=/srv/a/releases/1/venv",
        "--setenv=FLASK_APP=shop:create_app()",
        "--setenv=PYTHONPATH=/srv/a/releases/1/app/src",
    ]
    assert not any("PYTHONPATH" in e for e in app_environment(Path("/r"), "w:a", ""))


def test_the_previous_release_is_the_newest_healthy_one_that_is_not_live():
    assert previous_release(["a", "b", "c"], "c") == "b"
    assert previous_release(["a", "b", "c", "b"], "b") == "c"  # a second rollback
    assert previous_release(["a"], "a") is None
    assert previous_release([], "x") is None


def test_prune_keeps_the_newest_healthy_releases_the_live_one_and_their_venvs(tmp_path):
    paths = Paths(
        tmp_path / "current", tmp_path / "history", tmp_path / "releases", tmp_path / "venvs"
    )
    for name, venv in (("r1", "v1"), ("r2", "v1"), ("r3", "v2"), ("r4", "v3")):
        (paths.releases / name).mkdir(parents=True)
        (paths.venvs / venv).mkdir(parents=True, exist_ok=True)
        (paths.releases / name / "venv").symlink_to(paths.venvs / venv)
    (paths.venvs / "v1.requirements.txt").write_text("flask\n")
    (paths.venvs / "v3.requirements.txt").write_text("flask\n")
    paths.history.write_text("r1\nr2\nr3\n")
    switch(paths.current, str(paths.releases / "r4"))  # live, not yet recorded
    prune(paths, 2, str(paths.releases / "r4"))
    assert sorted(p.name for p in paths.releases.iterdir()) == ["r3", "r4"]
    assert sorted(p.name for p in paths.venvs.iterdir()) == ["v2", "v3", "v3.requirements.txt"]
    assert paths.current.resolve() == paths.releases / "r4"


def test_a_master_is_suspended_when_its_workers_pause_or_finish_a_request():
    assert suspended(["pause", "pause"])
    assert suspended(["pause", "busy"])  # finishing its request, then pauses
    assert not suspended(["idle", "pause"])  # an idle worker takes requests
    assert not suspended(["busy", "busy"])  # SIGTSTP needed (it toggles)
    assert not suspended([])


CAPTURED_STATS = Path(__file__).parent / "captured/uwsgi-stats.json"  # a real uWSGI's answer


def shipped(root: Path) -> str:
    """The release checks laid out under ``root`` as the deploy ships them; the script."""
    for dest, source in gate_files().items():
        (root / dest.lstrip("/")).parent.mkdir(parents=True, exist_ok=True)
        (root / dest.lstrip("/")).write_bytes(source.read_bytes())
    return str(root / GATE_SCRIPT.lstrip("/"))


def live_answered(tmp_path: Path, answer: bytes) -> subprocess.CompletedProcess:
    """``live`` run as the shipped script against a stats socket that sends ``answer``."""
    stats = tmp_path / "stats.sock"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(stats))
    server.listen(1)

    def send():
        conn, _ = server.accept()
        conn.sendall(answer)
        conn.close()

    thread = threading.Thread(target=send)
    thread.start()
    user = pwd.getpwuid(os.getuid()).pw_name
    live = subprocess.run(
        [
            sys.executable,
            "-I",
            "-S",
            shipped(tmp_path / "host"),
            "live",
            f"--stats={stats}",
            f"--user={user}",
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    thread.join(timeout=10)
    server.close()
    return live


def test_live_reads_the_release_and_its_workers_from_the_stats_server(tmp_path):
    """The whole ``live`` path on a real socket serving a real uWSGI's stats: read in a child
    that dropped to the user, passed back, the release folder and workers up printed."""
    live = live_answered(tmp_path, CAPTURED_STATS.read_bytes())
    assert live.stdout == "/srv/myproject/releases/eed358cb2531b095 5\n", live.stderr
    assert LiveRelease().process(live.stdout.splitlines()) == {
        "release": "/srv/myproject/releases/eed358cb2531b095",
        "workers": 5,
    }


@pytest.mark.parametrize(
    "cwd", ["/srv/evil/releases/\\ud800/app", "/srv/é/releases/1/app", "/srv/a/r\\u001b[2J/app"]
)
def test_a_forged_release_name_is_not_live_and_fails_no_run(tmp_path, cwd):
    """The app serves its own stats: a folder name no deploy makes (a lone surrogate that
    root's stdout cannot encode, non-ASCII, a control character) reads as "not answering",
    and ``live`` still succeeds (a failed fact would stop every app's deploy on the host)."""
    answer = f'{{"cwd": "{cwd}", "workers": [{{"pid": 1}}]}}'.encode()
    live = live_answered(tmp_path, answer)
    assert (live.returncode, live.stdout) == (0, ""), live.stderr


def test_live_imports_no_other_check_and_the_checks_only_the_standard_library(tmp_path):
    """``live``, read on every deploy, loads its own module and no other check's; the other
    checks load with no site-packages at all, as on a host."""
    script = shipped(tmp_path)
    folder = Path(script).parent
    modules = sorted(p.stem for p in (folder / "hostside").glob("*.py") if p.stem != "__init__")
    code = (
        f"import sys; sys.path.insert(0, {str(folder)!r}); import hostside.live;"
        " print(sorted(m for m in sys.modules if m.startswith('hostside')));"
        f" [__import__('hostside.' + m) for m in {modules!r}]"
    )
    run = subprocess.run([sys.executable, "-I", "-S", "-c", code], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert run.stdout == "['hostside', 'hostside.live']\n"


def stop_myself() -> None:
    os.kill(os.getpid(), signal.SIGSTOP)


def test_a_child_that_gives_no_answer_in_time_is_killed():
    """The app can stop the child that reads its stats (it runs as the app): the root side
    waits a bounded time, kills it and says so, rather than hold up the run."""
    user = pwd.getpwuid(os.getuid()).pw_name
    with pytest.raises(RuntimeError, match="gave no answer within 1 s"):
        as_user(user, stop_myself, timeout=1)
    assert as_user(user, os.getuid) == os.getuid()


def too_much() -> str:
    return "x" * (STATS_LIMIT * 3)


def test_a_child_that_answers_too_much_is_refused():
    """The app shapes what the child passes back (its stats): an answer over the limit is an
    error the gate handles, not a cut-off value."""
    user = pwd.getpwuid(os.getuid()).pw_name
    with pytest.raises(RuntimeError, match=r"too_much as \S+ failed"):
        as_user(user, too_much)


def test_app_text_reaches_the_operator_escaped_and_its_journal_behind_a_bar(tmp_path, monkeypatch):
    """An app's journal line cannot clear the screen, overwrite a line or pass for one of
    the gate's own messages ("release ... is live and healthy")."""
    forged = "\x1b[2J\rrelease fake is live and healthy\x07"
    assert escaped(forged) == ("\\x1b[2J\\x0drelease fake is live and healthy\\x07")
    assert escaped("line one\n\tline two") == "line one\n\tline two"
    journalctl = tmp_path / "journalctl"
    (tmp_path / "journal").write_text(f"uwsgi started\n{forged}\n")
    journalctl.write_text(f"#!/bin/sh\ncat {tmp_path}/journal\n")
    journalctl.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    assert unit_log("evil.service").splitlines() == [
        "  | uwsgi started",
        "  | \\x1b[2J\\x0drelease fake is live and healthy\\x07",
    ]


def test_the_verifiers_table_escapes_what_the_host_answered():
    from deploys.verify.checks import Check
    from deploys.verify.report import format_table

    table = format_table("web1", [Check("live release", "/srv/a", "\x1b[2J ALL PASS\r", False)])
    assert "\x1b" not in table and "\r" not in table
    assert "\\x1b[2J ALL PASS\\x0d" in table


@pytest.fixture
def dripping():
    """A TCP server on loopback that promises 4 KiB and sends a byte a second (a forked
    child of the app can answer like this: harakiri never fires)."""
    server = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve():
        conn, _ = server.accept()
        conn.recv(65536)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 4096\r\n\r\n")
        while not stop.wait(1):
            try:
                conn.sendall(b"x")
            except OSError:
                break
        conn.close()

    threading.Thread(target=serve, daemon=True).start()
    yield server.getsockname()[1]
    stop.set()
    server.close()


def test_the_health_check_ends_by_its_deadline_when_the_answer_drips(dripping, monkeypatch):
    import http.client
    import time

    monkeypatch.setattr(health, "READ_TIMEOUT", 1)
    check = health.Health(timeout=1)
    started = time.monotonic()
    problem = health.health(
        check, lambda: http.client.HTTPConnection("127.0.0.1", dripping, timeout=10)
    )
    assert problem == "TimeoutError: no whole answer within 2 s"
    assert time.monotonic() - started < 4


def test_the_verifiers_probe_ends_by_its_deadline_when_the_answer_drips(dripping):
    from deploys.ops.facts import HTTP_PROBE, HttpResponse

    probe = HTTP_PROBE.replace("HEADERS", "()").replace("signal.alarm(20)", "signal.alarm(1)")
    url = f"http://127.0.0.1:{dripping}/"
    out = subprocess.run(
        [sys.executable, "-c", probe, url, "app.test"], capture_output=True, text=True, timeout=10
    )
    assert HttpResponse().process(out.stdout.splitlines())["status"] == 0
    assert "no whole answer within 20 s" in out.stdout  # the message names the real deadline


def test_what_the_gate_does_for_a_run_ends_with_that_run(tmp_path):
    """The gate (and whatever it started) is killed once the run holding the deploy lock
    ends, before its next step; it refuses to start for a run that is gone already."""
    lock = tmp_path / "host.lock"
    lock.write_text("")
    (tmp_path / "host.lock.owner").write_text("deploy.py by alice@laptop (pid 42)\n")
    holder = subprocess.Popen(["flock", "-o", str(lock), "sleep", "60"])
    repo = Path(deploys.__file__).parent.parent
    script = (
        f"import subprocess, sys, time; sys.path.insert(0, {str(repo)!r});"
        "import deploys.hostside.watch as g;"
        f" g.die_with_run({str(lock)!r}, [], every=0.1);"
        " child = subprocess.Popen(['sleep', '60']); print(child.pid, flush=True);"
        f" time.sleep(5); open({str(tmp_path / 'later')!r}, 'w').write('changed')"
    )
    try:
        time.sleep(0.3)  # the holder has the lock
        acting = subprocess.Popen(
            [sys.executable, "-c", script],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        child = int(acting.stdout.readline())
        acting.stdout.close()  # the run's channel is gone with it: nobody reads the output
        acting.stderr.close()
        holder.kill()  # the run is killed: its lock goes
        assert acting.wait(timeout=3) == -signal.SIGKILL
        time.sleep(0.3)
        stat = Path(f"/proc/{child}/stat")
        assert not stat.exists() or stat.read_text().split()[2] == "Z"  # died with it
        assert not (tmp_path / "later").exists()
    finally:
        holder.kill()
    refused = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert refused.returncode == 1 and "holds no deploy lock: nothing done" in refused.stderr


def test_root_s_record_names_a_release_only_for_the_run_it_was_written_for():
    record = "08776b6643214efaa377a8ae30140191 /srv/a/releases/r2\n"
    assert release_in_record(record, "08776b6643214efaa377a8ae30140191") == ("/srv/a/releases/r2")
    assert release_in_record(record, "377cf37fa4e04e2e85e8f4c4d35f513c") is None
    assert release_in_record(record, "") is None  # the service does not run
    assert release_in_record("", "08776b6643214efaa377a8ae30140191") is None
