"""What every entry point applies: Nagle off on real TCP sockets only; each host's own
operation turns."""

from __future__ import annotations

import socket
from types import SimpleNamespace

import pytest
from pyinfra.context import ctx_host

from deploys.context import TURN_SCALE, disable_nagle, in_turn, turn_offset


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


def test_each_host_keeps_its_own_turn_while_hosts_load_interleaved():
    """pyinfra loads the deploy file on every host at once, switching between them whenever
    one waits: a host's turn must not leak into another's operations."""
    first, second = SimpleNamespace(name="first"), SimpleNamespace(name="second")
    with ctx_host.use(first):
        app_turn = in_turn(2)
        app_turn.__enter__()
    with ctx_host.use(second):  # enters its own turn while the first host is in one
        with in_turn(1):
            assert turn_offset() == 1 / TURN_SCALE
            with ctx_host.use(first):
                assert turn_offset() == 2 / TURN_SCALE
                app_turn.__exit__(None, None, None)  # the first host's turn ends meanwhile
            assert turn_offset() == 1 / TURN_SCALE
            with in_turn(3):  # nested: within its enclosing turn
                assert turn_offset() == 1 / TURN_SCALE + 3 / TURN_SCALE**2
        assert turn_offset() == 0
    with ctx_host.use(first):
        assert turn_offset() == 0
