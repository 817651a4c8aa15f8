"""The SSH connection tweak every entry point applies: Nagle off on real TCP sockets only."""

from __future__ import annotations

import socket
from types import SimpleNamespace

import pytest

from deploys.context import disable_nagle


def connector_on(sock) -> SimpleNamespace:
    """The shape of pyinfra's SSH connector: ``connector.client.get_transport().sock``."""
    transport = SimpleNamespace(sock=sock)
    return SimpleNamespace(client=SimpleNamespace(get_transport=lambda: transport))


@pytest.fixture
def tcp_socket():
    with socket.create_server(("127.0.0.1", 0)) as server:
        with socket.create_connection(server.getsockname()) as client:
            yield client


def test_nagle_is_turned_off_on_a_tcp_connection(tcp_socket):
    assert tcp_socket.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 0
    assert disable_nagle(connector_on(tcp_socket)) is True
    assert tcp_socket.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0


def test_other_connections_are_left_alone():
    left, right = socket.socketpair()  # a unix socket, like a local proxy
    with left, right:
        assert disable_nagle(connector_on(left)) is False
    assert disable_nagle(connector_on(object())) is False  # a ProxyCommand or jump channel
    assert disable_nagle(SimpleNamespace()) is False  # @local, @docker: no SSH client
    assert disable_nagle(SimpleNamespace(client=None)) is False  # not connected
