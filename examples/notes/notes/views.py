"""Pages and a small JSON API."""

from flask import Blueprint, abort, jsonify, redirect, render_template, request, url_for

from notes import jobs
from notes.db import get_db

bp = Blueprint("notes", __name__)


def all_notes():
    return get_db().execute("SELECT id, created, body FROM note ORDER BY id DESC").fetchall()


@bp.get("/")
def index():
    return render_template("index.html", notes=all_notes())


@bp.post("/notes")
def create():
    body = request.form.get("body") or (request.get_json(silent=True) or {}).get("body") or ""
    body = body.strip()
    if not body:
        abort(400, "a note needs a body")
    db = get_db()
    with db:
        cursor = db.execute("INSERT INTO note (body) VALUES (?)", (body,))
    if request.is_json:
        return jsonify(id=cursor.lastrowid, body=body), 201
    return redirect(url_for("notes.index"))


@bp.get("/notes.json")
def listing():
    return jsonify([{"id": n["id"], "body": n["body"]} for n in all_notes()])


@bp.post("/jobs")
def create_job():
    """Queue a job for the worker: {"kind": "count"} or {"kind": "sleep", "seconds": N}."""
    try:
        kind, params = jobs.validate(request.get_json(silent=True))
    except ValueError as e:
        return jsonify(error=str(e)), 400
    job_id = jobs.enqueue(get_db(), kind, params)
    return jsonify(id=job_id), 202, {"Location": url_for("notes.job", job_id=job_id)}


@bp.get("/jobs/<int:job_id>.json")
def job(job_id):
    row = get_db().execute("SELECT * FROM job WHERE id = ?", (job_id,)).fetchone()
    if row is None:
        return jsonify(error="no such job"), 404
    return jsonify(jobs.job_json(row))


@bp.get("/digests.json")
def digests():
    rows = get_db().execute("SELECT id, created, notes, ran_in FROM digest ORDER BY id DESC")
    return jsonify([dict(row) for row in rows])


@bp.get("/health")
def health():
    get_db().execute("SELECT 1").fetchone()
    return "ok\n"
