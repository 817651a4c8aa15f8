"""Background jobs, queued by the web and run by ``rq worker board``."""

from rq import Queue
from sqlalchemy.orm import Session

from board.db import engine, redis
from board.models import Post


def queue() -> Queue:
    return Queue("board", connection=redis())


def shout(post_id: int) -> str:
    """The post's text, shouted, saved beside it."""
    with Session(engine()) as db:
        post = db.get(Post, post_id)
        post.shout = post.text.upper() + "!"
        db.commit()
        return post.shout
