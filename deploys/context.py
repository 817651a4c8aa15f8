"""What every entry point does first on each host: validate settings, speed up the SSH
connection and its fact reads, then decide on sudo."""

from __future__ import annotations

import socket
import sys
from contextlib import contextmanager

from pyinfra import host, state
from pyinfra.api import deploy
from pyinfra.facts.server import Home, User
from pyinfra.operations import files

from deploys import factcache, quicker
from deploys.plan import HostPlan, load_plan

UPLOAD_DIR = ".cache/flask-deploy"  # in the SSH user's home
TURN_SCALE = 10_000  # positions per level of in_turn (apps; a rolling release's steps)
_TURNS: dict[str, tuple[float, int]] = {}  # host -> its in_turn offset and nesting depth


def prepare_host(secrets: bool = True) -> HostPlan:
    """Validate this host's settings (before anything else touches it), use sudo unless the
    SSH user is root, and upload through a private folder (see private_upload_dir). Facts
    are read through a cache (deploys/factcache.py), and pyinfra's bookkeeping is lightened
    (deploys/quicker.py).
    ``secrets=False``: this entry point writes no secrets, so unset ``env`` values are fine."""
    plan = load_plan(host.data.dict(), host.name, secrets=secrets)
    disable_nagle(host.connector)
    factcache.install(host, state)
    quicker.cache_global_arguments()
    quicker.order_without_inspect(turn_offset)
    quicker.lighter_host_data()
    quicker.keep_command_splits()
    home, user = factcache.read_together(host, (Home, {}), (User, {}))
    host.data._temp_dir = f"{home}/{UPLOAD_DIR}"
    if user != "root":
        host.data._sudo = True  # the normal case: a sudo user over SSH
    return plan


@contextmanager
def in_turn(position: int):
    """Operations made inside sort after those of every lower ``position``: one app's whole
    deploy before the next app's; within an app, a rolling batch's steps in order across
    hosts. (pyinfra orders operations by the line numbers of their call sites, so a plain
    loop would interleave the apps step by step, and a failing app would stop the host with
    the next one half deployed.) Nested turns order within their enclosing turn.

    Each host has its own turn, added to the first number of its operations' order
    (``turn_offset``, see quicker.order_from_frames): pyinfra loads the deploy file on all
    hosts at once, in greenlets that take turns whenever one waits for the host, so one
    shared number would leak a host's turn into another's operations (each host then has
    operations of its own, run one host after another instead of on all at once)."""
    offset, depth = _TURNS.get(host.name, (0.0, 0))
    _TURNS[host.name] = (offset + position / TURN_SCALE ** (depth + 1), depth + 1)
    try:
        yield
    finally:
        _TURNS[host.name] = (offset, depth)


def dry_run() -> bool:
    """Whether this run is a preview (``--dry``): it changes nothing, and pyinfra shows every
    operation it would run, those that run only if an earlier one fails included."""
    return "--dry" in sys.argv


def turn_offset() -> float:
    """What in_turn adds to the order of the operations this host makes now."""
    return _TURNS.get(host.name, (0.0, 0))[0]


@deploy("Private upload folder")
def private_upload_dir():
    """The SSH user's own mode 700 folder that uploads pass through on their way to root-owned
    paths (pyinfra's default is a predictably named file in /tmp that other users can read)."""
    files.directory(
        name=f"Upload folder ~/{UPLOAD_DIR} (mode 700)",
        path=host.data._temp_dir,
        mode="700",
        _sudo=False,
    )


def disable_nagle(connector) -> bool:
    """Set TCP_NODELAY on an SSH connector's socket; return whether it was set.

    paramiko leaves Nagle's algorithm on, so every fact or command (a few small SSH packets)
    waits for the server's delayed ACK: about 40 ms each on Linux, some 60 facts per deploy.
    Connections through a proxy command or jump host, and other connectors, are left alone.
    """
    client = getattr(connector, "client", None)
    transport = client.get_transport() if client is not None else None
    sock = getattr(transport, "sock", None)
    if not isinstance(sock, socket.socket) or sock.family not in (socket.AF_INET, socket.AF_INET6):
        return False
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return True
