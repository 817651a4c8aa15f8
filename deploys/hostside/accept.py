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
import time
from dataclasses import dataclass
from pathlib import Path

NAME_RE = re.compile(r"\d{8}T\d{6}Z")  # a backup's name (backup.STAMP), whole
PART_RE = re.compile(r"[a-z][a-z0-9_.-]{0,63}")  # a part's file name, whole
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
    quarantine: Path  # root only: what was pushed and could not be removed, moved aside


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
    except (ValueError, RecursionError):
        raise Refused("its manifest is not JSON") from None
    if not isinstance(manifest, dict):
        raise Refused("its manifest is not a JSON object")
    parts = manifest.get("parts")
    if manifest.get("backup") != name or not isinstance(parts, list) or not parts:
        raise Refused("its manifest names another backup or no parts")
    for part in parts:
        if not (isinstance(part, dict) and PART_RE.fullmatch(str(part.get("name", "")))):
            raise Refused(f"its manifest names a part that cannot be one: {part!r:.80}")
        if part["name"] == "manifest.json" or not isinstance(part.get("size"), int):
            raise Refused(f"its manifest's part {part['name']!r} cannot be one")
    return manifest


def copy_part(source: int, part: dict, target: int) -> None:
    """Copy the part from the folder ``source`` into ``target`` (root's), checking the
    size and sha256 the manifest gives on the bytes copied."""
    fd = os.open(part["name"], FILE, dir_fd=source)
    try:
        found = os.fstat(fd)
        if not stat.S_ISREG(found.st_mode):
            raise Refused(f"{part['name']} is not a regular file")
        if found.st_size != part["size"]:  # before a byte is copied: no disk filled for it
            raise Refused(f"{part['name']} does not match its manifest (size)")
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        out = os.open(part["name"], flags, 0o600, dir_fd=target)
        sha, left = hashlib.sha256(), part["size"]
        try:
            while left and (block := os.read(fd, min(left, 1 << 20))):
                sha.update(block)
                left -= len(block)
                os.write(out, block)
            os.fsync(out)
        finally:
            os.close(out)
    finally:
        os.close(fd)
    if left or sha.hexdigest() != part.get("sha256"):
        raise Refused(f"{part['name']} does not match its manifest (size or sha256)")


def remove_pushed(folder: int, name: str, quarantine: int) -> None:
    """Take a pushed backup out of its incoming folder, by name: its manifest, its parts
    and their folder removed; what cannot be (a folder in a file's place, folders in the
    parts' folder) moved aside into root's ``quarantine``, so no run meets it again."""
    for entry in (f"{name}.json", name):
        try:
            remove_folder(folder, entry)
        except OSError:
            aside = f"{entry}.{os.getpid()}.{time.time_ns()}"
            os.rename(entry, aside, src_dir_fd=folder, dst_dir_fd=quarantine)


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
    return f"{len(manifest['parts'])} parts, {size} bytes, release {manifest.get('release')!r:.40}"


def accept_app(receiver: Receiver, server: str, app: str) -> int:
    """Take in every complete backup an app server pushed of one app; 1 if one was
    refused (it is taken away all the same, and the journal says why)."""
    kept_path = receiver.store / server / app
    kept_path.mkdir(mode=0o700, parents=True, exist_ok=True)
    receiver.quarantine.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        pushed = incoming_folder(receiver.incoming, server, app)
    except OSError as err:
        print(f"{server}/{app}: its incoming folder cannot be read safely: {err}", file=sys.stderr)
        return 1
    kept, aside = os.open(kept_path, DIRECTORY), os.open(receiver.quarantine, DIRECTORY)
    failed = 0
    try:
        for entry in sorted(os.listdir(pushed)):
            if not entry.endswith(".json"):
                continue
            name, where = entry.removesuffix(".json"), f"{server}/{app}/{entry!r}"
            try:
                if not NAME_RE.fullmatch(name):
                    raise Refused("not a backup's name")
                print(f"backup {where} taken in: {take_in(pushed, kept, name)}")
            except Exception as err:  # whatever the push, the next one runs
                failed = 1
                print(f"backup {where} refused: {err!r:.300}", file=sys.stderr)
            try:
                remove_pushed(pushed, name, aside)
            except OSError as err:
                failed = 1
                print(f"backup {where}: what was pushed stays: {err!r:.300}", file=sys.stderr)
    finally:
        for fd in (kept, aside, pushed):
            os.close(fd)
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
    """Take in the backups pushed for each (app server, app) pair, each pair whatever
    happened to the others; 1 if any was refused."""
    failed = 0
    for server, app in pairs:
        try:
            failed |= accept_app(receiver, server, app)
        except Exception as err:  # one pair's trouble stops no other's
            print(f"{server}/{app}: {err!r:.300}", file=sys.stderr)
            failed = 1
    return failed
