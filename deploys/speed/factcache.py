"""Facts in a few round trips instead of one each.

pyinfra 3 reads every fact with its own command over SSH (``sudo -H -n sh -c ...``): some 70
per app on a run that changes nothing, each a round trip and a sudo on the host. A host's
``FactCache`` keeps each answer until anything else runs on the host (a command of an
operation, an upload), and before an operation reads its first fact it *looks ahead*: it
runs the generators of that operation and the ones after it on the answers it has, notes
every fact they still want, reads those in one batch (one shell running each fact command
in turn, its output framed) and goes on until they want nothing more or one of them would
change the host. A run that changes nothing reads all its operations' facts in about three
round trips; after a change the look-ahead covers a few operations, more while they go by
unchanged.

The answers are exactly the fact commands' own: a fact command that fails, or one that must
run in another shell, is read on its own as before.
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Callable, Iterable
from contextlib import contextmanager

import gevent
from paramiko import SSHException
from pyinfra.api import ShortFactBase, StringCommand
from pyinfra.api.arguments import CONNECTOR_ARGUMENT_KEYS, pop_global_arguments
from pyinfra.connectors.util import CommandOutput, OutputLine
from pyinfra.context import ContextObject, ctx_host

from deploys.speed import factmerge
from deploys.speed.batchshell import BatchShell, on_channel, open_channel, open_over_ssh

LOOK_AHEAD_ROUNDS = 8  # batches per look-ahead: an operation reading facts one after another
FIRST_WINDOW = 2  # operations looked ahead to after the host changed (doubling from there)
BATCH_BYTES = 64_000  # of fact commands per batch (one argument of sh -c: at most 128 KiB)
# Each fact command runs in a subshell; its output lines are printed after a space, then its
# exit status (passed on through descriptor 3) after "=", so no output of a fact can pass
# for the frame. Nothing is written to a file: a full /tmp would cut answers short. (Side by
# side they take no less time: the host's CPU is what they wait for.)
BATCH_START = (
    "exec 4>&1\n"
    'framed() { while IFS= read -r l || [ -n "$l" ]; do printf \' %s\\n\' "$l"; done; }\n'
)
BATCH_STEP = (
    "r=$({{ {{ (\n{command}\n) 2>/dev/null </dev/null 3>&- 4>&-; echo $? >&3; }}"
    " | framed >&4; }} 3>&1)\n"
    'echo "=$r"\n'
)
MAX_AGE = 10.0  # seconds an answer is trusted (a host may wait long for its turn in a rolling run)
# shells kept open per host (the SSH user's, root's): each holds one of the connection's
# sessions, of which sshd allows 10 by default (MaxSessions), pyinfra's commands included
MAX_SHELLS = 2


# connector arguments that do not change how a fact command runs: the temporary folder
# (only for a sudo password's helper, which a batch shell never has) and the retries of
# operations' commands
NOT_HOW_FACTS_RUN = ("_temp_dir", "_retries", "_retry_delay", "_retry_until")
# what pyinfra's host holds of the operation running (its generator sets and clears them)
CURRENT_OP = ("in_op", "current_op_hash", "current_op_global_arguments", "current_op_deploy_data")
_UNKNOWN = object()  # no value worked out
MISSING_COMMAND_MARKER = "##PYINFRA_NOCMD##"  # what pyinfra's guard prints without the command


class _NotRead(BaseException):
    """A fact the look-ahead has no answer for yet: it stops that operation's generator
    (a BaseException, so that an operation's ``except Exception`` cannot swallow it)."""


def batch_script(commands: Iterable[str]) -> str:
    """One shell script running each fact command in turn, its output framed for
    ``split_batch``."""
    return BATCH_START + "".join(BATCH_STEP.format(command=command) for command in commands)


def split_batch(lines: list[str], expected: int) -> list[tuple[int, list[str]]] | None:
    """Each command's exit status and output lines from a ``batch_script``'s output; None
    unless it holds exactly ``expected`` well-framed results."""
    results: list[tuple[int, list[str]]] = []
    output: list[str] = []
    for line in lines:
        if line.startswith(" "):
            output.append(line[1:])
        elif line.startswith("=") and line[1:].isdigit():
            results.append((int(line[1:]), output))
            output = []
        else:
            return None
    return results if len(results) == expected and not output else None


def _key(command, arguments: dict) -> tuple:
    """What identifies a fact's answer: its command and the way it runs (sudo, user...; not
    what only pyinfra's operations use, such as an upload folder)."""
    raw = command.get_raw_value() if hasattr(command, "get_raw_value") else str(command)
    running = ((n, repr(v)) for n, v in arguments.items() if n not in NOT_HOW_FACTS_RUN)
    return raw, tuple(sorted(running))


def _batchable(arguments: dict) -> bool:
    """Whether a fact command may run inside a batch: in sh, with nothing a batch would
    change the meaning of (its own input, a terminal, a timeout, other exit codes)."""
    return (
        arguments.get("_shell_executable") in (None, "sh")
        and not arguments.get("_stdin")
        and not arguments.get("_get_pty")
        and arguments.get("_timeout") is None
        and arguments.get("_success_exit_codes") in (None, [0], (0,))
    )


class FactCache:
    """One host's fact answers, valid until something else runs on the host."""

    def __init__(self, host, state):
        self.host, self.state = host, state
        connector = host.connector
        self._run = connector.run_shell_command
        self._get_fact = host.get_fact
        self.answers: dict[tuple, tuple[bool, CommandOutput]] = {}  # command -> its output
        self.values: dict[str, object] = {}  # fact read in an operation -> its value
        self.unanswered: set = set()  # greenlets whose fact command failed: value not kept
        self.epoch = 0  # counts the times the host may have changed
        self.order: list[str] = []  # this host's operations, in the order they run
        self.looked_until = -1  # the last operation (index in order) looked ahead to
        self.window: int | None = None  # operations a look-ahead covers (None: all of them)
        self.since = 0.0  # when the oldest answer was read
        self.executing = False  # whether the answers were read while operations ran
        self.wanted: dict[tuple, tuple] | None = None  # while looking ahead: facts to read
        self.tried: set[tuple] = set()  # batched this epoch: a failed one is read on its own
        self.readers: dict = {}  # greenlet -> value keys of the host.get_fact calls it is in
        self.commands: dict[str, tuple] = {}  # value key -> its command's key
        self.shells: dict[tuple, BatchShell | None] = {}  # way of running -> its batch shell
        host.get_fact = self.get_fact
        connector.run_shell_command = self.run_shell_command
        for name in ("put_file", "get_file", "rsync"):
            if hasattr(connector, name):
                setattr(connector, name, self._forgetting(getattr(connector, name)))

    def forget(self, changed: bool = True) -> None:
        """Drop every answer: the host may have changed (then look ahead a short window), or
        the answers are too old or from before execution started."""
        self.answers.clear()
        self.values.clear()
        self.tried.clear()
        self.epoch += 1
        self.looked_until = -1
        self.window = FIRST_WINDOW if changed else None

    def _remember(self, key: tuple, answer: tuple) -> None:
        if not self.answers:
            self.since = time.monotonic()
        self.answers[key] = answer

    def _forgetting(self, method: Callable) -> Callable:
        def call(*args, **kwargs):
            self.forget()
            try:
                return method(*args, **kwargs)
            finally:
                self.forget()  # and what another greenlet read meanwhile

        return call

    def get_fact(self, cls, *args, **kwargs):
        """``host.get_fact``, answered from the cache where it can be (see the module)."""
        reading_host = ctx_host.get()
        if reading_host is not None and reading_host is not self.host:
            return self._read_for_another_host(cls, *args, **kwargs)
        started = self.state.is_executing and not self.executing  # (after pyinfra's prompt)
        if self.answers and (started or time.monotonic() - self.since > MAX_AGE):
            self.forget(changed=False)
        self.executing = self.state.is_executing
        if self.state.is_executing and self.host.current_op_hash and self.wanted is None:
            position = self._position(self.host.current_op_hash)
            if position is not None and position > self.looked_until:
                self.look_ahead(position)
        key = self._value_key(cls, args, kwargs)
        if key in self.values:
            return copy.deepcopy(self.values[key])
        value = self._value_from_answer(cls, key, args, kwargs)
        if value is _UNKNOWN:
            epoch = self.epoch
            value, answered = self._read_through_pyinfra(key, cls, args, kwargs)
            if not answered or epoch != self.epoch:
                return value
        if key is not None:
            self.values[key] = copy.deepcopy(value)
        return value

    def _read_for_another_host(self, cls, *args, **kwargs):
        """A fact read while another host's operations run (a load balancer asking its app
        servers where they stand): read as pyinfra would, through this host's shell, without
        looking ahead or keeping a value (the host's own operations may be half-way)."""
        return self._read_through_pyinfra(None, cls, args, kwargs)[0]

    def _read_through_pyinfra(self, key: str | None, cls, args: tuple, kwargs: dict):
        """pyinfra's get_fact, its command noted as the one of the value ``key`` (None: a
        value not kept); the value, and whether its command answered."""
        reader = gevent.getcurrent()
        reading = self.readers.setdefault(reader, [])
        reading.append(key)
        try:
            value = self._get_fact(cls, *args, **kwargs)
        finally:
            reading.pop()
            if not reading:
                del self.readers[reader]
        answered = reader not in self.unanswered
        if reader not in self.readers:
            self.unanswered.discard(reader)
        return value, answered

    def _value_from_answer(self, cls, key: str | None, args: tuple, kwargs: dict):
        """A fact's value worked out from its command's answer (as pyinfra's get_fact does on
        success), without pyinfra's cost of making the command again; _UNKNOWN when there is
        no answer yet or pyinfra must judge it (a missing command, an error)."""
        command = self.commands.get(key) if key is not None else None
        answer = self.answers.get(command) if command is not None else None
        if answer is None or issubclass(cls, ShortFactBase):
            return _UNKNOWN
        lines = answer[1].stdout_lines
        if lines == [MISSING_COMMAND_MARKER]:
            return _UNKNOWN
        fact = cls()
        try:  # command() first: some facts keep what it was given for process()
            fact.command(*args, **{k: v for k, v in kwargs.items() if not k.startswith("_")})
            return fact.process(lines) if lines else fact.default()
        except Exception:
            return _UNKNOWN

    def _value_key(self, cls, args: tuple, kwargs: dict) -> str | None:
        """What identifies a fact's value inside an operation: the fact, its arguments and the
        way the operation runs commands (sudo, user...), all of which pyinfra's get_fact would
        work out again at some cost. None outside operations (a host setting may change)."""
        arguments = self.host.current_op_global_arguments
        if not arguments:
            return None
        running = [arguments.get(name) for name in CONNECTOR_ARGUMENT_KEYS]
        return repr((cls.__module__, cls.__qualname__, args, sorted(kwargs.items()), running))

    def run_shell_command(self, command, print_output=False, print_input=False, **arguments):
        """The connector's, for fact commands from the cache; anything else forgets it."""
        printing = {"print_output": print_output, "print_input": print_input}
        reading = self.readers.get(gevent.getcurrent())
        if not reading:
            return self._forgetting(self._run)(command, **printing, **arguments)
        key = _key(command, arguments)
        if reading[-1] is not None:
            self.commands[reading[-1]] = key  # the same fact always makes the same command
        if key in self.answers:
            return self.answers[key]
        if self.wanted is not None:  # looking ahead: nothing is read until the batch
            if _batchable(arguments) and key not in self.tried:
                self.wanted.setdefault(key, (command, arguments))
            raise _NotRead
        epoch = self.epoch
        answer = None
        if _batchable(arguments) and key not in self.tried and not (print_output or print_input):
            answer = self._read_alone(key, arguments)
        status, output = answer or self._run(command, **printing, **arguments)
        if not status:
            self.unanswered.add(gevent.getcurrent())
        elif epoch == self.epoch:
            self._remember(key, (status, output))
        return status, output

    def read_together(self, requests: list[tuple]) -> list:
        """The values of several facts, ``(fact class, {argument: value})`` each, read in
        one batch (for the deploy's own code, which asks its facts one after another)."""
        with self._collecting() as wanted:
            for cls, kwargs in requests:
                try:
                    self.get_fact(cls, **kwargs)
                except _NotRead:
                    pass
        if wanted:
            self.read_batch(wanted)
        return [self.get_fact(cls, **kwargs) for cls, kwargs in requests]

    @contextmanager
    def _collecting(self):
        """While inside, fact reads answer nothing new: they note the commands to batch in
        the dict this yields (and raise _NotRead)."""
        wanted: dict[tuple, tuple] = {}
        self.wanted = wanted
        try:
            yield wanted
        finally:
            self.wanted = None

    def _position(self, op_hash: str) -> int | None:
        """Where an operation comes in this host's run (None: one added as the run went)."""
        if op_hash not in self.order:
            ops = self.state.ops[self.host]
            self.order = [op for op in self.state.get_op_order() if op in ops]
        return self.order.index(op_hash) if op_hash in self.order else None

    def look_ahead(self, position: int) -> None:
        """Read, in a few batches, the facts the operation at ``position`` and the ones after
        it want, up to the first that would change the host. Until the host first changes,
        that is every operation; after a change, a window that starts small and doubles
        while operations go by unchanged (a run that changes much must not read the facts
        of every later operation after each change, only to drop them at the next)."""
        host = self.host
        ops = self.state.ops[host]
        end = len(self.order) if self.window is None else position + self.window
        self.looked_until = end - 1
        if self.window is not None:
            self.window *= 2
        pending = [ops[op].command_generator for op in self.order[position:end]]
        saved = {name: getattr(host, name) for name in CURRENT_OP}  # the generators reset them
        for _ in range(LOOK_AHEAD_ROUNDS):
            blocked = []
            try:
                with self._collecting() as wanted:
                    for generator in pending:
                        outcome = self._evaluate(generator)
                        if outcome is _NotRead:
                            blocked.append(generator)
                        elif outcome:  # it changes the host: what comes after is read later
                            break
            finally:
                for name, value in saved.items():
                    setattr(host, name, value)
            if not wanted:
                return
            self.read_batch(wanted)
            pending = blocked

    def _evaluate(self, generator: Callable):
        """Whether an operation's generator yields a command on the answers so far; _NotRead
        when it wants a fact not read yet; None when it cannot be told ahead (an ``_if`` on
        an operation that has not run, say). Its messages are silenced: it runs again."""
        silenced = logging.root.manager.disable
        logging.disable(logging.CRITICAL)
        try:
            for _command in generator():
                return True
            return False
        except _NotRead:
            return _NotRead
        except Exception:
            return None
        finally:
            logging.disable(silenced)

    def read_batch(self, wanted: dict[tuple, tuple]) -> None:
        """Read the ``wanted`` fact commands (batchable ones: see run_shell_command), one
        batch per way of running them."""
        groups: dict[tuple, list] = {}
        for key, (command, arguments) in wanted.items():
            groups.setdefault(key[1], []).append((key, command, arguments))
        for items in groups.values():
            for chunk in _chunks(items):
                self._read_chunk(chunk)

    def _read_chunk(self, chunk: list) -> None:
        epoch = self.epoch
        merged, alone = factmerge.merge(chunk, command_of=lambda item: item[0][0])
        commands = [m.command for m in merged] + [key[0] for key, _, _ in alone]
        shell = self._shell(chunk[0][0][1], chunk[0][2])
        results = shell.run(commands) if shell is not None else None
        if results is None:  # no shell kept open: one for this batch
            results = self._read_in_new_shell(commands, chunk[0][2])
        if epoch != self.epoch:
            return
        self.tried.update(key for key, _, _ in chunk)  # what this misses is read on its own
        if results is None:
            return
        answered = list(zip(alone, results[len(merged) :], strict=True))
        for each, (code, lines) in zip(merged, results, strict=False):
            outputs = each.answers(code, lines)  # None: each is read on its own
            answered += zip(each.items, [(0, out) for out in outputs or []], strict=False)
        for (key, _, _), (code, lines) in answered:
            if code == 0:
                self._remember(key, (True, _stdout(lines)))

    def _read_alone(self, key: tuple, arguments: dict) -> tuple[bool, CommandOutput] | None:
        """One fact command's answer from the shell kept open (no new channel and sudo);
        None without one or when it fails (pyinfra then runs it, with its error output)."""
        shell = self._shell(key[1], arguments)
        results = shell.run([key[0]]) if shell is not None else None
        if not results or results[0][0] != 0:
            return None
        return True, _stdout(results[0][1])

    def _read_in_new_shell(self, commands: list[str], arguments: dict) -> list | None:
        try:
            status, output = self._run(StringCommand(batch_script(commands)), **arguments)
        except (TimeoutError, OSError, SSHException):
            return None  # each is read on its own, as pyinfra would
        return split_batch(output.stdout_lines, len(commands)) if status else None

    def adopt_shell(self, arguments: dict, shell: BatchShell) -> None:
        """Use ``shell`` for the batches of facts run with these connector ``arguments``
        (see fact_arguments), unless such a shell was opened already."""
        self.shells.setdefault(_key("", arguments)[1], shell)

    def fact_arguments(self) -> dict:
        """The connector arguments the host's facts run with (see fact_arguments)."""
        return fact_arguments(self.host, self.state)

    def open_channel(self, arguments: dict, script: str):
        """An SSH channel of the host running ``script`` the way facts run with these
        connector ``arguments``; None where batchshell.open_channel gives none."""
        return open_channel(self.host, self.state, arguments, script)

    def adopt_channel(self, arguments: dict, channel, stdout) -> None:
        """Use the shell reading ``channel`` (its output: ``stdout``, read up to the shell)
        for the batches of facts run with these ``arguments``; the channel is never closed
        (it holds the deploy lock, see deploys/release/lock.py)."""
        self.adopt_shell(arguments, on_channel(channel, stdout, keep_open=True))

    def _shell(self, running: tuple, arguments: dict) -> BatchShell | None:
        """The shell kept open for batches run this way (``running``: the key's part), opened
        at its first batch, at most MAX_SHELLS; None where there is none (see
        batchshell.open_over_ssh)."""
        if running not in self.shells and len(self.shells) < MAX_SHELLS:
            self.shells[running] = open_over_ssh(self.host, self.state, dict(arguments))
        shell = self.shells.get(running)
        return shell if shell is not None and not shell.closed else None


def fact_arguments(host, state) -> dict:
    """The connector arguments pyinfra runs ``host``'s facts with outside operations (and
    inside those that set none: sudo and the like come from the host's data)."""
    arguments, _ = pop_global_arguments(state, host, {})
    return {key: value for key, value in arguments.items() if key in CONNECTOR_ARGUMENT_KEYS}


def _stdout(lines: list[str]) -> CommandOutput:
    """A command's output as pyinfra's connector hands it back, from its stdout lines."""
    return CommandOutput([OutputLine("stdout", line) for line in lines])


def _chunks(items: list) -> Iterable[list]:
    """``items`` in runs whose commands fit one batch."""
    chunk: list = []
    size = 0
    for item in items:
        if chunk and size + len(item[0][0]) > BATCH_BYTES:
            yield chunk
            chunk, size = [], 0
        chunk.append(item)
        size += len(item[0][0])
    if chunk:
        yield chunk


def install(host, state) -> FactCache:
    """Give ``host`` a fact cache (once). ``host`` and ``state`` may be pyinfra's context
    objects (``from pyinfra import host``): the cache keeps what they stand for now, the
    host being deployed (a context object would stand for whichever host's operations read
    the fact, say a load balancer's asking its app servers)."""
    host, state = _resolved(host), _resolved(state)
    cache = getattr(host, "fact_cache", None)
    if cache is None:
        cache = host.fact_cache = FactCache(host, state)
    return cache


def _resolved(obj):
    """What a pyinfra context object stands for in this greenlet (other objects as they are)."""
    return obj._get_module() if isinstance(obj, ContextObject) else obj
