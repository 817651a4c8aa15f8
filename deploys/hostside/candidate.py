"""The throw-away candidate: the release served from a uWSGI of its own (one worker, its own
socket, the service's sandbox) must answer healthily before it may take real traffic."""

from __future__ import annotations

import subprocess
import sys

from .health import Health, health, unix_connection
from .live import as_user
from .rules import transient_unit
from .sandbox import AppRun, sandbox_properties
from .units import discard, escaped, systemctl, unit_log


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
