"""One backup put back (``release_gate.py restore``, run by restore.py as root): its parts
checked against its manifest, the app's units stopped (timers, workers, web, Redis), its
data directory and Redis snapshot swapped for the backup's, its database re-created from the
dump, everything started again and the site health-checked through nginx. What it replaces
is kept aside (``.replaced-<backup>`` in the data directory, ``<app>_replaced_<backup>`` in
PostgreSQL) until the restore succeeded, and put back when it fails.

As for backups, root never touches the app's files: a transient unit of the app's user in
the app's sandbox unpacks the archive (fed on its standard input) and swaps the folders.

On a fleet's database server (no data directory, no site) the database is re-created and
the Redis snapshot swapped in Redis' own folder (opened through no link, Redis stopped);
its app servers have stopped the app before and check it after (restore.py)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .accept import DIRECTORY, NAME_RE, PART_RE
from .backup import PARTIAL, digest
from .health import Health, health, through_nginx
from .rules import transient_unit
from .sandbox import sandboxed
from .units import escaped, systemctl

PG_SOCKETS = "/run/postgresql"  # PostgreSQL's socket folder: postgres' alone may create there

# Run as the app, in its sandbox, the backup's data.tar on stdin: ``unpack`` extracts it
# beside the data (data/... into DATA/.restore-NAME, redis/dump.rdb beside the snapshot);
# ``swap`` moves the data's entries aside into .replaced-NAME and the restored ones in;
# ``back`` undoes a swap; ``done`` removes what was kept aside.
APP_SIDE = r"""
import os, shutil, sys, tarfile
step, data, name, redis_data = sys.argv[1:5]
restored = os.path.join(data, ".restore-" + name)
replaced = os.path.join(data, ".replaced-" + name)
rdb = lambda suffix="": os.path.join(redis_data, "dump.rdb" + suffix)

def ours(entry):
    return entry.startswith((".restore-", ".replaced-"))

def move_all(source, target):
    for entry in os.listdir(source):
        if not ours(entry):
            os.rename(os.path.join(source, entry), os.path.join(target, entry))

def remove(path):
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    elif os.path.lexists(path):
        os.remove(path)

if step == "unpack":
    remove(restored)
    os.mkdir(restored, 0o700)
    with tarfile.open(fileobj=sys.stdin.buffer, mode="r|") as tar:
        for member in tar:
            parts = member.name.split("/")
            if parts[0] == "data" and len(parts) > 1 and ".." not in parts:
                member.name = "/".join(parts[1:])
                tar.extract(member, restored, set_attrs=not member.issym())
            elif member.name == "redis/dump.rdb" and redis_data:
                member.name = "dump.rdb.restored"
                tar.extract(member, redis_data)
elif step == "swap":
    os.mkdir(replaced, 0o700)
    move_all(data, replaced)
    move_all(restored, data)
    if redis_data and os.path.exists(rdb(".restored")):
        if os.path.exists(rdb()):
            os.rename(rdb(), rdb(".replaced"))
        os.rename(rdb(".restored"), rdb())
elif step == "back":
    for entry in os.listdir(data):
        if not ours(entry):
            remove(os.path.join(data, entry))
    if os.path.isdir(replaced):
        move_all(replaced, data)
    if redis_data and os.path.exists(rdb(".replaced")):
        os.rename(rdb(".replaced"), rdb())
if step in ("done", "back"):
    remove(restored)
    remove(replaced)
    for stale in (".replaced", ".restored") if redis_data else ():
        remove(rdb(stale))
"""


@dataclass(frozen=True)
class RestoreJob:
    """What one app's restore puts back, and which of its units it stops meanwhile."""

    app: str
    user: str  # the app's user (on a database server: its role's name)
    root: Path  # its backups
    backup: str  # a backup's name, or "latest"
    units: tuple[str, ...]  # the app's units to stop, in order (started again in reverse)
    sandbox: str = ""
    data: Path | None = None  # None: on a database server
    check: Health | None = None  # its site's health through nginx (none on a database server)
    database: str = ""
    redis_data: str = ""  # the folder of its Redis snapshot
    database_password: str = ""  # on a database server: the file of its role's password

    def folder(self) -> Path:
        """The backup's folder; ValueError when there is no such backup."""
        found = sorted(
            p.name for p in self.root.iterdir() if p.is_dir() and not p.name.endswith(PARTIAL)
        )
        name = found[-1] if self.backup == "latest" and found else self.backup
        if not NAME_RE.fullmatch(name) or name not in found:
            raise ValueError(f"no backup {self.backup!r} of {self.app} here ({len(found)} kept)")
        return self.root / name


def verified(folder: Path) -> dict:
    """The backup's manifest, each part checked against it; ValueError if one differs."""
    manifest = json.loads((folder / "manifest.json").read_text())
    for part in manifest["parts"]:
        if not PART_RE.fullmatch(str(part["name"])):  # a name only, never a path
            raise ValueError(f"{folder.name}: a part {part['name']!r:.80} cannot be one")
        if digest(folder / part["name"]) != part["sha256"]:
            raise ValueError(f"{folder.name}: {part['name']} differs from its manifest")
    return manifest


def as_app(job: RestoreJob, step: str, name: str, stdin=None) -> None:
    """One step of the app side (see APP_SIDE) as the app in its sandbox; RuntimeError."""
    assert job.data, "a restore without a data directory writes nothing as the app"
    python = ["/usr/bin/python3", "-I", "-c", APP_SIDE, step, str(job.data), name]
    python.append(job.redis_data)
    sandbox = [f"--property=ReadWritePaths={job.redis_data}"] if job.redis_data else []
    cmd = sandboxed(transient_unit(job.user, "restore"), job.sandbox, job.data, sandbox, python)
    proc = subprocess.run(cmd, stdin=stdin, capture_output=True, timeout=3600)
    if proc.returncode != 0:
        said = proc.stderr.decode("utf-8", "replace").strip()
        raise RuntimeError(f"{step} as the app failed: {escaped(said[-2000:])}")


def served_snapshot(job: RestoreJob, step: str, source: Path | None = None) -> None:
    """On a database server, its Redis stopped: the backup's snapshot ``source`` in place of
    the one in Redis' folder (``swap``, the old one kept aside), the old one back
    (``back``), or the one kept aside removed (``done``); the folder opened through no
    link, the new file Redis' own."""
    folder = os.open(job.redis_data, DIRECTORY)
    at = {"src_dir_fd": folder, "dst_dir_fd": folder}
    try:
        here = set(os.listdir(folder))
        if step == "swap" and source:
            if "dump.rdb.restored" in here:
                os.unlink("dump.rdb.restored", dir_fd=folder)
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
            fd = os.open("dump.rdb.restored", flags, 0o600, dir_fd=folder)
            with os.fdopen(fd, "wb") as target, open(source, "rb") as snapshot:
                shutil.copyfileobj(snapshot, target)
                owner = os.fstat(folder)
                os.fchown(target.fileno(), owner.st_uid, owner.st_gid)
            if "dump.rdb" in here:
                os.rename("dump.rdb", "dump.rdb.replaced", **at)
            os.rename("dump.rdb.restored", "dump.rdb", **at)
        elif step == "back" and "dump.rdb.replaced" in here:
            os.rename("dump.rdb.replaced", "dump.rdb", **at)
        elif step == "done" and "dump.rdb.replaced" in here:
            os.unlink("dump.rdb.replaced", dir_fd=folder)
    finally:
        os.close(folder)


def postgres(*sql: str) -> None:
    """SQL statements run by PostgreSQL's superuser, each on its own; RuntimeError."""
    for statement in sql:
        proc = subprocess.run(
            [
                "runuser",
                "-u",
                "postgres",
                "--",
                "psql",
                "-XAq",
                "-v",
                "ON_ERROR_STOP=1",
                "-c",
                statement,
            ],
            capture_output=True,
            text=True,
            timeout=600,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"PostgreSQL: {escaped(proc.stderr.strip())}")


def as_role(job: RestoreJob, command: list[str], passfile: Path) -> list[str]:
    """``command`` (a PostgreSQL client) connected as the app's role: as its user (peer),
    or on a database server, where it has none, through PostgreSQL's own socket folder
    (no other user can listen there) with its password, written for libpq into
    ``passfile`` (root's, 0600: never on a command line)."""
    if not job.database_password:
        return ["runuser", "-u", job.user, "--", *command]
    password = Path(job.database_password).read_text().strip()
    fd = os.open(passfile, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(f"*:*:*:{job.user}:{password}\n")
    return [*command, "-h", PG_SOCKETS, "-U", job.user]


def filled_database(job: RestoreJob, dump: Path, name: str) -> str:
    """A new database filled from the dump by the app's role (a dump can hold any SQL),
    under a name no app server is admitted to (their pg_hba rules name the app's database
    alone): no app writes into it while it fills. Its name; RuntimeError."""
    restoring = f"{job.database}_restoring_{name.lower()}"
    postgres(
        f'DROP DATABASE IF EXISTS "{restoring}"',
        f'CREATE DATABASE "{restoring}" OWNER "{job.user}" TEMPLATE template0 ENCODING \'UTF8\'',
        f'REVOKE CONNECT ON DATABASE "{restoring}" FROM PUBLIC',
    )
    restore = ["pg_restore", "--exit-on-error", "--no-owner", "--no-privileges", "-d", restoring]
    with open(dump, "rb") as source, tempfile.TemporaryDirectory() as private:
        proc = subprocess.run(
            as_role(job, restore, Path(private) / "pgpass"),
            stdin=source,
            capture_output=True,
            timeout=3600,
            env={**os.environ, "PGPASSFILE": f"{private}/pgpass"},
        )
    if proc.returncode != 0:
        postgres(f'DROP DATABASE "{restoring}"')
        raise RuntimeError("pg_restore failed: " + escaped(proc.stderr.decode("utf-8", "replace")))
    return restoring


def renamed(old: str, new: str, gone: str = "") -> None:
    """The database ``old`` closed (no new session, each one ended, waited for) and renamed
    ``new``, and in the same transaction ``gone`` (when given) renamed ``old``."""
    swap = f'ALTER DATABASE "{old}" RENAME TO "{new}";'
    if gone:
        swap += f' ALTER DATABASE "{gone}" RENAME TO "{old}";'
    postgres(
        f'ALTER DATABASE "{old}" ALLOW_CONNECTIONS false',
        f"SELECT pg_terminate_backend(pid, 10000) FROM pg_stat_activity WHERE datname = '{old}'",
        swap,
    )


def swapped_database(job: RestoreJob, restoring: str, name: str) -> str:
    """The filled database in place of the app's, which is kept aside; the aside name."""
    aside = f"{job.database}_replaced_{name.lower()}"
    renamed(job.database, aside, restoring)
    return aside


def database_back(job: RestoreJob, aside: str) -> None:
    """The database kept aside put back in place of the restored one, which goes."""
    failed = f"{aside}_failed"
    renamed(job.database, failed, aside)
    postgres(f'ALTER DATABASE "{job.database}" ALLOW_CONNECTIONS true', f'DROP DATABASE "{failed}"')


def parts_problem(job: RestoreJob, manifest: dict) -> str:
    """Why the backup cannot restore what this host has of the app ("": it can)."""
    parts = {part["name"] for part in manifest["parts"]}
    found = manifest.get("found") or {}
    wanted = {
        "data.tar": bool(job.data),
        "postgresql.dump": bool(job.database),
        "redis.rdb": bool(job.redis_data and not job.data),
    }
    missing = [part for part, needed in wanted.items() if needed and part not in parts]
    if job.data and job.redis_data and not found.get("redis"):
        missing.append("a Redis snapshot")
    if not missing:
        return ""
    where = "an app server's" if job.data else "a database server's"
    return (
        f"backup {manifest['backup']} holds no {', '.join(missing)}: it is not {where} backup"
        f" of {job.app} as it is now (backups.py lists each backup's parts)"
    )


def restore_backup(job: RestoreJob) -> int:
    """Put the backup back (see the module); 1 with the reason, the app as it was, if not."""
    try:
        folder = job.folder()
        manifest = verified(folder)
        problem = parts_problem(job, manifest)
        if problem:
            raise ValueError(problem)
    except (ValueError, OSError, json.JSONDecodeError, KeyError) as err:
        print(f"restore: {err}", file=sys.stderr)
        return 1
    name = folder.name
    release = f" (release {manifest['release']} then)" if manifest["release"] else ""
    print(f"restoring {job.app} from backup {name}{release}")
    restoring = ""
    try:
        if job.data:
            with open(folder / "data.tar", "rb") as archive:
                as_app(job, "unpack", name, archive)
        if job.database:  # filled while the app still runs: its site is down for less
            restoring = filled_database(job, folder / "postgresql.dump", name)
    except (RuntimeError, subprocess.TimeoutExpired) as err:
        if job.data:
            as_app(job, "back", name)
        print(f"restore: {err}", file=sys.stderr)
        return 1
    snapshot = folder / "redis.rdb" if job.redis_data and not job.data else None
    systemctl("stop", *job.units, *running_backup(job))
    aside = ""
    try:
        if job.data:
            as_app(job, "swap", name)
        if snapshot:
            served_snapshot(job, "swap", snapshot)
        if restoring:
            aside = swapped_database(job, restoring, name)
        systemctl("start", *reversed(job.units))
        check = job.check
        unhealthy = health(check, lambda: through_nginx(check)) if check else None
        if unhealthy:
            raise RuntimeError(f"unhealthy after the restore: {unhealthy}")
    except Exception as err:  # whatever went wrong, the app gets back what it had
        print(f"restore: {err}; putting back what was there", file=sys.stderr)
        systemctl("stop", *job.units, check=False)
        undo(job, name, snapshot)
        if aside:
            database_back(job, aside)
        elif restoring:
            postgres(f'DROP DATABASE "{restoring}"')
        systemctl("start", *reversed(job.units), check=False)
        return 1
    undo(job, name, snapshot, "done")
    if aside:
        postgres(f'DROP DATABASE "{aside}"')
    print(f"restored {job.app} from backup {name}" + (": healthy" if job.check else ""))
    return 0


def running_backup(job: RestoreJob) -> list[str]:
    """The app's backup unit, when the units stopped include its timer: a backup already
    running ends (its partial folder goes with the next one) before anything is replaced."""
    return [u.removesuffix(".timer") + ".service" for u in job.units if u.endswith("-backup.timer")]


def undo(job: RestoreJob, name: str, snapshot: Path | None, step: str = "back") -> None:
    """What the restore kept aside put back (``back``) or removed (``done``)."""
    if job.data:
        as_app(job, step, name)
    if snapshot:
        served_snapshot(job, step)
