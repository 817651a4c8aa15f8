"""One backup of an app, taken on the host (``release_gate.py backup``, run by the app's
backup unit as root): a folder of the backups' root-only place with its parts and a
manifest; older backups beyond ``keep`` removed once it succeeded.

Root never touches the app's files: the data directory (SQLite databases copied through
SQLite's backup API, so consistently while the app writes, each checked with ``PRAGMA
integrity_check``; other files as they are, links as links) and the Redis snapshot (after a
BGSAVE) are read by a transient unit of the app's user in the app's sandbox, which streams
them as a tar archive to root, who writes it into the backup. The PostgreSQL database is
dumped by its superuser (``pg_dump -Fc``).

On a fleet's database server the app has no files: its backup there is its database's dump
and its Redis' snapshot (a BGSAVE asked as the app's Redis user, then the snapshot read by
root through no link: the folder is Redis', and Redis serves the app)."""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import shutil
import socket
import stat
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from .accept import DIRECTORY, FILE
from .rules import transient_unit
from .sandbox import sandboxed
from .units import escaped

STAMP = "%Y%m%dT%H%M%SZ"  # a backup's name: when it was taken, UTC
PARTIAL = ".partial"  # a backup being taken (or left by one that failed)
REPORT = "backup-report "  # the app side's last line on stderr


def resp(sock, *words: str) -> str:
    """One Redis command on the connected ``sock``: the first line of its reply."""
    request = f"*{len(words)}\r\n" + "".join(f"${len(w)}\r\n{w}\r\n" for w in words)
    sock.sendall(request.encode())
    return sock.recv(4096).decode().strip()


def snapshot(sock) -> str:
    """Have Redis (connected on ``sock``) save its snapshot now (BGSAVE) and wait until it
    did: "saved", or why not."""
    before = resp(sock, "LASTSAVE")
    resp(sock, "BGSAVE")  # "already in progress" is as good: LASTSAVE moves when it ends
    deadline = time.monotonic() + 600
    while resp(sock, "LASTSAVE") == before and time.monotonic() < deadline:
        time.sleep(0.2)
    return "saved" if resp(sock, "LASTSAVE") != before else "not saved in 600 s"


# Run as the app, in its sandbox: the data directory and the Redis snapshot as a tar stream
# on stdout (members data/... and redis/dump.rdb), what it found as its last stderr line.
APP_SIDE = r"""
import json, os, socket, sqlite3, stat, sys, tarfile, tempfile, time
data, redis_socket, redis_dir = sys.argv[1:4]
SIDE_FILES = ("-wal", "-shm", "-journal")
report = {"sqlite": {}, "files": 0, "links": 0, "redis": None}

def sqlite_file(path):
    with open(path, "rb") as f:
        return f.read(16) == b"SQLite format 3\x00"

with tarfile.open(fileobj=sys.stdout.buffer, mode="w|") as tar:
    for root, dirs, files in os.walk(data):
        for name in sorted(dirs + files):
            path = os.path.join(root, name)
            arcname = "data/" + os.path.relpath(path, data)
            mode = os.lstat(path).st_mode
            if stat.S_ISLNK(mode):
                tar.add(path, arcname, recursive=False)
                report["links"] += 1
            elif stat.S_ISDIR(mode):
                tar.add(path, arcname, recursive=False)
            elif not stat.S_ISREG(mode):
                continue
            elif name.endswith(SIDE_FILES) and os.path.isfile(path.rsplit("-", 1)[0]):
                continue
            elif sqlite_file(path):
                with tempfile.TemporaryDirectory() as tmp:
                    copy = os.path.join(tmp, "copy")
                    source, target = sqlite3.connect(path), sqlite3.connect(copy)
                    with target:
                        source.backup(target)
                    check = target.execute("PRAGMA integrity_check").fetchone()[0]
                    source.close(); target.close()
                    info = tar.gettarinfo(copy, arcname)
                    info.mode, info.mtime = stat.S_IMODE(mode), os.lstat(path).st_mtime
                    with open(copy, "rb") as f:
                        tar.addfile(info, f)
                report["sqlite"][os.path.relpath(path, data)] = check
            else:
                tar.add(path, arcname, recursive=False)
                report["files"] += 1
    if redis_socket:
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(30)
            s.connect(redis_socket)
            report["redis"] = snapshot(s)
        tar.add(os.path.join(redis_dir, "dump.rdb"), "redis/dump.rdb")
print(REPORT_PREFIX + json.dumps(report), file=sys.stderr)
""".replace("REPORT_PREFIX", repr(REPORT))
APP_SIDE = inspect.getsource(resp) + inspect.getsource(snapshot) + APP_SIDE


@dataclass(frozen=True)
class BackupJob:
    """What one app's backup covers and where it goes."""

    app: str
    user: str  # the app's user (on a database server: its Redis user's name)
    root: Path  # where its backups live (root only)
    keep: int
    sandbox: str = ""  # the app's sandbox drop-in
    data: Path | None = None  # its data directory (None: a database server's backup)
    current: Path | None = None  # the ``current`` link: the live release, recorded
    database: str = ""  # its PostgreSQL database, if any
    redis_socket: str = ""  # its Redis, if any: on the app server, its socket
    redis_data: str = ""  # the folder of its snapshot
    redis_password: str = ""  # on a database server: the file of its Redis user's password
    redis_limit: int = 0  # and the most bytes its snapshot may have
    copy_to: tuple[str, ...] = ()  # the backup servers it is pushed to (user@address)
    copy_key: str = ""  # the SSH key that may only add files there
    known_hosts: str = ""  # their host keys

    def backups(self) -> list[Path]:
        """The finished backups, oldest first."""
        found = [p for p in self.root.iterdir() if p.is_dir() and not p.name.endswith(PARTIAL)]
        return sorted(found, key=lambda p: p.name)


def digest(path: Path) -> str:
    """The sha256 of a file."""
    sha = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            sha.update(block)
    return sha.hexdigest()


def app_side(job: BackupJob, out: Path) -> dict:
    """The data directory and the Redis snapshot, read as the app in its sandbox, into the
    tar ``out``; what the app side reported. RuntimeError when it failed."""
    assert job.data, "a backup without a data directory reads nothing as the app"
    python = ["/usr/bin/python3", "-I", "-c", APP_SIDE, str(job.data)]
    python += [job.redis_socket, job.redis_data]
    unit = transient_unit(job.user, "backup-read")  # not <app>-backup: the unit running this
    cmd = sandboxed(unit, job.sandbox, job.data, [], python)
    with open(out, "wb") as target:
        proc = subprocess.run(cmd, stdout=target, stderr=subprocess.PIPE, timeout=3600)
    said = proc.stderr.decode("utf-8", "replace").strip().splitlines()
    if proc.returncode != 0 or not said or not said[-1].startswith(REPORT):
        raise RuntimeError("reading the data as the app failed:\n" + escaped("\n".join(said[-20:])))
    return json.loads(said[-1].removeprefix(REPORT))


def served_redis_snapshot(job: BackupJob, out: Path) -> str:
    """On a database server: the app's Redis asked for a snapshot as the app's Redis user,
    through its socket (in a folder of Redis' alone: no other user listens there; the
    password read from root's file, sent on the connection alone), then the snapshot
    copied into ``out``, opened through no link (the folder is Redis', and Redis serves the
    app), no larger than ``redis_limit``. What the snapshot said; RuntimeError."""
    password = Path(job.redis_password).read_text().strip()
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(30)
        sock.connect(job.redis_socket)
        said = resp(sock, "AUTH", job.user, password)
        if said != "+OK":
            raise RuntimeError(f"Redis refused {job.user}: {escaped(said[:200])}")
        saved = snapshot(sock)
    copied_without_links(Path(job.redis_data) / "dump.rdb", out, job.redis_limit)
    return saved


def copied_without_links(source: Path, out: Path, limit: int) -> None:
    """The regular file ``source`` copied into ``out``, its folder and itself opened through
    no link (a folder another user writes); OSError (ELOOP) or RuntimeError if either is
    one, it is no regular file, or it is larger than ``limit`` bytes."""
    folder = os.open(source.parent, DIRECTORY)
    try:
        fd = os.open(source.name, FILE, dir_fd=folder)
    finally:
        os.close(folder)
    with os.fdopen(fd, "rb") as original, open(out, "wb") as target:
        if not stat.S_ISREG(os.fstat(original.fileno()).st_mode):
            raise RuntimeError(f"{source} is not a regular file")
        left = limit + 1  # one byte more than allowed tells a file that grew past it
        while left and (block := original.read(min(left, 1 << 20))):
            target.write(block)
            left -= len(block)
        if not left:
            raise RuntimeError(f"{source} is larger than {limit} bytes")


def database_dump(job: BackupJob, out: Path) -> None:
    """The app's PostgreSQL database, dumped by the superuser in pg_dump's custom format."""
    with open(out, "wb") as target:
        proc = subprocess.run(
            ["runuser", "-u", "postgres", "--", "pg_dump", "-Fc", "-d", job.database],
            stdout=target,
            stderr=subprocess.PIPE,
            timeout=3600,
        )
    if proc.returncode != 0:
        raise RuntimeError("pg_dump failed: " + escaped(proc.stderr.decode("utf-8", "replace")))


COPIED = ".copied-"  # + user@address: a backup's mark that this backup server took it


def ssh_command(key: str, known_hosts: str) -> str:
    """rsync's ``-e`` to reach a backup server: ``key`` alone, no configuration read, no
    prompt, its host key trusted only if ``known_hosts`` holds it."""
    return (
        f"ssh -F /dev/null -i {key} -o IdentitiesOnly=yes -o BatchMode=yes"
        f" -o StrictHostKeyChecking=yes -o UserKnownHostsFile={known_hosts}"
    )


def pushed(job: BackupJob, newest: Path) -> None:
    """Push the new backup to each backup server (rsync over SSH; rrsync there takes writes
    alone), and before it those whose push failed since the last that worked (each pushed
    one is marked): its parts into ``<app>/<name>/``, then its manifest as
    ``<app>/<name>.json``, so the server takes in only backups whose every part arrived.
    RuntimeError when one fails."""
    ssh = ssh_command(job.copy_key, job.known_hosts)
    ssh += " -o ConnectTimeout=30 -o ServerAliveInterval=15"
    rsync = ["rsync", "--recursive", "--times", "--timeout=300", "-e", ssh]
    for server in job.copy_to:
        mark = COPIED + server
        kept = job.backups()
        marked = [b for b in kept if (b / mark).exists()]
        pending = [b for b in kept if marked and b.name > marked[-1].name] or [newest]
        for folder in pending:
            target = f"{server}:{job.app}/{folder.name}"
            steps = (
                [
                    *rsync,
                    "--exclude=manifest.json",
                    f"--exclude={COPIED}*",
                    f"{folder}/",
                    f"{target}/",
                ],
                [*rsync, f"{folder}/manifest.json", f"{target}.json"],
            )
            for step in steps:
                proc = subprocess.run(step, capture_output=True, text=True, timeout=3600)
                if proc.returncode != 0:
                    said = escaped((proc.stderr or proc.stdout).strip()[-2000:])
                    raise RuntimeError(f"its copy to {server} failed: {said}")
            (folder / mark).touch()
            print(f"backup {folder.name} of {job.app} copied to {server}")


def take_backup(job: BackupJob) -> int:
    """One backup: its parts into a partial folder, the manifest, then the folder's final
    name; then backups beyond ``keep`` removed. 1, and nothing kept, on a failure."""
    taken = time.gmtime()
    name = time.strftime(STAMP, taken)
    folder = job.root / name
    partial = job.root / (name + PARTIAL)
    for stale in job.root.glob(f"*{PARTIAL}"):  # a failed one's leftovers
        shutil.rmtree(stale)
    partial.mkdir(mode=0o700)
    try:
        report = app_side(job, partial / "data.tar") if job.data else {"sqlite": {}}
        if job.redis_password:
            report["redis"] = served_redis_snapshot(job, partial / "redis.rdb")
        if job.database:
            database_dump(job, partial / "postgresql.dump")
        bad = {db: said for db, said in report["sqlite"].items() if said != "ok"}
        if bad:
            raise RuntimeError(f"integrity_check of the copies failed: {bad}")
        if report.get("redis") not in (None, "saved"):
            raise RuntimeError(f"Redis' snapshot: {report['redis']}")
    except (RuntimeError, subprocess.TimeoutExpired, OSError) as err:
        shutil.rmtree(partial)
        print(f"backup of {job.app} failed: {err}", file=sys.stderr)
        return 1
    parts: list[dict] = [
        {"name": part.name, "size": part.stat().st_size, "sha256": digest(part)}
        for part in sorted(partial.iterdir())
    ]
    manifest = {
        "app": job.app,
        "backup": name,
        "taken_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", taken),
        "release": os.path.basename(os.path.realpath(job.current)) if job.current else "",
        "parts": parts,
        "found": report,
    }
    (partial / "manifest.json").write_text(json.dumps(manifest, sort_keys=True) + "\n")
    partial.rename(folder)
    for old in job.backups()[: -job.keep]:
        shutil.rmtree(old)
    size = sum(int(p["size"]) for p in parts)
    release = f", release {manifest['release']}" if job.current else ""
    print(f"backup {name} of {job.app}: {len(parts)} parts, {size} bytes{release}")
    try:
        pushed(job, folder)
    except (RuntimeError, subprocess.TimeoutExpired, OSError) as err:
        print(f"backup {name} of {job.app} is kept here, but {err}", file=sys.stderr)
        return 1
    return 0
