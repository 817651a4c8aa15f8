"""What every entry point applies: Nagle off on real TCP sockets only (deploys/speed); each
host's own operation turns, through pyinfra's public loop position."""

from __future__ import annotations

import socket
from types import SimpleNamespace

import pyinfra
import pytest
from pyinfra.api.operation import solve_operation_consistency
from pyinfra.context import ctx_host

from deploys.ops.context import in_turn, stale_package
from deploys.speed import disable_nagle


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
    first = SimpleNamespace(name="first", loop_position=[])
    second = SimpleNamespace(name="second", loop_position=[])
    with ctx_host.use(first):
        app_turn = in_turn(2)
        app_turn.__enter__()
    with ctx_host.use(second):  # enters its own turn while the first host is in one
        with in_turn(1):
            assert second.loop_position == [1]
            with ctx_host.use(first):
                assert first.loop_position == [2]
                app_turn.__exit__(None, None, None)  # the first host's turn ends meanwhile
            assert (first.loop_position, second.loop_position) == ([], [1])
            with in_turn(3):  # nested: within its enclosing turn
                assert second.loop_position == [1, 3]
                second.loop_position.append(0)  # a host.loop() left unfinished inside
        assert second.loop_position == []
    assert first.loop_position == []


def operation_at_one_call_site(host) -> tuple:
    """The order and hash pyinfra gives an operation made here (in CLI mode, as pyinfra)."""
    state = SimpleNamespace(current_deploy_filename=None, current_op_file_number=0)
    return solve_operation_consistency({"op"}, state, host)


def test_turns_make_operations_of_their_own_the_same_on_every_host(monkeypatch):
    """With stock pyinfra (its own order from the stack, no shortcut): the same call site in
    two turns is two operations, in order; in one turn on two hosts, one operation."""
    monkeypatch.setattr(pyinfra, "is_cli", True)
    first = SimpleNamespace(name="first", loop_position=[], op_hash_order=[])
    second = SimpleNamespace(name="second", loop_position=[], op_hash_order=[])
    made: dict[str, list[tuple]] = {"first": [], "second": []}
    for host, positions in ((first, (1, 2)), (second, (2,))):
        with ctx_host.use(host):
            for position in positions:
                with in_turn(position):
                    made[host.name].append(operation_at_one_call_site(host))
    (order_1, hash_1), (order_2, hash_2) = made["first"]
    assert hash_1 != hash_2 and order_1 < order_2
    assert made["second"] == [(order_2, hash_2)]  # no "-0" duplicate: the same operation


def test_a_deploy_file_beside_a_checkout_refuses_an_installed_package(tmp_path):
    """`pip install .` then `git pull`: the checkout's deploy.py must not quietly run (and
    ship to hosts) the older installed copy; the installed package alone, or the checkout's
    own, is fine."""
    checkout, installed = tmp_path / "checkout", tmp_path / "site" / "deploys"
    (checkout / "deploys").mkdir(parents=True)
    installed.mkdir(parents=True)
    deploy_file = str(checkout / "deploy.py")
    assert "pip uninstall flask-deploy" in stale_package(deploy_file, installed)
    assert stale_package(deploy_file, checkout / "deploys") is None
    assert stale_package(str(tmp_path / "elsewhere" / "deploy.py"), installed) is None
    assert stale_package(None, installed) is None
