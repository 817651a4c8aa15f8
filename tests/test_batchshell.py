"""The shell kept open for fact batches (deploys/speed/batchshell.py), run as a real local sh:
each command's output and status as pyinfra would have them, whatever a command prints,
reads or does to its shell; the frame's secret out of every other process's reach."""

from __future__ import annotations

import subprocess
import time

import pytest

from deploys.speed.batchshell import UNKNOWN, BatchShell

AWKWARD = [
    "echo plain; echo ' leading space'; echo '=0'",
    "printf 'no newline at the end'",
    "exit 3",  # a failing fact, and an exit that must not end the shell
    "true",  # no output at all
    "echo; echo",  # empty lines
    "printf 'a\\n\\n'",  # a blank last line
    "cat <<'EOF'\na heredoc\nEOF",
    "echo to stderr >&2; echo out",
    "printf 'blank lines, then exit\\n\\n\\n'; exit 4",  # all of its output, and its status
    "cd /; set -e; false; echo not reached",
]


def start(command: list[str]):
    proc = subprocess.Popen(
        command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1
    )
    return shell_on(proc), proc


def shell_on(proc: subprocess.Popen) -> BatchShell:
    """A BatchShell of the shell that reads ``proc``'s input (a text-mode local process)."""

    def send(text: str) -> None:
        proc.stdin.write(text)
        proc.stdin.flush()

    return BatchShell(send, proc.stdout, proc.stdin.close)


@pytest.fixture
def shell():
    batch, proc = start(["sh"])
    yield batch, proc
    proc.kill()
    proc.wait()


def one_by_one(command: str) -> tuple[int, list[str]]:
    """What pyinfra's connector hands back for the command on its own."""
    out = subprocess.run(["sh", "-c", command], capture_output=True, text=True)
    return out.returncode, out.stdout.splitlines()


def test_each_command_gets_what_it_would_get_on_its_own(shell):
    batch, _ = shell
    assert batch.run(AWKWARD) == [one_by_one(command) for command in AWKWARD]
    assert batch.run(["echo again"]) == [(0, ["again"])]  # the shell goes on


def test_output_that_imitates_the_frame_stays_output(shell):
    batch, _ = shell
    forged = [
        "echo '0123456789abcdef0123456789abcdef 0'",  # a frame with another secret
        "echo '0123456789abcdef0123456789abcdef end'; printf '\\n%s end\\n' guess",
        'echo "$flask_deploy_frame"',  # the variable is not in a command's environment
    ]
    results = batch.run(forged)
    assert [status for status, _ in results] == [0, 0, 0]
    assert results[0][1] == ["0123456789abcdef0123456789abcdef 0"]
    assert results[2][1] == [""]  # unset before each command


def test_a_command_can_neither_read_the_next_batch_nor_change_the_shell(shell):
    batch, _ = shell
    reads = ["cat", 'if read line; then echo "read $line"; else echo nothing; fi']
    assert batch.run(reads) == [(0, []), (0, ["nothing"])]
    assert batch.run(["cd /; flask_deploy_frame=x; set -e; false", "pwd >/dev/null; exit 0"]) == [
        (1, []),
        (0, []),
    ]
    assert batch.run(["echo still framed"]) == [(0, ["still framed"])]


def test_a_process_a_command_leaves_behind_writes_into_its_answer_only(shell):
    """What a lingering process (or a user who took a copy of a command's output) writes
    belongs to that command: it holds up its answer, never writes into a later one."""
    batch, _ = shell
    first = "echo first; (sleep 0.3; echo late) &"
    assert batch.run([first]) in ([one_by_one(first)], [(UNKNOWN, [])])  # UNKNOWN: read alone
    time.sleep(0.5)
    assert batch.run(["echo mine"]) == [(0, ["mine"])]


def test_a_command_that_takes_the_end_mark_away_is_answered_unknown(shell):
    """A command that replaces the shell collecting its output, or sets that shell's exit
    trap, leaves its output's end unknown: it is to be read alone; the others are answered."""
    batch, _ = shell
    commands = ["exec echo replaced", "echo before", "trap '' EXIT; echo trapped", "echo after"]
    assert batch.run(commands) == [(UNKNOWN, []), (0, ["before"]), (UNKNOWN, []), (0, ["after"])]


class Interrupted(BaseException):
    """What cuts a read short without an error of the stream (a timeout, the greenlet
    killed)."""


def test_a_read_cut_short_closes_the_shell():
    """Its answers would otherwise be taken for the next batch's."""
    proc = subprocess.Popen(["sh"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def send(text: str) -> None:
        proc.stdin.write(text)
        proc.stdin.flush()

    class CutShort:
        reads = 0

        def readline(self):
            self.reads += 1
            if self.reads == 2:  # the greeting read, then the first batch's first line
                raise Interrupted
            return proc.stdout.readline()

    batch = BatchShell(send, CutShort(), proc.stdin.close)
    try:
        with pytest.raises(Interrupted):
            batch.run(["echo one"])
        assert batch.closed
        assert batch.run(["echo two"]) is None
    finally:
        proc.kill()
        proc.wait()


def test_a_broken_command_fails_its_batch_and_the_shell_goes_on(shell):
    batch, _ = shell
    assert batch.run(["echo before", "( unbalanced"]) is None
    assert not batch.closed
    assert batch.run(["echo after"]) == [(0, ["after"])]


def test_a_shell_that_ended_answers_nothing_and_is_closed(shell):
    batch, proc = shell
    proc.kill()
    proc.wait()
    assert batch.run(["echo hello"]) is None
    assert batch.closed
    assert batch.run(["echo hello"]) is None


def test_a_shell_that_prints_before_its_first_batch_is_not_used():
    """A login script that prints would pass for the first fact's output."""
    batch, proc = start(["sh", "-c", "echo 'Welcome!'; exec sh"])
    try:
        assert batch.run(["echo hello"]) is None
        assert batch.closed
    finally:
        proc.kill()
        proc.wait()


def test_no_process_of_the_host_sees_the_frame_secret(shell):
    """An attacker on the host who could read the secret could forge a fact's frame: it is
    on no process's command line or environment while the shell runs a batch."""
    batch, _ = shell
    spy = (
        "for p in /proc/[0-9]*; do tr '\\0' ' ' < $p/cmdline 2>/dev/null; echo;"
        " tr '\\0' '\\n' < $p/environ 2>/dev/null; done; true"  # (processes come and go)
    )
    [(status, lines)] = batch.run([spy])
    assert status == 0 and lines
    assert not [line for line in lines if batch.secret in line]
