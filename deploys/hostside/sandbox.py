"""The app's code run outside uWSGI, as it runs under it: as the app user, with its
environment, in the service's sandbox (a transient unit taking every setting of the
service's sandbox drop-in), the release's venv first on PATH: the import check, the release
commands, and ``run``'s one-off commands."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from .rules import transient_unit
from .units import discard, escaped

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


# what a failed load says -> what to do about it
LOAD_HINTS = {
    "No module named 'psycopg2'": (
        "hint: SQLAlchemy reads a postgresql:// URL (DATABASE_URL) with psycopg2; with psycopg"
        " 3 make it postgresql+psycopg:// in your app's code (docs/databases.md), or install"
        " psycopg2-binary"
    ),
}


@dataclass(frozen=True)
class AppRun:
    """How to run the app's code of one release: as ``user``, in the sandbox of the drop-in
    ``sandbox``, importing ``module`` from the release's ``source_root``."""

    release: Path
    module: str
    user: str
    sandbox: str
    source_root: str = ""


def sandbox_properties(drop_in: str) -> list[str]:
    """``--property=`` arguments for systemd-run from the service's sandbox drop-in (every
    ``Key=Value`` line of its [Service] section)."""
    lines = Path(drop_in).read_text().splitlines()
    return [
        f"--property={line.strip()}"
        for line in lines
        if "=" in line and not line.lstrip().startswith(("#", ";", "["))
    ]


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
    by a check that timed out) is stopped and cleared. systemd would expand ``${NAME}`` in
    the command (an env value shown on the process list, a script's own ``${...}`` gone):
    each ``$`` goes as ``$$``, which systemd turns back into ``$`` for the shell or script."""
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
        *(arg.replace("$", "$$") for arg in command),  # systemd's own ${NAME} left alone
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
            + escaped(proc.stderr.strip())
            + "".join(f"\n{hint}" for said, hint in LOAD_HINTS.items() if said in proc.stderr),
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
