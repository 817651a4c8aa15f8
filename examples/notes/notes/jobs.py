"""Background jobs: a queue in the database, the worker that runs it, the nightly digest."""

import json
import os
import signal
import sqlite3
import time
from datetime import UTC, datetime

import click
from flask.cli import with_appcontext

from notes.db import get_db

# Where the running code was loaded from (on a server, its release's folder). Resolved at
# import: resolved later, a symlink switched by a deploy would name the new code, not ours.
RAN_IN = os.path.realpath(os.path.dirname(__file__))
POLL = 0.5  # seconds between looks at an empty queue
MAX_SLEEP = 120
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def validate(data) -> tuple[str, dict]:
    """(kind, params) of a job request; ValueError says what is wrong with it."""
    if not isinstance(data, dict):
        raise ValueError('send a JSON object, e.g. {"kind": "count"}')
    kind = data.get("kind")
    if kind == "count":
        return kind, {}
    if kind == "sleep":
        seconds = data.get("seconds")
        if isinstance(seconds, bool) or not isinstance(seconds, int | float):
            raise ValueError("a sleep job needs a number of seconds")
        if not 0 <= seconds <= MAX_SLEEP:
            raise ValueError(f"seconds must be between 0 and {MAX_SLEEP}")
        return kind, {"seconds": seconds}
    raise ValueError('kind must be "count" or "sleep"')


def enqueue(db: sqlite3.Connection, kind: str, params: dict) -> int:
    """Queue a job; its id."""
    with db:
        cursor = db.execute(
            "INSERT INTO job (kind, params, created) VALUES (?, ?, ?)",
            (kind, json.dumps(params), now()),
        )
    return cursor.lastrowid


def claim(db: sqlite3.Connection) -> sqlite3.Row | None:
    """Take the oldest queued job, or None: one statement, so no two workers get the same."""
    with db:
        return db.execute(
            "UPDATE job SET status = 'running', started = ?, ran_in = ?"
            " WHERE id = (SELECT id FROM job WHERE status = 'queued' ORDER BY id LIMIT 1)"
            " AND status = 'queued' RETURNING id, kind, params",
            (now(), RAN_IN),
        ).fetchone()


def execute(db: sqlite3.Connection, kind: str, params: dict):
    """Do the work of one job; its result."""
    if kind == "count":
        bodies = [row[0] for row in db.execute("SELECT body FROM note")]
        return {"notes": len(bodies), "words": sum(len(body.split()) for body in bodies)}
    if kind == "sleep":
        time.sleep(params["seconds"])
        return {"slept": params["seconds"]}
    raise ValueError(f"unknown job kind {kind!r}")


def run(db: sqlite3.Connection, job: sqlite3.Row) -> str:
    """Run a claimed job and store how it went; its final status."""
    started = time.monotonic()
    try:
        status, result = "done", execute(db, job["kind"], json.loads(job["params"]))
    except Exception as e:
        status, result = "failed", {"error": f"{type(e).__name__}: {e}"}
    with db:
        db.execute(
            "UPDATE job SET status = ?, result = ?, finished = ? WHERE id = ?",
            (status, json.dumps(result), now(), job["id"]),
        )
    took = time.monotonic() - started
    error = f": {result['error']}" if status == "failed" else ""
    click.echo(f"worker: job {job['id']} {job['kind']} {status} in {took:.1f} s{error}")
    return status


def work(db: sqlite3.Connection, once: bool = False, stopping=lambda: False) -> list[int]:
    """Run jobs until stopping() (with once, until the queue is empty too); their ids."""
    ran = []
    while not stopping():
        job = claim(db)
        if job is not None:
            run(db, job)
            ran.append(job["id"])
        elif once:
            break
        else:
            time.sleep(POLL)
    return ran


def job_json(row: sqlite3.Row) -> dict:
    keys = ("id", "kind", "status", "ran_in", "created", "started", "finished")
    result = json.loads(row["result"]) if row["result"] is not None else None
    return {**{key: row[key] for key in keys}, "result": result}


def write_digest(db: sqlite3.Connection) -> dict:
    """Record how many notes there are now; the digest."""
    count = db.execute("SELECT count(*) FROM note").fetchone()[0]
    digest = {"created": now(), "notes": count, "ran_in": RAN_IN}
    with db:
        cursor = db.execute(
            "INSERT INTO digest (created, notes, ran_in) VALUES (:created, :notes, :ran_in)", digest
        )
    return {"id": cursor.lastrowid, **digest}


@click.command("worker")
@click.option("--once", is_flag=True, help="Exit as soon as the queue is empty.")
@with_appcontext
def worker_command(once):
    """Run queued jobs; on SIGTERM or SIGINT, finish the job in hand and exit."""
    stop = []
    handlers = {sig: signal.signal(sig, lambda s, f: stop.append(s)) for sig in STOP_SIGNALS}
    try:
        click.echo(f"worker: pid {os.getpid()} waiting for jobs, code in {RAN_IN}")
        ran = work(get_db(), once=once, stopping=lambda: bool(stop))
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
    why = f"on {signal.Signals(stop[0]).name}" if stop else "queue empty"
    click.echo(f"worker: stopped ({why}) after {len(ran)} jobs")


@click.command("digest")
@with_appcontext
def digest_command():
    """Record a digest of the notes (a nightly timer runs this)."""
    digest = write_digest(get_db())
    click.echo(f"digest: {digest['notes']} notes (code in {digest['ran_in']})")


def init_app(app):
    app.cli.add_command(worker_command)
    app.cli.add_command(digest_command)
