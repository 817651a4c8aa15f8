"""Workers moving to the release ``current`` names: each restarted (a stop sends SIGTERM and
waits for the job in hand, within the unit's TimeoutStopSec), then required to stay up for
a few seconds, the same run of it all along (systemd restarting a crashed worker gives it a
new invocation id)."""

from __future__ import annotations

import subprocess
import time

from .units import running_invocation, unit_log


def restart_workers(units: list[str], steady: float, deadline: float) -> str | None:
    """Restart ``units`` at once and require each to stay up ``steady`` seconds; None, or
    the problem with the failing unit's log. ``deadline``: seconds the restart may take
    (the longest graceful stop and some margin); past it every process of the units is
    killed."""
    if not units:
        return None
    subprocess.run(["systemctl", "reset-failed", *units], capture_output=True, timeout=30)
    try:
        proc = subprocess.run(
            ["systemctl", "restart", *units], capture_output=True, text=True, timeout=deadline
        )
    except subprocess.TimeoutExpired:
        subprocess.run(
            ["systemctl", "kill", "--signal=SIGKILL", *units], capture_output=True, timeout=30
        )
        return f"the workers did not restart within {deadline:.0f} s: every process was killed"
    if proc.returncode != 0:
        failed = next((u for u in units if not running_invocation(u)), units[0])
        return f"worker {failed} did not start: {proc.stderr.strip()}\n{unit_log(failed, 20)}"
    runs = {unit: running_invocation(unit) for unit in units}
    end = time.monotonic() + steady
    while True:
        for unit, run in runs.items():
            if not run or running_invocation(unit) != run:
                return (
                    f"worker {unit} did not stay up for {steady:g} s after its start"
                    f" (journalctl -u {unit}):\n{unit_log(unit, 20)}"
                )
        if time.monotonic() >= end:
            return None
        time.sleep(min(0.5, max(end - time.monotonic(), 0)))
