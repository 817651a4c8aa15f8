"""The database and Redis an app asks for (``postgresql``, ``redis``) as the environment it
gets: ``DATABASE_URL`` and ``REDIS_URL``, each pointing at a unix socket, with no password
(PostgreSQL's peer authentication: the app's system user is its role; its Redis is reached
by its user alone). A name the app's ``env`` sets itself keeps the app's value."""

from __future__ import annotations

import hashlib

from deploys.config.layout import Layout
from deploys.config.settings import Settings

POSTGRES_SOCKET_DIR = "/run/postgresql"  # Debian's
# what an app may do in its Redis: everything but the administration commands (CONFIG,
# DEBUG, MODULE, SHUTDOWN, ACL changes, replication...), but listing its clients (RQ does)
# and saving a snapshot (its backups, taken as the app)
REDIS_GRANTS = "~* &* +@all -@admin +client|list +bgsave +lastsave"
REDIS_PORTS = range(6380, 7380)  # on a database server, each app's Redis on one of them


def redis_port(app: str) -> int:
    """The port of the app's Redis on a database server: from its name, the same on every
    run and host (two apps that meet on one are refused by plan.load_plan)."""
    number = int(hashlib.sha256(app.encode()).hexdigest(), 16)
    return REDIS_PORTS[number % len(REDIS_PORTS)]


def database_url(settings: Settings) -> str:
    """The app's database over the local socket, as libpq, psycopg and SQLAlchemy take it
    (the role: the connecting system user)."""
    return f"postgresql:///{settings.app_name}?host={POSTGRES_SOCKET_DIR}"


def redis_url(settings: Settings) -> str:
    """The app's Redis over its socket, as redis-py (RQ, Flask-Limiter...) takes it."""
    return f"unix://{Layout.of(settings).redis_socket}"


def linked_urls(settings: Settings) -> dict[str, str]:
    """The URLs of the services the app asks for on this host, by the name the app reads
    (on a database server's app server they come in Layout.database_env)."""
    urls: dict[str, str] = {}
    if settings.database_server:
        return urls
    if settings.postgresql:
        urls["DATABASE_URL"] = database_url(settings)
    if settings.redis:
        urls["REDIS_URL"] = redis_url(settings)
    return urls


def own_urls(settings: Settings) -> list[str]:
    """The linked URLs' names the app's ``env`` sets itself (its value is kept)."""
    return sorted(set(linked_urls(settings)) & set(settings.env))


def app_environment(settings: Settings) -> dict[str, str]:
    """Everything the app's environment file holds: the linked URLs, then ``env`` (secret:
    never logged)."""
    env = {name: value.get_secret_value() for name, value in settings.env.items()}
    return {**linked_urls(settings), **env}
