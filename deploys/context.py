"""What every entry point does first on each host: validate settings, speed up the SSH
connection, then decide on sudo."""

from __future__ import annotations

import socket

from pyinfra import host
from pyinfra.facts.server import User

from deploys.settings import Settings, load_settings


def prepare_host() -> Settings:
    """Validate this host's settings (before anything else touches it) and use sudo unless
    the SSH user is root."""
    settings = load_settings(host.data.dict(), host.name)
    disable_nagle(host.connector)
    if host.get_fact(User) != "root":
        host.data._sudo = True  # the normal case: a sudo user over SSH
    return settings


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
