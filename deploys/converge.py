"""State-based restarts and reloads that heal interrupted runs, plus small file operations
pyinfra lacks (secret files without diffs, atomic symlink switches).

Why stamps: ``_if=op.did_change`` restarts a service only in the run that changed its config;
a run killed between the change and the restart leaves the old config live forever. Instead,
each service's applied configuration is fingerprinted into a stamp file on the host *after*
its restart/reload succeeded. Any run that finds the stamp differing from the configuration
it deploys runs the restart/reload, whatever happened before.
"""

from __future__ import annotations

import hashlib
import json
import shlex
from io import BytesIO
from typing import NamedTuple

from pyinfra import host
from pyinfra.api import FactBase, FileUploadCommand, operation
from pyinfra.api.operation import OperationMeta
from pyinfra.facts.files import Link, Sha256File, Socket

from deploys.facts import UnitStatus


class StampFile(FactBase):
    """The JSON object recorded in a stamp file, or ``{}`` when the file is absent/unreadable."""

    def command(self, path: str) -> str:
        return f"cat {shlex.quote(path)} 2>/dev/null || true"

    @staticmethod
    def default():
        return {}

    def process(self, output):
        try:
            value = json.loads("\n".join(output) or "{}")
        except json.JSONDecodeError:
            return {}
        return value if isinstance(value, dict) else {}


class Level(NamedTuple):
    """One way of applying configuration: a restart covers what a reload does."""

    name: str
    fingerprint: str
    commands: list[str]
    triggers: tuple[OperationMeta, ...] = ()
    drifted: bool = False  # the live service disagrees with its config: apply it again


def _changed(op: OperationMeta) -> bool:
    """Whether an operation changed the host (or, before it ran, would)."""
    return op.did_change() if op.is_complete() else op.will_change


def file_hashes(files: dict[str, str]) -> dict[str, str]:
    """path -> sha256 of the text deployed there (what the stamp records, verify compares)."""
    return {path: hashlib.sha256(text.encode()).hexdigest() for path, text in files.items()}


@operation()
def apply_pending(stamp: str, levels: list[Level], files: dict[str, str]):
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
    recorded = host.get_fact(StampFile, path=stamp)
    pending = [
        level
        for level in levels
        if recorded.get(level.name) != level.fingerprint
        or level.drifted
        or any(map(_changed, level.triggers))
    ]
    wanted = {level.name: level.fingerprint for level in levels}
    wanted["files"] = file_hashes(files)
    if not pending and recorded == wanted:
        host.noop(f"{stamp} is up to date")
        return
    if pending:
        yield from pending[0].commands
    # uploaded, never echoed: fingerprints may cover secrets, and command lines are public
    yield upload_command(json.dumps(wanted, sort_keys=True).encode(), stamp)


def upload_command(data: bytes, path: str) -> FileUploadCommand:
    """Upload ``data`` to ``path`` through the private upload folder (deploys/context.py)."""
    temp_dir = host.current_op_global_arguments.get("_temp_dir")
    return FileUploadCommand(
        BytesIO(data),
        path,
        remote_temp_filename=host.get_temp_filename(path, temp_directory=temp_dir),
    )


@operation()
def daemon_reload_if_needed(unit: str, drop_ins: tuple[str, ...] = ()):
    """
    Run ``systemctl daemon-reload`` when systemd's copy of ``unit`` is stale, missing, or in
    error (a unit file deleted and put back while the service kept running), or lacks one
    of ``drop_ins`` (systemd does not count a new drop-in as a stale unit).

    + unit: the unit name, e.g. ``myproject.service``
    + drop_ins: drop-in files the unit must have loaded
    """
    status = host.get_fact(UnitStatus, unit=unit)
    unloaded = set(drop_ins) - set(status.get("DropInPaths", []))
    stale = status.get("NeedDaemonReload") or status.get("LoadState") in ("not-found", "error")
    if stale or unloaded:
        yield "systemctl daemon-reload"
    else:
        host.noop(f"systemd's copy of {unit} is current")


@operation()
def secret_file(path: str, content: str, user: str, group: str, mode: str = "640"):
    """
    Upload a file whose contents must stay out of logs and ``--diff`` output.

    + path: remote path
    + content: the file's text
    + user, group, mode: ownership and mode, applied before the contents are written
    """
    data = content.encode()
    if host.get_fact(Sha256File, path=path) == hashlib.sha256(data).hexdigest():
        host.noop(f"{path} is up to date (contents hidden)")
        return
    host.log(f"Will write {path} (contents hidden)")
    quoted = shlex.quote(path)
    yield f"touch {quoted} && chown {user}:{group} {quoted} && chmod {mode} {quoted}"
    yield upload_command(data, path)
    yield f"chown {user}:{group} {quoted} && chmod {mode} {quoted}"


@operation()
def switch_link(path: str, target: str):
    """
    Point the symlink ``path`` at ``target`` atomically (a new link renamed over the old one),
    so no request ever sees it missing.

    + path: the symlink
    + target: what it should point to
    """
    link = host.get_fact(Link, path=path)
    if link and link.get("link_target") == target:
        host.noop(f"{path} -> {target}")
        return
    tmp = shlex.quote(f"{path}.new")
    yield f"ln -sfn {shlex.quote(target)} {tmp} && mv -Tf {tmp} {shlex.quote(path)}"


@operation()
def socket_permissions(path: str, mode: str, user: str, group: str):
    """
    Put a live socket's mode and owner back to what systemd made it with, if someone changed
    them (restarting the socket unit would also do it, but would cut the service off it).
    Only for sockets in root-only folders: these commands follow the path as root.

    + path: the socket; nothing happens while it does not exist
    + mode: e.g. ``660``
    + user, group: e.g. ``root`` and ``www-data``
    """
    sock = host.get_fact(Socket, path=path)
    if not sock:
        host.noop(f"no socket at {path}")
        return
    quoted = shlex.quote(path)
    if f"{sock['mode']:03d}" != mode:
        yield f"chmod {mode} {quoted}"
    if (sock["user"], sock["group"]) != (user, group):
        yield f"chown {shlex.quote(user)}:{shlex.quote(group)} {quoted}"
