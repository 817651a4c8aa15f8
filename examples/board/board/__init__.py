"""A message board: posts in PostgreSQL (SQLAlchemy, migrated by Alembic), a job per post
run by an RQ worker through Redis, and a visit counter in Redis. Reads DATABASE_URL and
REDIS_URL from its environment."""

from flask import Flask


def create_app() -> Flask:
    """The app factory (``board:create_app()``)."""
    app = Flask(__name__)
    from board import db, views

    app.teardown_appcontext(db.close_session)
    app.register_blueprint(views.bp)
    return app
