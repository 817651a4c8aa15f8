"""A backup server taking in the backups the app servers pushed (``release_gate.py accept``,
run by root's ``flask-backups-accept.service``). Each app server writes, through rrsync
(write-only, no deletion), into its own incoming folder: ``INCOMING/<server>/<app>/<name>/``
with a backup's parts, then ``<name>.json``, its manifest, last. Root copies each part
named by a manifest into ``STORE/<server>/<app>/<name>/`` (root only), checking its size
and sha256 on the bytes it copied, and never replaces a backup it holds: once taken in, a
backup can be neither changed nor removed by the app server that sent it.

The incoming folders belong to the pushing user: root opens everything there relative to
folders it opened without following links (``O_NOFOLLOW``), reads regular files only, and
removes what it took in (or refused) by name in those folders."""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
import sys
from dataclasses import dataclass
from pathlib import Path

NAME_RE = re.compile(r"^\d{8}T\d{6}Z$")  # a backup's name (backup.STAMP)
PART_RE = re.compile(r"^[a-z][a-z0-9_.-]{0,63}$")  # a part's file name
MANIFEST_LIMIT = 1 << 20  # bytes: a manifest is small
DIRECTORY = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
FILE = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC  # no FIFO blocks root


class Refused(Exception):
    """A pushed backup that is not taken in: why."""


@dataclass(frozen=True)
class Receiver:
    """Where pushed backups arrive and where root keeps them."""

    incoming: Path  # INCOMING/<server>/<app>/: the pushing users' folders
    store: Path  # STORE/<server>/<app>/<name>/: root's


def open_folder(name: str, parent: int) -> int:
    """A folder inside ``parent`` opened without following a link (OSError otherwise)."""
    return os.open(name, DIRECTORY, dir_fd=parent)


def read_manifest(folder: int, name: str) -> dict:
    """The manifest ``<name>.json`` in ``folder``: a regular file, small, the app's parts."""
    fd = os.open(f"{name}.json", FILE, dir_fd=folder)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise Refused("its manifest is not a regular file")
        text = os.read(fd, MANIFEST_LIMIT + 1)
    finally:
        os.close(fd)
    if len(text) > MANIFEST_LIMIT:
        raise Refused("its manifest is too large")
    try:
        manifest = json.loads(text)
    except ValueError:
        raise Refused("its manifest is not JSON") from None
    parts = manifest.get("parts") if isinstance(manifest, dict) else None
    if manifest.get("backup") != name or not isinstance(parts, list) or not parts:
        raise Refused("its manifest names another backup or no parts")
    for part in parts:
        if not (isinstance(part, dict) and PART_RE.match(str(part.get("name", "")))):
            raise Refused(f"its manifest names a part that cannot be one: {part!r:.80}")
        if part["name"] == "manifest.json":
            raise Refused("its manifest names itself as a part")
    return manifest


def copy_part(source: int, part: dict, target: int) -> None:
    """Copy the part from the folder ``source`` into ``target`` (root's), checking the
    size and sha256 the manifest gives on the bytes copied."""
    fd = os.open(part["name"], FILE, dir_fd=source)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise Refused(f"{part['name']} is not a regular file")
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        out = os.open(part["name"], flags, 0o600, dir_fd=target)
        sha, size = hashlib.sha256(), 0
        try:
            while block := os.read(fd, 1 << 20):
                sha.update(block)
                size += len(block)
                os.write(out, block)
            os.fsync(out)
        finally:
            os.close(out)
    finally:
        os.close(fd)
    if size != part.get("size") or sha.hexdigest() != part.get("sha256"):
        raise Refused(f"{part['name']} does not match its manifest (size or sha256)")


def remove_pushed(folder: int, name: str) -> None:
    """Remove a pushed backup from its incoming folder, by name: its manifest, its parts
    and their folder. OSError when something cannot be removed."""
    try:
        os.unlink(f"{name}.json", dir_fd=folder)
    except FileNotFoundError:
        pass
    remove_folder(folder, name)


def remove_folder(parent: int, name: str) -> None:
    """Remove the folder ``name`` of ``parent`` and the files in it, by name (a link or a
    file in the folder's place is removed, never followed). OSError when one of its
    entries is a folder."""
    try:
        folder = open_folder(name, parent)
    except FileNotFoundError:
        return
    except OSError:  # not a folder
        os.unlink(name, dir_fd=parent)
        return
    try:
        for entry in os.listdir(folder):
            os.unlink(entry, dir_fd=folder)
    finally:
        os.close(folder)
    os.rmdir(name, dir_fd=parent)


def take_in(pushed: int, kept: int, name: str) -> str:
    """Take the pushed backup ``name`` (the folder ``pushed`` is its app's incoming folder,
    ``kept`` root's folder of the app's backups): its parts copied and checked into a
    partial folder, the manifest written, the folder renamed into place."""
    manifest = read_manifest(pushed, name)
    try:
        os.stat(name, dir_fd=kept, follow_symlinks=False)
        raise Refused("a backup of that name is kept already: never replaced")
    except FileNotFoundError:
        pass
    partial = f"{name}.partial"
    remove_folder(kept, partial)
    os.mkdir(partial, 0o700, dir_fd=kept)
    target = open_folder(partial, kept)
    try:
        source = open_folder(name, pushed)
        try:
            listed = {part["name"] for part in manifest["parts"]}
            extra = set(os.listdir(source)) - listed
            if extra:
                raise Refused(f"files the manifest does not name: {sorted(extra)[:5]}")
            for part in manifest["parts"]:
                copy_part(source, part, target)
        finally:
            os.close(source)
        text = json.dumps(manifest, sort_keys=True) + "\n"
        out = os.open("manifest.json", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600, dir_fd=target)
        try:
            os.write(out, text.encode())
        finally:
            os.close(out)
    except BaseException:
        os.close(target)
        remove_folder(kept, partial)
        raise
    os.close(target)
    os.rename(partial, name, src_dir_fd=kept, dst_dir_fd=kept)
    size = sum(int(part["size"]) for part in manifest["parts"])
    return f"{len(manifest['parts'])} parts, {size} bytes, release {manifest.get('release')}"


def accept_app(receiver: Receiver, server: str, app: str) -> int:
    """Take in every complete backup an app server pushed of one app; 1 if one was
    refused (it is removed, and the journal says why)."""
    kept_path = receiver.store / server / app
    kept_path.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        pushed = incoming_folder(receiver.incoming, server, app)
    except OSError as err:
        print(f"{server}/{app}: its incoming folder cannot be read safely: {err}", file=sys.stderr)
        return 1
    kept = os.open(kept_path, DIRECTORY)
    failed = 0
    try:
        for entry in sorted(os.listdir(pushed)):
            if not entry.endswith(".json"):
                continue
            name, where = entry.removesuffix(".json"), f"{server}/{app}/{entry}"
            try:
                if not NAME_RE.match(name):
                    raise Refused("not a backup's name")
                print(f"backup {where} taken in: {take_in(pushed, kept, name)}")
            except (Refused, OSError) as err:
                failed = 1
                print(f"backup {where} refused: {err}", file=sys.stderr)
            try:
                remove_pushed(pushed, name)
            except OSError as err:
                failed = 1
                print(f"backup {where}: what was pushed stays: {err}", file=sys.stderr)
    finally:
        os.close(kept)
        os.close(pushed)
    return failed


def incoming_folder(incoming: Path, server: str, app: str) -> int:
    """INCOMING/<server>/<app> opened without following a link at any step below INCOMING."""
    top = os.open(incoming, DIRECTORY)
    try:
        mine = open_folder(server, top)
    finally:
        os.close(top)
    try:
        return open_folder(app, mine)
    finally:
        os.close(mine)


def accept(receiver: Receiver, pairs: list[tuple[str, str]]) -> int:
    """Take in the backups pushed for each (app server, app) pair; 1 if any was refused."""
    return max([accept_app(receiver, server, app) for server, app in pairs], default=0)
