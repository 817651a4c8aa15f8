"""Small operations on files that pyinfra lacks: uploads through the private folder, secret
files without diffs, atomic symlink switches, a socket's mode and owner, private logs."""

from __future__ import annotations

import hashlib
import shlex
from datetime import UTC
from io import BytesIO

from pyinfra import host
from pyinfra.api import FileUploadCommand, operation
from pyinfra.facts.files import File, Link, Sha256File, Socket

from deploys.ops.typed import op_arguments


def upload_command(data: bytes, path: str) -> FileUploadCommand:
    """Upload ``data`` to ``path`` through the private upload folder (deploys/ops/context.py)."""
    temp_dir = op_arguments().get("_temp_dir")
    return FileUploadCommand(
        BytesIO(data),
        path,
        remote_temp_filename=host.get_temp_filename(path, temp_directory=temp_dir),
    )


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


def link_target(path: str) -> str | None:
    """Where the symlink ``path`` on the host points; None when there is no link."""
    link = host.get_fact(Link, path=path)
    return link.get("link_target") if link else None


def switched_at(path: str) -> int:
    """When the symlink ``path`` was last switched (unix seconds): its own mtime, made anew
    by each switch (link_switched, the health gate's switch-back); 0 when it is missing."""
    link = host.get_fact(Link, path=path)
    mtime = link.get("mtime") if link else None
    return int(mtime.replace(tzinfo=UTC).timestamp()) if mtime else 0


@operation()
def link_switched(path: str, target: str):
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


@operation()
def private_log(path: str, group: str = "adm"):
    """
    A log file that exists before its writer opens it (nginx would make it readable by
    everyone), readable by root and ``group`` only. Once it exists its owner and group are
    left as they are (logrotate makes each new one www-data:adm 0640): only the bits of
    other users are taken away, from it and from its rotated copies.

    + path: the log file, in a folder only root may write
    + group: the group that reads logs
    """
    log = host.get_fact(File, path=path)
    if log and not log["mode"] % 10:
        host.noop(f"{path} is private")
        return
    quoted = shlex.quote(path)
    if log is None:
        yield f"install -m 640 -o root -g {shlex.quote(group)} /dev/null {quoted}"
    else:
        folder, name = path.rsplit("/", 1)
        yield (
            f"find {shlex.quote(folder)} -maxdepth 1 -name {shlex.quote(name + '*')}"
            " -exec chmod o-rwx {} +"
        )
