"""Backup and restore of 100 MB, side by side with the bare tool: ``python -m bench.backups``.

One test-bed host with the example apps notes (SQLite) and board (PostgreSQL, Redis), each
with ``backups = true``; their data grown to about 100 MB of random (incompressible) bytes:
notes' SQLite database, board's PostgreSQL database. Each round takes a backup of each app
with backup.py and restores it with restore.py (each a whole pyinfra run, as an operator
types it), against the floor on the same host: the SQLite file copied through its online
backup API by python3, the database dumped with ``pg_dump -Fc`` and restored with
``pg_restore`` into a new database, each timed over SSH. Prints a markdown table of medians
and ratios and writes it to bench/backups.md.
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import sys
import tempfile
import time
from pathlib import Path

import testbed
from testbed.pyinfra_cli import pyinfra
from tests.helpers import NOTES
from tests.test_datastores import BOARD

BENCH = Path(__file__).resolve().parent
MEGABYTES = 100
APPS = [
    {**NOTES, "backups": True},
    {**BOARD, "backups": True, "server_name": "board.test"},
]
NOTES_DB = "/var/lib/notes/instance/notes.sqlite"
# as the app: MEGABYTES rows of 1 MB random bytes into a table of its database
FILL_SQLITE = (
    "import os, sqlite3, sys; db = sqlite3.connect(sys.argv[1]);"
    " db.execute('CREATE TABLE IF NOT EXISTS filler (b BLOB)');"
    " [db.execute('INSERT INTO filler VALUES (?)', (os.urandom(1 << 20),))"
    f" for _ in range({MEGABYTES})]; db.commit()"
)
# COPY's text format: a bytea in hex is \\x... on the line (its backslash escaped)
FILL_POSTGRES = (
    r"import os, sys; sys.stdout.write(''.join('\\\\x' + os.urandom(1 << 20).hex() + '\n'"
    f" for _ in range({MEGABYTES})))"
)
FLOOR_SQLITE = (
    "import sqlite3, sys; s = sqlite3.connect(sys.argv[1]);"
    " t = sqlite3.connect('/tmp/floor.sqlite'); s.backup(t); t.close()"
)


def run(host, tmp: Path, entry: str, *args: str):
    return pyinfra([host], tmp, entry, "--data", f"apps={json.dumps(APPS)}", *args).check()


def timed(action) -> float:
    started = time.monotonic()
    action()
    return time.monotonic() - started


def fill(host) -> dict[str, str]:
    """The apps' data grown by MEGABYTES of random bytes; their sizes on disk."""
    host.exec(f"runuser -u notes -- python3 -c {shlex.quote(FILL_SQLITE)} {NOTES_DB}")
    psql = "runuser -u board -- psql -XAq -d board"
    host.exec(f"{psql} -c 'CREATE TABLE IF NOT EXISTS filler (b bytea)'")
    host.exec(f"python3 -c {shlex.quote(FILL_POSTGRES)} | {psql} -c 'COPY filler FROM STDIN'")
    size = "SELECT pg_size_pretty(pg_database_size('board'))"
    return {
        "notes": host.exec(f"du -h {NOTES_DB} | cut -f1").stdout.strip(),
        "board": host.exec(f'runuser -u postgres -- psql -XAtc "{size}"').stdout.strip(),
    }


def floors(host) -> dict[str, float]:
    """The bare tools' times on the host (seconds), measured there."""

    def on_host(command: str) -> float:
        out = host.exec(f"s=$(date +%s.%N); {command} >/dev/null; e=$(date +%s.%N); echo $s $e")
        start, end = map(float, out.stdout.split())
        return end - start

    dump = "runuser -u postgres -- pg_dump -Fc -d board -f /tmp/floor.dump"
    restore = (
        "runuser -u postgres -- psql -XAqc 'DROP DATABASE IF EXISTS floor' -c 'CREATE DATABASE"
        " floor' && runuser -u postgres -- pg_restore -d floor /tmp/floor.dump"
    )
    return {
        "sqlite backup": on_host(
            f"python3 -c {shlex.quote(FLOOR_SQLITE)} {NOTES_DB} && rm /tmp/floor.sqlite"
        ),
        "pg_dump": on_host(dump),
        "pg_restore": on_host(restore),
    }


def measure(rounds: int, tmp: Path) -> tuple[dict[str, list[float]], dict[str, str]]:
    (host,) = testbed.boot(1, prefix="bench-backups", provisioned=True)
    try:
        run(host, tmp, "deploy.py")
        sizes = fill(host)
        times: dict[str, list[float]] = {}
        for _ in range(rounds):
            for app in ("notes", "board"):
                took = timed(lambda app=app: run(host, tmp, "backup.py", "--data", f"app={app}"))
                times.setdefault(f"{app}: backup.py", []).append(took)
                restore = ("--data", f"app={app}", "--data", "backup=latest")
                took = timed(lambda restore=restore: run(host, tmp, "restore.py", *restore))
                times.setdefault(f"{app}: restore.py", []).append(took)
            for name, took in floors(host).items():
                times.setdefault(f"floor: {name}", []).append(took)
        return times, sizes
    finally:
        testbed.destroy([host])


def report(times: dict[str, list[float]], sizes: dict[str, str], rounds: int) -> str:
    floor = {
        "notes: backup.py": "floor: sqlite backup",
        "notes: restore.py": "floor: sqlite backup",
        "board: backup.py": "floor: pg_dump",
        "board: restore.py": "floor: pg_restore",
    }
    rows = ["| what | median (s) | runs (s) | ratio |", "|---|---|---|---|"]
    for name, runs in times.items():
        base = floor.get(name)
        ratio = (
            f"{statistics.median(runs) / statistics.median(times[base]):.1f}x {base[7:]}"
            if base
            else ""
        )
        listed = " ".join(f"{r:.1f}" for r in runs)
        rows.append(f"| {name} | {statistics.median(runs):.1f} | {listed} | {ratio} |")
    head = (
        f"# Backups of {MEGABYTES} MB\n\nOne run of `python -m bench.backups` on this machine"
        f" ({rounds} rounds, medians). notes' SQLite database {sizes['notes']}, board's"
        f" PostgreSQL database {sizes['board']}; backup.py and restore.py are whole pyinfra"
        " runs (connect, facts, the deploy lock, the work, the health check of a restore);"
        " the floors are the bare tools timed on the host.\n\n"
    )
    return head + "\n".join(rows) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", default=str(BENCH / "backups.md"))
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        times, sizes = measure(args.rounds, Path(tmp))
    text = report(times, sizes, args.rounds)
    Path(args.out).write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
