"""The app's processes besides its web server: workers (long-running, e.g. ``rq worker``) and
timers (scheduled jobs, e.g. a nightly ``flask`` command), as the settings or the app's
Procfile name them, checked before any host is touched."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

PROCFILE = "Procfile"
PROCFILE_ENTRY_RE = re.compile(r"^([A-Za-z0-9_-]+):\s*(.*)$")
NOT_WORKERS = ("web", "release")  # Procfile entries that are no worker: we serve web ourselves
PROCESS_NAME_RE = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
# what systemd's calendar syntax uses: weekdays, dates, times, ranges, lists, repetitions,
# time zones; refused before systemd sees it: quotes, $, %, \, newlines (unit-file syntax)
CALENDAR_RE = re.compile(r"^[A-Za-z0-9*:,./~ +_-]{1,200}$")


def one_line(command: str) -> str:
    """A command: one non-empty line, as a Procfile's."""
    if not command.strip() or "\n" in command or "\r" in command or "\x00" in command:
        raise ValueError(f"{command!r}: a command is one non-empty line")
    return command


def process_name(name: str) -> str:
    """A worker's or timer's name: part of its systemd units' names."""
    if not PROCESS_NAME_RE.fullmatch(name):
        raise ValueError(
            f"{name!r} is not allowed as a process name: use a lowercase letter, then up to 31"
            " of a-z 0-9 _ - (e.g. tasks, digest)"
        )
    return name


def calendar_form(expression: str) -> str:
    """An on_calendar value: only what systemd's calendar syntax uses (unit-file safe)."""
    if not CALENDAR_RE.fullmatch(expression):
        raise ValueError(
            f"{expression!r} is not a calendar expression: use systemd's calendar syntax, e.g."
            " daily, hourly, 'Mon *-*-* 09:00' (letters, digits, space and *:,./~+-_ only)"
        )
    return expression


Command = Annotated[str, AfterValidator(one_line)]
Calendar = Annotated[str, AfterValidator(calendar_form)]
ProcessName = Annotated[str, AfterValidator(process_name)]


class Worker(BaseModel):
    """A long-running process: ``instances`` copies, each stopped with SIGTERM and given
    ``stop_timeout`` seconds to finish the job in hand."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    command: Command
    instances: int = Field(1, ge=1, le=32)
    stop_timeout: int = Field(30, ge=1, le=3600)
    # taken from the app's Procfile: each start reads it from its release's Procfile, so a
    # release switched back to, or rolled back to, runs its own command
    procfile: bool = False


class Timer(BaseModel):
    """A scheduled job: ``command`` at each ``on_calendar`` (systemd's calendar syntax),
    stopped and counted as failed past ``timeout`` seconds."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    command: Command
    on_calendar: Calendar
    timeout: int = Field(3600, ge=1, le=7 * 86400)


def as_table(value):
    """A worker given as its command alone, as the table it stands for."""
    if isinstance(value, dict) and "procfile" in value:
        raise ValueError("procfile is not a setting: write workers = 'Procfile' instead")
    return {"command": value} if isinstance(value, str) else value


def procfile_workers(app: Path) -> dict[str, Worker]:
    """The workers of the app's Procfile: each entry but ``web`` and ``release``.
    ValueError names the line to fix."""
    path = app / PROCFILE
    if not path.is_file():
        raise ValueError(
            f"workers = 'Procfile' but {path} is missing: add it (e.g. a line"
            " 'worker: rq worker tasks') or list the workers in the settings"
        )
    workers = {}
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        entry = PROCFILE_ENTRY_RE.match(line.strip())
        if not entry:
            raise ValueError(f"{path}, line {number}: not of the form 'name: command'")
        name, command = entry.groups()
        if name in NOT_WORKERS:
            continue
        if name in workers:
            raise ValueError(f"{path}, line {number}: a second '{name}:' entry: keep one")
        try:
            worker = {"command": one_line(command), "procfile": True}
            workers[process_name(name)] = Worker.model_validate(worker)
        except ValueError as err:
            raise ValueError(f"{path}, line {number}: {err}") from None
    if not workers:
        raise ValueError(
            f"workers = 'Procfile' but {path} has no entry besides web and release: add one"
            " (e.g. 'worker: rq worker tasks'), or leave workers unset"
        )
    return workers


LEADING_ASSIGNMENTS = re.compile(r"""^\s*(?:[A-Za-z_][A-Za-z0-9_]*=(?:"[^"]*"|'[^']*'|\S*)\s+)+""")


def expanded_env(command: str, env_names) -> list[str]:
    """The names of ``env_names`` that ``command`` expands (``$NAME``, ``${NAME}``): their
    values end up on the process's command line, which every local user can read. The
    command's leading assignments (``RQ_REDIS_URL="$REDIS_URL" rq worker``) put them in its
    environment instead, and do not count."""
    words = LEADING_ASSIGNMENTS.sub("", command)
    return sorted(set(re.findall(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)", words)) & set(env_names))


def calendar_problem(expression: str) -> str | None:
    """systemd's own reason why ``expression`` is no calendar expression, asked of this
    machine's systemd-analyze; None when it is one, or when this machine has no systemd
    (the host checks it then, see deploys/stack/workers.py)."""
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        return None
    proc = subprocess.run(
        [analyze, "calendar", "--", expression], capture_output=True, text=True, timeout=30
    )
    return None if proc.returncode == 0 else calendar_error(proc.stdout + proc.stderr)


def calendar_error(output: str) -> str:
    """The reason in systemd-analyze calendar's output, on one line."""
    return " ".join(output.split()) or "systemd-analyze refused it"
