"""Pages and a small JSON API."""

from flask import Blueprint, abort, jsonify, redirect, render_template, request, url_for

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


@bp.get("/health")
def health():
    get_db().execute("SELECT 1").fetchone()
    return "ok\n"
