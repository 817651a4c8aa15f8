"""Release checks run on the host by the deploy (shipped to /usr/local/lib/flask-deploy/).

    release_gate.py check --release DIR --module wsgi:app --user U --sandbox DROP_IN
                          [--source-root src] [--command CMD ...] [HEALTH]
        Before a release goes live: build its app the way uWSGI will (import the module, call
        a ``factory()``) with its own venv, as the app user with the app's environment and the
        service's sandbox (a transient systemd unit taking every setting of the service's
        DROP_IN) and make sure it is a WSGI app; run each release command in the same sandbox;
        then serve it from a throw-away uWSGI on its own socket, in the same sandbox, and
        require a healthy answer.

    release_gate.py run --release DIR --module wsgi:app --user U --sandbox DROP_IN
                        [--source-root src] [--workdir DIR] -- CMD
        Run the shell command CMD in the release DIR (default working directory: its app
        folder) exactly like a release command: app user, environment, sandbox, the release's
        venv first on PATH, FLASK_APP set to the app. Exits with CMD's status.

    release_gate.py gate --history FILE --releases DIR --venvs DIR [--keep K] SERVICE [HEALTH]
        Make the running uWSGI serve the release ``current`` points to (restarted without a
        pause if it does not yet, see ``restart``), then health-check it through nginx. On
        success record it in the history and prune old releases and venvs; on failure switch
        ``current`` back to the previous healthy release, serve it again, and exit 1 with
        the reason.

    release_gate.py restart [--timeout S] SERVICE
        Restart the service onto the release ``current`` points to and the configuration on
        disk without a request waiting: its handover instance starts on the new release and
        takes requests from the same socket, the service is paused (each worker finishes its
        request, then stops accepting) and restarted, then the handover is paused and
        stopped. A graceful reload (SIGHUP) would hold every request while the app loads,
        and may drop a connection a worker had just accepted.

    release_gate.py live --stats STATS_SOCKET --user U
        Print the release dir uWSGI runs and how many workers are up (nothing if it does not
        answer), read as the app user; the deploy's LiveRelease fact reads this.

    SERVICE: --current LINK --service APP.service --stats STATS_SOCKET
             --handover APP-handover.service --handover-stats STATS_SOCKET --user U --processes N
    HEALTH: [--path /] [--host-header H] [--expect TEXT] [--timeout S] [--https]

Standard library only: it runs with the host's python3, as root. It follows no path in a
folder the app can write (its runtime folder: the stats and candidate sockets) as root: it
reads those as the app user (``as_user``).
"""

from __future__ import annotations

import _json
import _socket
import marshal
import os
import pwd
import select
import sys
import time

# What the deploy asks on every run, ``live`` (the LiveRelease fact), comes first and is
# answered before the modules the rest needs are imported (they cost more than the answer):
# it makes do with modules built into Python (json's and socket's own C parts, marshal),
# which cost next to nothing to import, where json and socket would take 15 ms of the
# host's CPU (they import re, enum and selectors).


def as_user(user: str, func, *args, timeout: float = 30):
    """Call ``func(*args)`` in a child process running as ``user`` (its uid and group, no
    other groups) and return its result (str, int, None, lists, dicts: passed back with
    marshal, which only this child writes); RuntimeError if the child failed or gave no
    answer within ``timeout`` seconds (the app may stop it: then it is killed). The child
    never execs: having dropped root, the kernel keeps it undumpable, so the app cannot ptrace
    it or reach into it through /proc (a process exec'd as the app outside its sandbox would
    hand the app a way out of it)."""
    entry = pwd.getpwnam(user)
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: drop root for good, then run func
        status = 1
        try:
            os.close(read_end)
            os.setgroups([])
            os.setgid(entry.pw_gid)
            os.setuid(entry.pw_uid)
            os.write(write_end, marshal.dumps(func(*args)))
            status = 0
        finally:
            os._exit(status)
    os.close(write_end)
    limit = STATS_LIMIT * 2
    try:
        data = read_within(read_end, limit, timeout)
    finally:
        os.close(read_end)
    if data is None or len(data) > limit:
        os.kill(pid, 9)  # SIGKILL (the signal module would cost more to import than this run)
    _, status = os.waitpid(pid, 0)
    if data is None:
        raise RuntimeError(f"{func.__name__} as {user} gave no answer within {timeout} s")
    if status != 0 or not data or len(data) > limit:
        raise RuntimeError(f"{func.__name__} as {user} failed (wait status {status})")
    try:
        return marshal.loads(data)
    except (EOFError, ValueError, TypeError) as err:
        raise RuntimeError(f"{func.__name__} as {user} answered nothing readable") from err


def read_within(fd: int, limit: int, timeout: float) -> bytes | None:
    """What ``fd`` gives until its end (at most ``limit`` bytes and what came with the last
    read); None when that takes longer than ``timeout`` seconds."""
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    deadline = time.monotonic() + timeout
    data = b""
    while len(data) <= limit:
        left = deadline - time.monotonic()
        if left <= 0 or not poller.poll(left * 1000):
            return None
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        data += chunk
    return data


STATS_LIMIT = 1 << 20  # bytes: the app controls what its stats server sends


def read_stats(stats_socket: str) -> dict | None:
    """What uWSGI's stats server says, or None when it does not answer within 5 s, sends
    more than STATS_LIMIT bytes or no JSON object."""
    deadline = time.monotonic() + 5
    data = b""
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        sock.settimeout(5)
        sock.connect(stats_socket)
        while chunk := sock.recv(65536):
            data += chunk
            if len(data) > STATS_LIMIT or time.monotonic() > deadline:
                return None
            sock.settimeout(max(deadline - time.monotonic(), 0.01))
        stats = json_value(data.decode())
    except (OSError, ValueError):
        return None
    finally:
        sock.close()
    return stats if isinstance(stats, dict) else None


JSON_CONSTANTS = {"NaN": float("nan"), "Infinity": float("inf"), "-Infinity": -float("inf")}


class _JsonDecoder:
    """What the scanner of json's C part asks of its decoder: json.loads's defaults."""

    strict = True
    object_hook = object_pairs_hook = None
    parse_float, parse_int, parse_constant = float, int, JSON_CONSTANTS.__getitem__


def json_value(text: str):
    """json.loads(text) (ValueError when it is not one JSON value), with json's C scanner."""
    text = text.strip(" \t\n\r")
    try:
        value, end = _json.make_scanner(_JsonDecoder())(text, 0)
    except StopIteration:
        raise ValueError("not JSON") from None
    if end != len(text):
        raise ValueError("more than one JSON value")
    return value


def workers_up(stats: dict) -> list[dict]:
    """The workers a stats answer lists with a process (the app controls its shape)."""
    workers = stats.get("workers")
    if not isinstance(workers, list):
        return []
    return [w for w in workers if isinstance(w, dict) and w.get("pid")]


def live_release(stats_socket: str) -> tuple[str | None, int]:
    """The release dir uWSGI runs (its master's cwd is the release's resolved app folder, read
    from the stats server) and how many workers are up; (None, 0) when it does not answer."""
    stats = read_stats(stats_socket)
    if stats is None or not isinstance(stats.get("cwd"), str):
        return None, 0
    return os.path.dirname(os.path.normpath(stats["cwd"])), len(workers_up(stats))


def running(stats: str, user: str) -> tuple[str | None, int]:
    """live_release of the stats socket ``stats``, read as the app user ``user`` (the socket
    is in the app's own folder)."""
    return tuple(as_user(user, live_release, stats))


def print_live(stats: str, user: str) -> int:
    """``live``: print the release uWSGI runs and its workers (nothing when it is down, or
    does not answer in time)."""
    try:
        release, workers = running(stats, user)
    except RuntimeError:
        return 0
    if release:
        print(release, workers)
    return 0


def live_command_line(argv: list[str]) -> tuple[str, str] | None:
    """The stats socket and user of ``live --stats=S --user=U``, the way LiveRelease asks it;
    None for any other command line (main() parses those)."""
    if len(argv) == 3 and argv[0] == "live":
        stats, user = argv[1].removeprefix("--stats="), argv[2].removeprefix("--user=")
        if argv[1] != stats and argv[2] != user and stats and user:
            return stats, user
    return None


if __name__ == "__main__" and (live := live_command_line(sys.argv[1:])):
    sys.exit(print_live(*live))

import argparse
import re
import shutil
import signal
import socket
import subprocess
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

TRANSIENT_KINDS = ("import-check", "release-command", "candidate", "command")


def transient_unit(user: str, kind: str) -> str:
    """The transient unit in which the app's code runs for one of the TRANSIENT_KINDS of
    work (the run's watchdog stops them all by these names)."""
    assert kind in TRANSIENT_KINDS, kind
    return f"{user}-{kind}"


CONTROL_RE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")  # but tab and newline


def escaped(text: str) -> str:
    """App-controlled ``text`` (its output, its journal, its answers) with control characters
    escaped as \\xNN: no escape sequence reaches the operator's terminal, nor a carriage
    return that overwrites a line."""
    return CONTROL_RE.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


IMPORT_CHECK = """
import importlib, inspect, sys
spec = sys.argv[1]
module, name = spec.split(":")
factory = name.endswith("()")
found = getattr(importlib.import_module(module), name.removesuffix("()"), None)
if found is None:
    sys.exit(f"{module} has no {name.removesuffix('()')!r}")
app = found() if factory else found  # as uWSGI does with module:factory()
hint = "" if factory else f": for an app factory write app_module = '{spec}()'"
try:
    inspect.signature(app).bind({}, print)
except TypeError:
    sys.exit(f"{spec} gives {app!r}, which is not a WSGI app of (environ, start_response){hint}")
except ValueError:
    pass  # no signature to read (a builtin): uWSGI will tell
"""


@dataclass(frozen=True)
class AppRun:
    """How to run the app's code of one release: as ``user``, in the sandbox of the drop-in
    ``sandbox``, importing ``module`` from the release's ``source_root``."""

    release: Path
    module: str
    user: str
    sandbox: str
    source_root: str = ""


@dataclass(frozen=True)
class Health:
    """What a healthy answer is: GET ``path`` with ``host_header`` gives 200 containing
    ``expect`` within ``timeout`` seconds (through nginx over HTTPS when ``https``)."""

    path: str = "/"
    host_header: str = "localhost"
    expect: str = ""
    timeout: float = 30
    https: bool = False


@dataclass(frozen=True)
class Instance:
    """One uWSGI master of the app: its systemd unit and its stats socket."""

    unit: str
    stats: str


@dataclass(frozen=True)
class Service:
    """The app's uWSGI: the service, and the handover instance that serves the same socket
    while the service restarts; their stats are read as ``user``; ``processes`` workers."""

    main: Instance
    handover: Instance
    user: str
    processes: int
    record: Path | None = None  # root's record of what the service's invocation loaded


def running_invocation(unit: str) -> str:
    """systemd's id of the unit's current run ("" when it does not run): a new one at each
    start, which the app cannot set, unlike its stats or, through MAINPID=, its main PID."""
    proc = subprocess.run(
        ["systemctl", "show", "-p", "ActiveState", "-p", "InvocationID", unit],
        capture_output=True,
        text=True,
        timeout=30,
    )
    shown = dict(line.split("=", 1) for line in proc.stdout.splitlines() if "=" in line)
    return shown.get("InvocationID", "") if shown.get("ActiveState") == "active" else ""


def release_in_record(record: str, invocation: str) -> str | None:
    """The release root's record (``INVOCATION_ID RELEASE``, written by the unit before each
    start) names, if it is the record of the run ``invocation`` ("" when the service does
    not run: None). The deploy reads records with this rule too."""
    words = record.split()
    return words[1] if invocation and len(words) == 2 and words[0] == invocation else None


def recorded_release(service: Service) -> str | None:
    """The release the service's current run loaded, from root's record; None when the
    service does not run or the record is not its current run's: then only the app's own
    word says what it runs."""
    try:
        record = service.record.read_text() if service.record else ""
    except OSError:
        return None
    return release_in_record(record, running_invocation(service.main.unit))


@dataclass(frozen=True)
class Paths:
    """The app's layout on the host, as the deploy names it (deploys/layout.py)."""

    current: Path
    history: Path
    releases: Path
    venvs: Path


def sandbox_properties(drop_in: str) -> list[str]:
    """``--property=`` arguments for systemd-run from the service's sandbox drop-in (every
    ``Key=Value`` line of its [Service] section)."""
    lines = Path(drop_in).read_text().splitlines()
    return [
        f"--property={line.strip()}"
        for line in lines
        if "=" in line and not line.lstrip().startswith(("#", ";", "["))
    ]


def unit_log(unit: str, lines: int = 60) -> str:
    """The last lines a unit logged, to show why a release failed: each behind a bar, so no
    line the app logged passes for one of this script's own."""
    proc = subprocess.run(
        ["journalctl", "--no-pager", "-o", "cat", "-n", str(lines), "-u", unit],
        capture_output=True,
    )
    text = proc.stdout.decode("utf-8", "replace").strip("\n")  # a lone \r is no line break
    return "\n".join(f"  | {escaped(line)}" for line in text.split("\n"))


def app_environment(release: Path, module: str, source_root: str) -> list[str]:
    """systemd-run ``--setenv`` arguments for the app's code run outside uWSGI: the release's
    venv first on PATH, its source root on PYTHONPATH, FLASK_APP naming the app (the app's
    env file, read after these, may override any of them)."""
    env = {
        "PATH": f"{release / 'venv/bin'}:/usr/local/bin:/usr/bin:/bin",
        "VIRTUAL_ENV": str(release / "venv"),
        "FLASK_APP": module,
    }
    if source_root:
        env["PYTHONPATH"] = str(release / "app" / source_root)
    return [f"--setenv={name}={value}" for name, value in env.items()]


def sandboxed(
    unit: str, sandbox: str, workdir: Path, environment: list[str], command: list[str]
) -> list[str]:
    """A systemd-run command line running ``command`` as the transient ``unit`` in the
    service's sandbox (its user, environment file and hardening) in ``workdir``, its output
    piped back, its exit status returned. A run of the unit before (failed, or left running
    by a check that timed out) is stopped and cleared."""
    discard(unit)
    return [
        "systemd-run",
        "--quiet",
        "--pipe",
        "--wait",
        "--collect",
        f"--unit={unit}",
        "--service-type=exec",
        *sandbox_properties(sandbox),
        f"--property=WorkingDirectory={workdir}",
        *environment,
        *command,
    ]


def check_import(app: AppRun) -> int:
    """The release's app builds and is a WSGI app, loaded as uWSGI would, in the sandbox."""
    env = app_environment(app.release, app.module, app.source_root)
    python = [str(app.release / "venv/bin/python3"), "-c", IMPORT_CHECK, app.module]
    cmd = sandboxed(
        transient_unit(app.user, "import-check"), app.sandbox, app.release / "app", env, python
    )
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    if proc.returncode != 0:
        print(
            f"release {app.release.name}: {app.module} does not load:\n"
            + escaped(proc.stderr.strip()),
            file=sys.stderr,
        )
        return 1
    print(f"release {app.release.name}: {app.module} loads")
    return 0


def run_command(app: AppRun, unit: str, command: str, workdir: Path | None = None) -> int:
    """Run one shell command in the release like the app runs (see ``run``) as the transient
    ``unit``; its output passes through; its exit status."""
    env = app_environment(app.release, app.module, app.source_root)
    shell = ["/bin/sh", "-c", command]
    cmd = sandboxed(unit, app.sandbox, workdir or app.release / "app", env, shell)
    sys.stdout.flush()
    return subprocess.run(cmd).returncode


def release_commands(app: AppRun, commands: list[str]) -> int:
    """The release commands, in order; the first failure stops the release."""
    for command in commands:
        print(f"release {app.release.name}: $ {command}", flush=True)
        status = run_command(app, transient_unit(app.user, "release-command"), command)
        if status != 0:
            print(
                f"release {app.release.name}: release_command {command!r} failed"
                f" (exit {status}): the release does not go live",
                file=sys.stderr,
            )
            return 1
    return 0


def unix_connection(path: str, timeout: float):
    """HTTP over a unix socket (the candidate's uWSGI http-socket). (http.client and ssl are
    imported where they are used: ``live``, run by every deploy, needs neither.)"""
    import http.client

    class UnixHTTPConnection(http.client.HTTPConnection):
        def connect(self):
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.settimeout(self.timeout)
            self.sock.connect(path)

    return UnixHTTPConnection("localhost", timeout=timeout)


def check_candidate(app: AppRun, check: Health) -> int:
    """Serve the release from a throw-away uWSGI (one worker, its own socket, the app's user
    and environment) and require a healthy answer before it may take real traffic."""
    release = app.release
    unit = transient_unit(app.user, "candidate")
    sock = f"/run/{unit}/http.sock"
    discard(unit)
    subprocess.run(
        [
            "systemd-run",
            "--quiet",
            "--collect",
            f"--unit={unit}",
            "--service-type=exec",
            *sandbox_properties(app.sandbox),
            f"--property=RuntimeDirectory={unit}",
            str(release / "venv/bin/uwsgi"),
            "--strict",
            "--master",
            "--need-app",
            "--processes=1",
            f"--chdir={release / 'app'}",
            *([f"--pythonpath={release / 'app' / app.source_root}"] if app.source_root else []),
            f"--module={app.module}",
            f"--http-socket={sock}",
            "--die-on-term",
            "--single-interpreter",  # as uwsgi.ini runs the app
            "--enable-threads",
        ],
        check=True,
    )
    try:  # the socket is in the app's own folder: connect as the app
        problem = as_user(
            app.user,
            health,
            check,
            lambda: unix_connection(sock, timeout=10),
            timeout=check.timeout + 30,
        )
    finally:
        systemctl("stop", unit, check=False)
    if problem:
        print(
            f"release {release.name} is unhealthy before going live: GET {check.path}"
            f" gave {escaped(problem)}\n-- its log (journalctl -u {unit}):\n{unit_log(unit)}",
            file=sys.stderr,
        )
        return 1
    print(f"release {release.name}: GET {check.path} healthy before going live")
    return 0


def worker_states(stats_socket: str) -> list[str]:
    """Each uWSGI worker's status (idle, busy, pause, ...); [] when it does not answer."""
    return [str(w.get("status", ""))[:16] for w in workers_up(read_stats(stats_socket) or {})]


def wait_for_generation(
    service: Service, instance: Instance, release: str, timeout: float
) -> str | None:
    """Wait until ``instance`` runs ``release`` with all its workers; None, or what was seen
    at the timeout."""
    deadline = time.monotonic() + timeout
    while True:
        live, workers = running(instance.stats, service.user)
        if live == release and workers == service.processes:
            return None
        if time.monotonic() > deadline:
            return f"{instance.unit} runs {live} with {workers} of {service.processes} workers"
        time.sleep(0.2)


PAUSE_SETTLE = 0.3  # seconds for every worker to act on SIGTSTP (microseconds, in practice)


def suspended(states: list[str]) -> bool:
    """Whether a master's workers are suspended: uWSGI reports a suspended worker as
    "pause" unless it is still finishing a request ("busy"); an "idle" one takes requests."""
    return "pause" in states and "idle" not in states


def pause(service: Service, instance: Instance) -> None:
    """Stop ``instance`` taking requests from the shared socket: SIGTSTP to its master makes
    each worker finish the request it holds, then wait instead of accepting (the signal
    toggles, so it is sent only to a master that is not suspended yet). Unlike a stop, this
    never catches a worker between accepting a connection and reading it: that worker
    serves it first."""
    if not suspended(as_user(service.user, worker_states, instance.stats)):
        systemctl("kill", "--kill-whom=main", "--signal=SIGTSTP", instance.unit)
    time.sleep(PAUSE_SETTLE)


def resume(service: Service, instance: Instance) -> None:
    """Make a suspended ``instance`` take requests again (a run killed after pausing it)."""
    if suspended(as_user(service.user, worker_states, instance.stats)):
        systemctl("kill", "--kill-whom=main", "--signal=SIGTSTP", instance.unit)


def retire_handover(service: Service) -> None:
    """Pause and stop the handover instance if it runs (the last step of a restart, or what
    an interrupted run left), and clear a failed state."""
    if active(service.handover.unit):
        pause(service, service.handover)
        systemctl("stop", service.handover.unit)
    systemctl("reset-failed", service.handover.unit, check=False)


SYSTEMCTL_DEADLINE = 90  # seconds: a graceful stop's 70 (TimeoutStopSec) and some margin


def systemctl(*args: str, check: bool = True) -> None:
    """Run systemctl quietly on the unit named last; CalledProcessError (with its output)
    when it fails, unless ``check`` is off (clearing a state that may not be there). The app
    can keep a stop or start waiting (it runs in the master: MAINPID= and EXTEND_TIMEOUT_USEC=
    on the notify socket): past SYSTEMCTL_DEADLINE every process of the unit is killed and
    RuntimeError says so."""
    try:
        subprocess.run(
            ["systemctl", *args],
            check=check,
            capture_output=True,
            text=True,
            timeout=SYSTEMCTL_DEADLINE,
        )
    except subprocess.TimeoutExpired:
        unit = args[-1]
        subprocess.run(
            ["systemctl", "kill", "--signal=SIGKILL", unit], capture_output=True, timeout=30
        )
        raise RuntimeError(
            f"systemctl {args[0]} {unit} did not end within {SYSTEMCTL_DEADLINE} s (the app"
            f" kept it waiting): every process of {unit} was killed"
        ) from None


def discard(unit: str) -> None:
    """Stop ``unit`` if it runs and forget a failed state of it."""
    systemctl("stop", unit, check=False)
    systemctl("reset-failed", unit, check=False)


def active(unit: str) -> bool:
    """Whether systemd runs ``unit``."""
    return subprocess.run(["systemctl", "is-active", "--quiet", unit], timeout=30).returncode == 0


def lock_is_free(lock: str) -> bool:
    """Whether nobody holds the deploy lock ``lock`` (flock, see deploys/lock.py)."""
    import fcntl

    fd = os.open(lock, os.O_RDONLY | os.O_NOFOLLOW)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(fd)
    return True


def owner_of(lock: str) -> str:
    """Who holds the deploy lock, as its holder wrote it."""
    try:
        return Path(lock + ".owner").read_text()
    except OSError:
        return ""


def die_with_run(lock: str, transient: list[str], every: float = 0.5) -> None:
    """This script acts for the run that holds the deploy lock ``lock``: once that run ends
    (killed, its connection lost: the lock goes free, or another run holds it), stop the
    transient units it started for the run (``transient``) and kill this script's process
    group, before it switches, records or prunes anything more (silently: the run's output
    went with it). Refuses to start when the run is gone already."""
    import threading

    owner = owner_of(lock)
    if lock_is_free(lock):
        sys.exit("release_gate: the run that started this holds no deploy lock: nothing done")
    os.setpgid(0, 0)  # this script and what it starts (systemctl, the app-user children)

    def watch():
        while not lock_is_free(lock) and owner_of(lock) == owner:
            time.sleep(every)
        units = " ".join(transient)  # names of ours: letters, digits, - and _
        if units:
            stop_later(units)
        os.killpg(0, signal.SIGKILL)

    def stop_later(units: str) -> None:
        """Stop ``units`` from a process of its own session: it outlives this group, and
        comes after anything the main thread may start meanwhile."""
        subprocess.Popen(
            [
                "sh",
                "-c",
                f"sleep 1; systemctl kill --signal=SIGKILL {units};"
                f" systemctl stop --no-block {units}",
            ],
            start_new_session=True,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    threading.Thread(target=watch, daemon=True).start()


def restart_without_pause(service: Service, release: str, timeout: float) -> str | None:
    """Restart the service onto ``release`` (``current``'s target, with the configuration on
    disk) so that no request waits: the handover instance starts on it and takes requests
    from the same socket, the service is paused (its in-flight requests finish on the old
    release) and restarted (gracefully: its master alone gets SIGTERM and lets each worker
    finish), then the handover is paused and stopped. A service that does not run is just
    (re)started. None, or the problem (the service untouched when the handover fails)."""
    main, handover = service.main, service.handover
    try:
        if running(main.stats, service.user)[0] is not None:
            resume(service, main)  # it must serve while the handover (re)starts
            systemctl("reset-failed", handover.unit, check=False)
            try:
                systemctl("restart", handover.unit)
                problem = wait_for_generation(service, handover, release, timeout)
            except subprocess.CalledProcessError as err:
                problem = f"{handover.unit} did not start: {err.stderr.strip()}"
            if problem:
                log = unit_log(handover.unit, 20)
                discard(handover.unit)
                return f"{problem}\n{log}"
            pause(service, main)
        systemctl("restart", main.unit)
        problem = wait_for_generation(service, main, release, timeout)
        if problem is None:
            retire_handover(service)
        return problem
    except subprocess.CalledProcessError as err:
        return f"{' '.join(err.cmd)} failed: {err.stderr.strip()}"
    except RuntimeError as err:  # the stats could not be read as the app user
        return str(err)


def through_nginx(check: Health):
    """A connection to the site through nginx: HTTPS when it serves TLS, with the site's name
    as SNI and no certificate check (the verifier does that: this asks the app, not the CA)."""
    import http.client
    import ssl

    if not check.https:
        return http.client.HTTPConnection("127.0.0.1", 80, timeout=10)
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE

    class SiteConnection(http.client.HTTPSConnection):
        def connect(self):
            raw = socket.create_connection((self.host, self.port), self.timeout)
            self.sock = self._context.wrap_socket(raw, server_hostname=check.host_header)

    return SiteConnection("127.0.0.1", 443, timeout=10, context=context)


READ_TIMEOUT = 10  # seconds: a connection's own timeout, past the health check's deadline
ERRORS_BEFORE_GIVING_UP = 3  # HTTP 500s in a row: the app's own error, not a slow start


@contextmanager
def within(seconds: float):
    """Raise TimeoutError in whatever blocks once ``seconds`` have passed (a socket read
    included: the app may drip its answer a byte at a time, each in time for a read's own
    timeout). Main thread only."""

    def expire(_signum, _frame):
        raise TimeoutError(f"no whole answer within {seconds:.0f} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, max(seconds, 0.1))
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def health(check: Health, connect) -> str | None:
    """None when GET check.path answers 200 (with the expected text) within the timeout; the
    problem seen otherwise. Repeated HTTP 500s end the wait early. Each attempt, the whole
    answer included, ends by the deadline (plus a read's own timeout)."""
    import http.client

    deadline = time.monotonic() + check.timeout
    errors = 0
    while True:
        conn = connect()
        try:
            with within(deadline - time.monotonic() + READ_TIMEOUT):
                conn.request("GET", check.path, headers={"Host": check.host_header})
                resp = conn.getresponse()
                body = resp.read(65536).decode("utf-8", "replace")
            if resp.status != 200:
                problem = f"HTTP {resp.status}"
            elif check.expect in body:
                problem = None
            else:
                problem = f"200 without {check.expect!r} (the page began {body[:160]!r})"
            errors = errors + 1 if resp.status == 500 else 0
        except (OSError, http.client.HTTPException) as err:
            problem = f"{type(err).__name__}: {err}"
        finally:
            conn.close()
        if problem is None or errors >= ERRORS_BEFORE_GIVING_UP or time.monotonic() > deadline:
            return problem
        time.sleep(0.5)


def previous_release(names: list[str], live: str) -> str | None:
    """The release to go back to from ``live``: the newest healthy one in the history
    (``names``, oldest first) that is not it. The gate's switch-back and rollback.py share
    this rule."""
    return next((name for name in reversed(names) if name != live), None)


def history(path: Path) -> list[str]:
    """The ids in the release history (oldest first)."""
    return path.read_text().split() if path.exists() else []


def switch(current: Path, target: str) -> None:
    """Point the symlink ``current`` at ``target`` atomically."""
    tmp = current.with_name(current.name + ".new")
    if tmp.is_symlink():
        tmp.unlink()
    tmp.symlink_to(target)
    os.replace(tmp, current)


def serve(service: Service, check: Health, release: str, restart: bool = False) -> str | None:
    """Make uWSGI serve ``release`` and check its health through nginx; None on success. It
    restarts unless root's record says the service's current run loaded ``release`` (what
    the app reports decides nothing: it can forge its stats); ``restart``: always."""
    problem = None
    if restart or recorded_release(service) != release:
        problem = restart_without_pause(service, release, check.timeout)
    problem = problem or wait_for_generation(service, service.main, release, check.timeout)
    if problem is None:
        retire_handover(service)  # one an interrupted run left
    return problem or health(check, lambda: through_nginx(check))


def prune(paths: Paths, keep: int, live: str) -> None:
    """Keep the ``keep`` most recently healthy releases (and the live one), and the venvs they
    use; remove the rest."""
    kept = {live}
    for name in reversed(history(paths.history)):
        if len(kept) >= keep:
            break
        kept.add(str(paths.releases / name))
    for release in paths.releases.iterdir():
        if str(release) not in kept and release.is_dir():
            shutil.rmtree(release)
    used = {os.path.realpath(Path(r) / "venv") for r in kept}
    for venv in paths.venvs.iterdir():
        if venv.is_dir() and str(venv) not in used:
            shutil.rmtree(venv)
            venv.with_name(venv.name + ".requirements.txt").unlink(missing_ok=True)


def gate(paths: Paths, service: Service, check: Health, keep: int, restart: bool = False) -> int:
    """Serve the release ``current`` names and prove it healthy: record and prune; or switch
    back to the previous healthy release and fail with the reason and the service's log.
    ``restart``: restart the service onto it whatever it runs (a rollback)."""
    release = os.path.realpath(paths.current)
    name = Path(release).name
    problem = serve(service, check, release, restart)
    if problem is None:
        names = history(paths.history)
        if not names or names[-1] != name:
            with paths.history.open("a") as f:
                f.write(name + "\n")
        prune(paths, keep, release)
        print(f"release {name} is live and healthy")
        return 0
    previous = previous_release(history(paths.history), name)
    message = f"release {name} failed its health check: {problem}"
    if previous and (paths.releases / previous).is_dir():
        switch(paths.current, str(paths.releases / previous))
        again = serve(service, check, str(paths.releases / previous), restart=True)
        message += f"; switched back to {previous}" + (
            f" (still failing: {again})" if again else ""
        )
    print(f"{escaped(message)}\n-- its log (journalctl -u {service.main.unit}):", file=sys.stderr)
    print(unit_log(service.main.unit), file=sys.stderr)
    return 1


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="subcommand", required=True)
    check = sub.add_parser("check")
    run = sub.add_parser("run")
    for flag in ("--release", "--module", "--sandbox"):
        for each in (check, run):
            each.add_argument(flag, required=True)
    check.add_argument("--command", action="append", default=[])
    for each in (check, run):
        each.add_argument("--user", required=True)
        each.add_argument("--source-root", default="")
    run.add_argument("--workdir")
    run.add_argument("shell_command")
    g = sub.add_parser("gate")
    for flag in ("--history", "--releases", "--venvs"):
        g.add_argument(flag, required=True)
    g.add_argument("--keep", type=int, default=5)
    g.add_argument("--restart", action="store_true", help="restart whatever the service runs")
    restart = sub.add_parser("restart")
    restart.add_argument("--timeout", type=float, default=30)
    for each in (g, restart):
        for flag in ("--current", "--service", "--stats", "--handover", "--handover-stats"):
            each.add_argument(flag, required=True)
        each.add_argument("--user", required=True)
        each.add_argument("--processes", type=int, required=True)
        each.add_argument("--record", help="root's record of what the service's run loaded")
    for each in (check, g):
        each.add_argument("--path", default="/")
        each.add_argument("--host-header", default="localhost")
        each.add_argument("--expect", default="")
        each.add_argument("--timeout", type=float, default=30)
        each.add_argument("--https", action="store_true")
    for each in (check, run, g, restart):
        each.add_argument("--lock", help="the run's deploy lock: end with the run")
    live = sub.add_parser("live")
    live.add_argument("--stats", required=True)
    live.add_argument("--user", required=True)
    args = parser.parse_args(argv)
    if args.subcommand == "live":
        return print_live(args.stats, args.user)
    if args.lock:
        die_with_run(args.lock, [transient_unit(args.user, kind) for kind in TRANSIENT_KINDS])
    try:
        return act(args)
    except (RuntimeError, TimeoutError, subprocess.TimeoutExpired) as err:  # the app's delay
        print(f"release_gate: {escaped(str(err))}", file=sys.stderr)
        return 1


def act(args) -> int:
    """Carry out the parsed subcommand (but ``live``)."""
    if args.subcommand in ("check", "gate"):
        check = Health(args.path, args.host_header, args.expect, args.timeout, args.https)
    if args.subcommand in ("gate", "restart"):
        service = Service(
            Instance(args.service, args.stats),
            Instance(args.handover, args.handover_stats),
            args.user,
            args.processes,
            Path(args.record) if args.record else None,
        )
    if args.subcommand == "restart":
        problem = restart_without_pause(service, os.path.realpath(args.current), args.timeout)
        if problem:
            print(f"{args.service} did not restart: {escaped(problem)}", file=sys.stderr)
        return 1 if problem else 0
    if args.subcommand == "gate":
        paths = Paths(*(Path(p) for p in (args.current, args.history, args.releases, args.venvs)))
        return gate(paths, service, check, args.keep, args.restart)
    app = AppRun(Path(args.release), args.module, args.user, args.sandbox, args.source_root)
    if args.subcommand == "run":
        workdir = Path(args.workdir) if args.workdir else None
        status = run_command(app, transient_unit(app.user, "command"), args.shell_command, workdir)
        if status:
            print(f"the command failed (exit {status})", file=sys.stderr)
        return status
    return check_import(app) or release_commands(app, args.command) or check_candidate(app, check)


if __name__ == "__main__":
    sys.exit(main())
