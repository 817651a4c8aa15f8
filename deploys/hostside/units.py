"""systemd as the checks use it: systemctl with a deadline the app cannot stretch, a unit's
journal shown safely, the id of a unit's current run."""

from __future__ import annotations

import re
import subprocess

SYSTEMCTL_DEADLINE = 90  # seconds: a graceful stop's 70 (TimeoutStopSec) and some margin
CONTROL_RE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")  # but tab and newline


def escaped(text: str) -> str:
    """App-controlled ``text`` (its output, its journal, its answers) with control characters
    escaped as \\xNN: no escape sequence reaches the operator's terminal, nor a carriage
    return that overwrites a line."""
    return CONTROL_RE.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def unit_log(unit: str, lines: int = 60) -> str:
    """The last lines a unit logged, to show why a release failed: each behind a bar, so no
    line the app logged passes for one of this script's own."""
    proc = subprocess.run(
        ["journalctl", "--no-pager", "-o", "cat", "-n", str(lines), "-u", unit],
        capture_output=True,
    )
    text = proc.stdout.decode("utf-8", "replace").strip("\n")  # a lone \r is no line break
    return "\n".join(f"  | {escaped(line)}" for line in text.split("\n"))


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
