"""Pages and the JSON API."""

from flask import Blueprint, abort, redirect, render_template, request, url_for
from sqlalchemy import select, text

from board import jobs
from board.db import redis, session
from board.models import Post

bp = Blueprint("board", __name__)


@bp.get("/")
def index():
    visits = redis().incr("visits")
    posts = session().scalars(select(Post).order_by(Post.id.desc()).limit(50)).all()
    return render_template("index.html", posts=posts, visits=visits)


@bp.post("/")
def add_from_form():
    add_post(request.form.get("text", ""))
    return redirect(url_for("board.index"))


def add_post(body: str) -> Post:
    if not body.strip():
        abort(400, "text is empty")
    db = session()
    post = Post(text=body.strip())
    db.add(post)
    db.commit()
    jobs.queue().enqueue(jobs.shout, post.id)
    return post


@bp.post("/api/posts")
def create():
    post = add_post((request.get_json(silent=True) or request.form).get("text", ""))
    return post.as_dict(), 201


@bp.get("/api/posts/<int:post_id>")
def show(post_id: int):
    post = session().get(Post, post_id) or abort(404)
    return post.as_dict()


@bp.get("/health")
def health():
    session().execute(text("SELECT 1"))
    redis().ping()
    return "ok"
