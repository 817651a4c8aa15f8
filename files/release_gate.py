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

    release_gate.py gate --root /srv/APP --service APP.service --stats STATS_SOCKET --user U
                         --processes N [--keep K] [HEALTH]
        Make the running uWSGI serve the release ``current`` points to (graceful reload if it
        does not yet), then health-check it through nginx. On success record it in
        state/releases.history and prune old releases; on failure switch ``current`` back to
        the previous healthy release, reload, and exit 1 with the reason.

    release_gate.py live --stats STATS_SOCKET --user U
        Print the release dir uWSGI runs and how many workers are up (nothing if it does not
        answer), read as the app user; the deploy's LiveRelease fact reads this.

    HEALTH: [--path /] [--host-header H] [--expect TEXT] [--timeout S] [--https]

Standard library only: it runs with the host's python3, as root. It follows no path in a
folder the app can write (its runtime folder: the stats and candidate sockets) as root: it
reads those as the app user (``as_user``).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import pwd
import shutil
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path

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


def sandbox_properties(drop_in: str) -> list[str]:
    """``--property=`` arguments for systemd-run from the service's sandbox drop-in (every
    ``Key=Value`` line of its [Service] section)."""
    lines = Path(drop_in).read_text().splitlines()
    return [
        f"--property={line.strip()}"
        for line in lines
        if "=" in line and not line.lstrip().startswith(("#", ";", "["))
    ]


def as_user(user: str, func, *args):
    """Call ``func(*args)`` in a child process running as ``user`` (its uid and group, no
    other groups) and return its JSON-able result; RuntimeError if the child failed. The child
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
            os.write(write_end, json.dumps(func(*args)).encode())
            status = 0
        finally:
            os._exit(status)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        data = pipe.read()
    _, status = os.waitpid(pid, 0)
    if status != 0 or not data:
        raise RuntimeError(f"{func.__name__} as {user} failed (wait status {status})")
    return json.loads(data)


def unit_log(unit: str, lines: int = 60) -> str:
    """The last lines a unit logged, to show why a release failed."""
    proc = subprocess.run(
        ["journalctl", "--no-pager", "-o", "cat", "-n", str(lines), "-u", unit],
        capture_output=True,
        text=True,
    )
    return proc.stdout.strip()


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
    piped back, its exit status returned. A failed run of the unit before is cleared."""
    subprocess.run(["systemctl", "reset-failed", unit], capture_output=True)
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


def check_import(args) -> int:
    release = Path(args.release)
    env = app_environment(release, args.module, args.source_root)
    python = [str(release / "venv/bin/python3"), "-c", IMPORT_CHECK, args.module]
    cmd = sandboxed(f"{args.user}-import-check", args.sandbox, release / "app", env, python)
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    if proc.returncode != 0:
        print(
            f"release {release.name}: {args.module} does not load:\n{proc.stderr.strip()}",
            file=sys.stderr,
        )
        return 1
    print(f"release {release.name}: {args.module} loads")
    return 0


def run_command(args, unit: str, command: str, workdir: Path | None = None) -> int:
    """Run one shell command in the release like the app runs (see ``run``) as the transient
    ``unit``; its output passes through; its exit status."""
    release = Path(args.release)
    env = app_environment(release, args.module, args.source_root)
    shell = ["/bin/sh", "-c", command]
    cmd = sandboxed(unit, args.sandbox, workdir or release / "app", env, shell)
    sys.stdout.flush()
    return subprocess.run(cmd).returncode


def release_commands(args) -> int:
    """The release commands, in order; the first failure stops the release."""
    for command in args.command:
        print(f"release {Path(args.release).name}: $ {command}", flush=True)
        status = run_command(args, f"{args.user}-release-command", command)
        if status != 0:
            print(
                f"release {Path(args.release).name}: release_command {command!r} failed"
                f" (exit {status}): the release does not go live",
                file=sys.stderr,
            )
            return 1
    return 0


class UnixHTTPConnection(http.client.HTTPConnection):
    """HTTP over a unix socket (the candidate's uWSGI http-socket)."""

    def __init__(self, path: str, timeout: float):
        super().__init__("localhost", timeout=timeout)
        self.path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.path)


def check_candidate(args) -> int:
    """Serve the release from a throw-away uWSGI (one worker, its own socket, the app's user
    and environment) and require a healthy answer before it may take real traffic."""
    release = Path(args.release)
    unit = f"{args.user}-candidate"
    sock = f"/run/{unit}/http.sock"
    subprocess.run(["systemctl", "stop", unit], capture_output=True)
    subprocess.run(["systemctl", "reset-failed", unit], capture_output=True)
    subprocess.run(
        [
            "systemd-run",
            "--quiet",
            "--collect",
            f"--unit={unit}",
            "--service-type=exec",
            *sandbox_properties(args.sandbox),
            f"--property=RuntimeDirectory={unit}",
            str(release / "venv/bin/uwsgi"),
            "--strict",
            "--master",
            "--need-app",
            "--processes=1",
            f"--chdir={release / 'app'}",
            *([f"--pythonpath={release / 'app' / args.source_root}"] if args.source_root else []),
            f"--module={args.module}",
            f"--http-socket={sock}",
            "--die-on-term",
            "--single-interpreter",  # as uwsgi.ini runs the app
            "--enable-threads",
        ],
        check=True,
    )
    try:  # the socket is in the app's own folder: connect as the app
        problem = as_user(args.user, health, args, lambda: UnixHTTPConnection(sock, timeout=10))
    finally:
        subprocess.run(["systemctl", "stop", unit], capture_output=True)
    if problem:
        print(
            f"release {release.name} is unhealthy before going live: GET {args.path}"
            f" gave {problem}\n-- its log (journalctl -u {unit}):\n{unit_log(unit)}",
            file=sys.stderr,
        )
        return 1
    print(f"release {release.name}: GET {args.path} healthy before going live")
    return 0


def live_release(stats_socket: str) -> tuple[str | None, int]:
    """The release dir uWSGI runs (its master's cwd is the release's resolved app folder, read
    from the stats server) and how many workers are up; (None, 0) when it does not answer."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(5)
            sock.connect(stats_socket)
            data = b"".join(iter(lambda: sock.recv(65536), b""))
        stats = json.loads(data)
    except (OSError, ValueError):
        return None, 0
    workers = [w for w in stats.get("workers", []) if w.get("pid")]
    return str(Path(stats["cwd"]).parent), len(workers)


def running(args) -> tuple[str | None, int]:
    """live_release of ``args.stats``, read as the app user ``args.user`` (the stats socket is
    in the app's own folder)."""
    return tuple(as_user(args.user, live_release, args.stats))


def wait_for_generation(args, release: str) -> str | None:
    """Wait until uWSGI runs ``release`` with all ``processes`` workers; None, or what was
    seen at the timeout."""
    deadline = time.monotonic() + args.timeout
    while True:
        live, workers = running(args)
        if live == release and workers == args.processes:
            return None
        if time.monotonic() > deadline:
            return f"uWSGI runs {live} with {workers} of {args.processes} workers"
        time.sleep(0.2)


class SiteConnection(http.client.HTTPSConnection):
    """HTTPS to the host's own nginx with the site's name as SNI; the certificate is not
    checked (the verifier does that): this asks the app, not the CA."""

    def __init__(self, name: str, timeout: float):
        context = ssl.create_default_context()
        context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
        super().__init__("127.0.0.1", 443, timeout=timeout, context=context)
        self.name = name

    def connect(self):
        raw = socket.create_connection((self.host, self.port), self.timeout)
        self.sock = self._context.wrap_socket(raw, server_hostname=self.name)


def through_nginx(args) -> http.client.HTTPConnection:
    """A connection to the site through nginx: HTTPS when it serves TLS."""
    if args.https:
        return SiteConnection(args.host_header, timeout=10)
    return http.client.HTTPConnection("127.0.0.1", 80, timeout=10)


ERRORS_BEFORE_GIVING_UP = 3  # HTTP 500s in a row: the app's own error, not a slow start


def health(args, connect) -> str | None:
    """None when GET args.path answers 200 (with the expected text) within the timeout; the
    problem seen otherwise. Repeated HTTP 500s end the wait early."""
    deadline = time.monotonic() + args.timeout
    errors = 0
    while True:
        conn = connect()
        try:
            conn.request("GET", args.path, headers={"Host": args.host_header})
            resp = conn.getresponse()
            body = resp.read(65536).decode("utf-8", "replace")
            if resp.status != 200:
                problem = f"HTTP {resp.status}"
            elif args.expect in body:
                problem = None
            else:
                problem = f"200 without {args.expect!r} (the page began {body[:160]!r})"
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


def history(root: Path) -> list[str]:
    path = root / "state/releases.history"
    return path.read_text().split() if path.exists() else []


def switch(current: Path, target: str) -> None:
    tmp = current.with_name(current.name + ".new")
    if tmp.is_symlink():
        tmp.unlink()
    tmp.symlink_to(target)
    os.replace(tmp, current)


def serve(args, release: str) -> str | None:
    """Make uWSGI serve ``release`` and check its health; None on success."""
    if running(args)[0] != release:
        subprocess.run(["systemctl", "reload-or-restart", args.service], check=True)
    return wait_for_generation(args, release) or health(args, lambda: through_nginx(args))


def prune(root: Path, keep: int, live: str) -> None:
    """Keep the ``keep`` most recently healthy releases (and the live one), and the venvs they
    use; remove the rest."""
    kept = {live}
    for name in reversed(history(root)):
        if len(kept) >= keep:
            break
        kept.add(str(root / "releases" / name))
    for release in (root / "releases").iterdir():
        if str(release) not in kept and release.is_dir():
            shutil.rmtree(release)
    used = {os.path.realpath(Path(r) / "venv") for r in kept}
    for venv in (root / "venvs").iterdir():
        if venv.is_dir() and str(venv) not in used:
            shutil.rmtree(venv)
            venv.with_name(venv.name + ".requirements.txt").unlink(missing_ok=True)


def gate(args) -> int:
    root = Path(args.root)
    current = root / "current"
    release = os.path.realpath(current)
    problem = serve(args, release)
    if problem is None:
        names = history(root)
        if not names or names[-1] != Path(release).name:
            with (root / "state/releases.history").open("a") as f:
                f.write(Path(release).name + "\n")
        prune(root, args.keep, release)
        print(f"release {Path(release).name} is live and healthy")
        return 0
    previous = previous_release(history(root), Path(release).name)
    message = f"release {Path(release).name} failed its health check: {problem}"
    if previous and (root / "releases" / previous).is_dir():
        switch(current, str(root / "releases" / previous))
        again = serve(args, str(root / "releases" / previous))
        message += f"; switched back to {previous}" + (
            f" (still failing: {again})" if again else ""
        )
    print(f"{message}\n-- its log (journalctl -u {args.service}):", file=sys.stderr)
    print(unit_log(args.service), file=sys.stderr)
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
    for flag in ("--root", "--service", "--stats", "--user"):
        g.add_argument(flag, required=True)
    g.add_argument("--processes", type=int, required=True)
    g.add_argument("--keep", type=int, default=5)
    for each in (check, g):
        each.add_argument("--path", default="/")
        each.add_argument("--host-header", default="localhost")
        each.add_argument("--expect", default="")
        each.add_argument("--timeout", type=float, default=30)
        each.add_argument("--https", action="store_true")
    live = sub.add_parser("live")
    live.add_argument("--stats", required=True)
    live.add_argument("--user", required=True)
    args = parser.parse_args(argv)
    if args.subcommand == "live":
        release, workers = running(args)
        if release:
            print(release, workers)
        return 0
    if args.subcommand == "run":
        workdir = Path(args.workdir) if args.workdir else None
        status = run_command(args, f"{args.user}-command", args.shell_command, workdir)
        if status:
            print(f"the command failed (exit {status})", file=sys.stderr)
        return status
    if args.subcommand == "check":
        return check_import(args) or release_commands(args) or check_candidate(args)
    return gate(args)


if __name__ == "__main__":
    sys.exit(main())
