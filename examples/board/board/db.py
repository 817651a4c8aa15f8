"""The database (DATABASE_URL) and Redis (REDIS_URL) connections, made once per process."""

import os
from functools import cache

from flask import g
from redis import Redis
from sqlalchemy import create_engine
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session


@cache
def engine() -> Engine:
    return create_engine(os.environ["DATABASE_URL"], pool_pre_ping=True)


@cache
def redis() -> Redis:
    return Redis.from_url(os.environ["REDIS_URL"])


def session() -> Session:
    """The request's session, closed when the request ends."""
    if "db" not in g:
        g.db = Session(engine())
    return g.db


def close_session(_error=None) -> None:
    db = g.pop("db", None)
    if db is not None:
        db.close()
