"""The SQLite database: a connection per request, and the init-db and migrate commands."""

import sqlite3
from datetime import UTC, datetime
from importlib import resources

import click
from flask import current_app, g
from flask.cli import with_appcontext


def connect(path: str) -> sqlite3.Connection:
    """A connection that waits up to 10 s for a lock, to a database in WAL mode: the web
    app, workers and the digest write to it at the same time."""
    db = sqlite3.connect(path, timeout=10, detect_types=sqlite3.PARSE_DECLTYPES)
    db.row_factory = sqlite3.Row
    db.execute("PRAGMA journal_mode = WAL")
    return db


def get_db() -> sqlite3.Connection:
    """The request's (or command's) connection, opened on first use."""
    if "db" not in g:
        g.db = connect(current_app.config["DATABASE"])
    return g.db


def close_db(e=None):
    db = g.pop("db", None)
    if db is not None:
        db.close()


def migration_files() -> list[tuple[str, str]]:
    """(name, SQL) of every migration, in order."""
    folder = resources.files("notes") / "migrations"
    names = sorted(f.name for f in folder.iterdir() if f.name.endswith(".sql"))
    return [(name.removesuffix(".sql"), (folder / name).read_text()) for name in names]


def applied_migrations(db: sqlite3.Connection) -> set[str]:
    db.execute(
        "CREATE TABLE IF NOT EXISTS schema_migration (name TEXT PRIMARY KEY, applied TEXT NOT NULL)"
    )
    return {row[0] for row in db.execute("SELECT name FROM schema_migration")}


def migrate(db: sqlite3.Connection) -> list[str]:
    """Apply the migrations not applied yet, each in its own transaction; their names."""
    done = applied_migrations(db)
    applied = []
    for name, sql in migration_files():
        if name in done:
            continue
        with db:
            db.executescript(f"BEGIN;\n{sql}\n")
            db.execute(
                "INSERT INTO schema_migration (name, applied) VALUES (?, ?)",
                (name, datetime.now(UTC).isoformat()),
            )
        applied.append(name)
    return applied


def reset(db: sqlite3.Connection) -> None:
    """Drop every table, then migrate from scratch."""
    tables = [
        r[0]
        for r in db.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        )
    ]
    with db:
        for table in tables:
            db.execute(f'DROP TABLE "{table}"')
    migrate(db)


@click.command("init-db")
@with_appcontext
def init_db_command():
    """Erase all data and create the tables anew."""
    reset(get_db())
    click.echo("Initialized the database.")


@click.command("migrate")
@with_appcontext
def migrate_command():
    """Apply pending migrations (safe to run any time)."""
    applied = migrate(get_db())
    for name in applied:
        click.echo(f"migrate: applied {name}")
    if not applied:
        click.echo("migrate: database is up to date")


def init_app(app):
    app.teardown_appcontext(close_db)
    app.cli.add_command(init_db_command)
    app.cli.add_command(migrate_command)
