import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import notes
import pytest
from notes import jobs
from notes.db import connect, get_db

CODE = os.path.realpath(os.path.dirname(notes.__file__))


def queue(client, body, status=202) -> int | None:
    response = client.post("/jobs", json=body)
    assert response.status_code == status, response.get_json()
    return response.get_json().get("id")


def worker_once(app) -> str:
    result = app.test_cli_runner().invoke(args=["worker", "--once"])
    assert result.exit_code == 0, result.output
    return result.output


def test_a_count_job_runs_in_the_worker(app, client):
    client.post("/notes", json={"body": "buy milk"})
    client.post("/notes", json={"body": "call mum today"})
    job_id = queue(client, {"kind": "count"})
    assert client.get(f"/jobs/{job_id}.json").get_json()["status"] == "queued"
    output = worker_once(app)
    assert f"worker: job {job_id} count done in " in output
    job = client.get(f"/jobs/{job_id}.json").get_json()
    assert job["status"] == "done" and job["kind"] == "count"
    assert job["result"] == {"notes": 2, "words": 5}
    assert job["ran_in"] == CODE
    assert job["created"] <= job["started"] <= job["finished"]


def test_jobs_run_oldest_first_and_once(app, client):
    ids = [queue(client, {"kind": "sleep", "seconds": 0}) for _ in range(3)]
    assert worker_once(app).count(" sleep done in ") == 3
    assert worker_once(app).count("worker: job") == 0
    with app.app_context():
        rows = get_db().execute("SELECT id FROM job ORDER BY started, id").fetchall()
    assert [row["id"] for row in rows] == ids
    assert client.get(f"/jobs/{ids[0]}.json").get_json()["result"] == {"slept": 0}


@pytest.mark.parametrize(
    "body",
    [
        None,
        [],
        {},
        {"kind": "nope"},
        {"kind": "sleep"},
        {"kind": "sleep", "seconds": "1"},
        {"kind": "sleep", "seconds": True},
        {"kind": "sleep", "seconds": -1},
        {"kind": "sleep", "seconds": 121},
    ],
)
def test_bad_jobs_are_refused(client, body):
    response = client.post("/jobs", json=body)
    assert response.status_code == 400
    assert response.get_json()["error"]


def test_a_missing_job_is_404(client):
    assert client.get("/jobs/42.json").status_code == 404


def test_a_job_that_raises_is_marked_failed(app, client):
    with app.app_context():
        job_id = jobs.enqueue(get_db(), "from-a-newer-release", {})
    assert "failed in" in worker_once(app)
    job = client.get(f"/jobs/{job_id}.json").get_json()
    assert job["status"] == "failed"
    assert job["result"] == {"error": "ValueError: unknown job kind 'from-a-newer-release'"}


def test_digest_command(app, client):
    client.post("/notes", json={"body": "one"})
    runner = app.test_cli_runner()
    assert "digest: 1 notes" in runner.invoke(args=["digest"]).output
    client.post("/notes", json={"body": "two"})
    runner.invoke(args=["digest"])
    digests = client.get("/digests.json").get_json()
    assert [d["notes"] for d in digests] == [2, 1]
    assert set(digests[0]) == {"id", "created", "notes", "ran_in"}
    assert digests[0]["ran_in"] == CODE


def test_connections_use_wal_and_wait_for_locks(app):
    with app.app_context():
        db = get_db()
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert db.execute("PRAGMA busy_timeout").fetchone()[0] == 10000


def test_two_workers_never_run_the_same_job(app):
    path = app.config["DATABASE"]
    with app.app_context():
        ids = [jobs.enqueue(get_db(), "sleep", {"seconds": 0.001}) for _ in range(300)]
    start = threading.Barrier(2)
    ran: list[list[int]] = [[], []]

    def worker(n):
        db = connect(path)
        start.wait()
        ran[n] = jobs.work(db, once=True)
        db.close()

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(ran[0] + ran[1]) == ids  # every job ran, and only once
    assert ran[0] and ran[1]  # both workers did take jobs
    db = sqlite3.connect(path)
    assert Counter(s for (s,) in db.execute("SELECT status FROM job")) == {"done": 300}


def test_sigterm_lets_the_job_in_hand_finish(app, tmp_path):
    code = tmp_path / "release" / "notes"  # a copy, so its instance folder is there too
    shutil.copytree(CODE, code, ignore=shutil.ignore_patterns("__pycache__"))
    with app.app_context():
        sleeper = jobs.enqueue(get_db(), "sleep", {"seconds": 2})
        after = jobs.enqueue(get_db(), "count", {})
    env = {**os.environ, "FLASK_DATABASE": app.config["DATABASE"], "PYTHONUNBUFFERED": "1"}
    worker = subprocess.Popen(
        [sys.executable, "-m", "flask", "--app", "notes", "worker"],
        cwd=code.parent,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        db = connect(app.config["DATABASE"])
        deadline = time.monotonic() + 5
        while status(db, sleeper) == "queued" and time.monotonic() < deadline:
            time.sleep(0.05)
        assert status(db, sleeper) == "running"
        worker.send_signal(signal.SIGTERM)
        output, _ = worker.communicate(timeout=5)
    finally:
        worker.kill()
    assert worker.returncode == 0, output
    assert f"worker: job {sleeper} sleep done in 2." in output
    assert "stopped (on SIGTERM) after 1 jobs" in output
    row = db.execute("SELECT status, ran_in FROM job WHERE id = ?", (sleeper,)).fetchone()
    assert tuple(row) == ("done", str(Path(code).resolve()))
    assert status(db, after) == "queued"  # not claimed once asked to stop


def status(db, job_id) -> str:
    return db.execute("SELECT status FROM job WHERE id = ?", (job_id,)).fetchone()[0]


def test_the_procfile_runs_the_worker_and_migrations():
    procfile = (Path(__file__).parent.parent / "Procfile").read_text()
    lines = dict(line.split(": ", 1) for line in procfile.splitlines())
    assert lines == {"release": "flask --app notes migrate", "worker": "flask --app notes worker"}
