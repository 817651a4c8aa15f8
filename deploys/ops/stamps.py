"""Restarts and reloads decided by state, so that interrupted runs heal.

Why stamps: ``_if=op.did_change`` restarts a service only in the run that changed its config;
a run killed between the change and the restart leaves the old config live forever. Instead,
each service's applied configuration is fingerprinted into a stamp file on the host *after*
its restart/reload succeeded, with the hash of each config file as applied (what the
verifier compares with the disk). Any run that finds the stamp differing from the
configuration it deploys runs the restart/reload, whatever happened before.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import NamedTuple

from pyinfra import host
from pyinfra.api import operation
from pyinfra.api.operation import OperationMeta
from pyinfra.facts.files import FileContents

from deploys.ops.fileops import upload_command


def recorded_stamp(path: str) -> dict:
    """The JSON object recorded in a stamp file, or ``{}`` when it is absent or unreadable."""
    try:
        value = json.loads("\n".join(host.get_fact(FileContents, path=path) or []) or "{}")
    except json.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


class Level(NamedTuple):
    """One way of applying configuration: a restart covers what a reload does."""

    name: str
    fingerprint: str
    commands: list[str]
    triggers: tuple[OperationMeta, ...] = ()
    # whether the live service disagrees with its config (apply it again), asked when the
    # operation runs and only when nothing else makes the level pending
    drifted: Callable[[], bool] = lambda: False
    files: tuple[str, ...] = ()  # the config files it applies (for a stamp that lacks it)


def _changed(op: OperationMeta) -> bool:
    """Whether an operation changed the host (or, before it ran, would)."""
    return op.did_change() if op.is_complete() else op.will_change


def file_hashes(files: dict[str, str]) -> dict[str, str]:
    """path -> sha256 of the text deployed there (what the stamp records, verify compares)."""
    return {path: hashlib.sha256(text.encode()).hexdigest() for path, text in files.items()}


def _pending(level: Level, recorded: dict, hashes: dict[str, str]) -> bool:
    """Whether ``level`` must run: its fingerprint differs from the recorded one, its service
    drifted or a trigger changed the host. A level that a stamp of an earlier version of the
    deploy does not know is judged by its files instead (their ``hashes`` against those the
    stamp recorded as applied): it must not restart what runs fine, nor miss a change an
    interrupted run wrote (on a host's first run the stamp is empty: every level runs)."""
    if recorded and level.name not in recorded:
        applied = recorded.get("files", {})
        changed = any(applied.get(path) != hashes.get(path) for path in level.files)
    else:
        changed = recorded.get(level.name) != level.fingerprint
    return changed or level.drifted() or any(map(_changed, level.triggers))


@operation()
def changes_applied(stamp: str, levels: list[Level], files: dict[str, str]):
    """
    Run the commands of the strongest level that is pending, then record all fingerprints
    and the hash of each config file as applied (``files``: path -> deployed text), which
    the verifier compares with what is on disk.
    A level is pending when its fingerprint differs from the stamp's (a change not yet
    applied, even by an interrupted run), one of its trigger operations changed the host
    (a file put back after a hand edit) or the live service drifted from its config (e.g.
    a master started by hand with other options). Nothing runs otherwise.

    + stamp: path of the stamp file on the host
    + levels: strongest first, e.g. restart then reload
    + files: the config files the levels apply, path -> text
    """
    recorded = recorded_stamp(stamp)
    hashes = file_hashes(files)
    pending = [level for level in levels if _pending(level, recorded, hashes)]
    wanted: dict[str, object] = {level.name: level.fingerprint for level in levels}
    wanted["files"] = hashes
    if not pending and recorded == wanted:
        host.noop(f"{stamp} is up to date")
        return
    if pending:
        yield from pending[0].commands
    # uploaded, never echoed: fingerprints may cover secrets, and command lines are public
    yield upload_command(json.dumps(wanted, sort_keys=True).encode(), stamp)
