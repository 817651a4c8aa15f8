"""What the checks do for a run ends with that run: once it no longer holds the deploy lock
(killed, its connection lost), the transient units it started are stopped and the checks'
process group is killed, before anything more is switched, recorded or pruned."""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path


def lock_is_free(lock: str) -> bool:
    """Whether nobody holds the deploy lock ``lock`` (flock, see deploys/release/lock.py)."""
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
    owner = owner_of(lock)
    if lock_is_free(lock):
        sys.exit("release_gate: the run that started this holds no deploy lock: nothing done")
    os.setpgid(0, 0)  # this script and what it starts (systemctl, the app-user children)

    def watch():
        """Wait for the run to end, then stop its units and kill this group."""
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
