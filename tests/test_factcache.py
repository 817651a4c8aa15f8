"""The fact cache: batches framed so that no output can pass for the frame, and answers kept
only while nothing else ran on the host (deploys/speed/factcache.py)."""

from __future__ import annotations

import subprocess

import pytest
from pyinfra.connectors.util import CommandOutput, OutputLine

from deploys.speed import factcache, read_together
from deploys.speed.factcache import BATCH_START, FactCache, batch_script, split_batch

AWKWARD = [
    "echo plain; echo ' leading space'; echo '=0'",  # lines that look like the frame
    "printf 'no newline at the end'",
    "exit 3",  # a failing fact, and an exit that must not end the batch
    "true",  # no output at all
    "echo; echo",  # empty lines
    "cat <<'EOF'\na heredoc\nEOF",
    "echo to stderr >&2; echo out",
]


def run_batch(commands: list[str]) -> list[str]:
    """What pyinfra's connector hands back: stdout split into lines, newlines stripped."""
    out = subprocess.run(["sh", "-c", batch_script(commands)], capture_output=True, text=True)
    return out.stdout.splitlines()


def test_a_batch_gives_each_command_its_own_output_and_status():
    assert split_batch(run_batch(AWKWARD), len(AWKWARD)) == [
        (0, ["plain", " leading space", "=0"]),
        (0, ["no newline at the end"]),
        (3, []),
        (0, []),
        (0, ["", ""]),
        (0, ["a heredoc"]),
        (0, ["out"]),
    ]


def test_a_batch_that_does_not_add_up_is_not_used():
    lines = run_batch(["echo a", "echo b"])
    assert split_batch(lines, 3) is None
    assert split_batch(lines[:-1], 2) is None  # cut short: output without its status
    assert split_batch(["unframed", *lines], 2) is None


class Connector:
    """Runs commands in a local shell, as pyinfra's connector hands back their output, and
    notes each one that reached the "host"."""

    def __init__(self):
        self.commands: list[str] = []

    def run_shell_command(self, command, print_output=False, print_input=False, **arguments):
        text = command.get_raw_value() if hasattr(command, "get_raw_value") else str(command)
        self.commands.append(text)
        out = subprocess.run(["sh", "-c", text], capture_output=True, text=True)
        lines = [OutputLine("stdout", line) for line in out.stdout.splitlines()]
        return out.returncode == 0, CommandOutput(lines)

    def put_file(self, *args, **kwargs):
        self.commands.append("upload")
        return True


class Host:
    """pyinfra's host, as far as the cache sees it: facts read through its connector."""

    current_op_hash = None
    current_op_global_arguments = None

    def __init__(self):
        self.connector = Connector()

    def get_fact(self, command: str):
        return self.connector.run_shell_command(command)[1].stdout


class State:
    is_executing = False


def test_answers_last_until_anything_else_runs_on_the_host():
    host = Host()
    FactCache(host, State())
    connector = host.connector
    assert host.get_fact("echo a") == "a"
    assert host.get_fact("echo a") == "a"
    assert connector.commands == ["echo a"]
    connector.run_shell_command(": an operation")  # a command of an operation
    host.get_fact("echo a")
    assert connector.commands == ["echo a", ": an operation", "echo a"]
    connector.put_file("local", "remote")  # an upload
    host.get_fact("echo a")
    assert connector.commands[-2:] == ["upload", "echo a"]


def test_a_fact_command_that_failed_is_asked_again():
    host = Host()
    FactCache(host, State())
    host.get_fact("false x")
    host.get_fact("false x")
    assert host.connector.commands == ["false x", "false x"]


def test_facts_read_together_take_one_round_trip_and_stay_known():
    host = Host()
    host.fact_cache = FactCache(host, State())
    requests = [("echo a", {}), ("echo b; echo c", {}), ("false", {})]
    assert read_together(host, *requests) == ["a", "b\nc", ""]
    batch, failed = host.connector.commands  # the failed one is asked again on its own
    assert batch.startswith(BATCH_START) and failed == "false"
    assert host.get_fact("echo b; echo c") == "b\nc"
    assert len(host.connector.commands) == 2


def test_a_host_s_facts_come_from_that_host_whoever_asks():
    """Installed through pyinfra's context object (``from pyinfra import host``), the cache
    keeps the host it was installed for; another host's operations (a load balancer asking
    its app servers) read from that host, as pyinfra would, and look nothing ahead."""
    import pyinfra
    from pyinfra.context import ctx_host

    server, balancer = Host(), Host()
    with ctx_host.use(server):
        cache = factcache.install(pyinfra.host, State())
    assert cache.host is server
    with ctx_host.use(balancer):
        assert server.get_fact("echo from-the-server") == "from-the-server"
    assert server.connector.commands == ["echo from-the-server"]
    assert balancer.connector.commands == [] and cache.values == {}


def test_operations_are_ordered_by_the_same_line_numbers_without_inspect():
    from types import SimpleNamespace

    from pyinfra.api.util import get_operation_order_from_stack

    from deploys.speed.quicker import order_from_frames

    def nested(state):
        return get_operation_order_from_stack(state), order_from_frames(state)

    for deploy_file in (__file__, None, "absent.py"):
        state = SimpleNamespace(current_deploy_filename=deploy_file, current_op_file_number=3)
        pyinfra_says, frames_say = nested(state)
        assert frames_say == pyinfra_says
        assert len(pyinfra_says) >= (2 if deploy_file == __file__ else 0)


def test_the_missing_command_marker_is_pyinfras():
    from pyinfra.api import facts

    from deploys.speed.factcache import MISSING_COMMAND_MARKER

    assert MISSING_COMMAND_MARKER == facts._MISSING_COMMAND_MARKER


def test_answers_are_read_again_once_execution_starts_or_when_old(monkeypatch):
    """Answers from the planning stage are not used to execute (pyinfra may have waited at
    its prompt), nor answers older than MAX_AGE (a host waiting its turn in a rolling run)."""
    host, state = Host(), State()
    FactCache(host, state)
    host.get_fact("echo a")
    state.is_executing = True
    host.get_fact("echo a")
    host.get_fact("echo a")
    assert host.connector.commands == ["echo a", "echo a"]
    monkeypatch.setattr(factcache, "MAX_AGE", 0.0)
    host.get_fact("echo a")
    assert host.connector.commands == ["echo a"] * 3


def test_a_batch_the_connection_fails_is_read_fact_by_fact():
    host = Host()
    host.fact_cache = FactCache(host, State())
    run = host.fact_cache._run  # the connector's own, under the cache

    def flaky(command, **kwargs):
        if str(command).startswith(BATCH_START):
            raise OSError("connection reset")
        return run(command, **kwargs)

    host.fact_cache._run = flaky
    assert read_together(host, ("echo a", {}), ("echo b", {})) == ["a", "b"]
    assert host.connector.commands == ["echo a", "echo b"]


def test_host_data_is_looked_up_as_pyinfra_does():
    """quicker's HostData lookup (no exception per layer) answers each key as pyinfra's own
    does, whatever the layers: dicts, callables giving one, read-only views, a defaultdict
    (which answers every key), falsy values, keys in no layer."""
    from collections import defaultdict
    from types import MappingProxyType

    from pyinfra.api.host import HostData

    from deploys.speed.quicker import PYINFRA_HOST_DATA_ATTRIBUTE, _host_data_attribute

    layouts = [
        ({"a": 1}, lambda: {"a": 2, "b": 0}, MappingProxyType({"c": None}), lambda: {}),
        ({}, defaultdict(lambda: "any"), {"a": [1]}),
        (lambda: {"b": False}, {"a": ""}, MappingProxyType({})),
    ]
    for layers in layouts:
        data = HostData("host", *layers)
        for key in ("a", "b", "c", "missing"):
            try:
                expected = PYINFRA_HOST_DATA_ATTRIBUTE(data, key)
            except AttributeError:
                with pytest.raises(AttributeError):
                    _host_data_attribute(data, key)
            else:
                assert _host_data_attribute(data, key) == expected
