"""A shell kept open on the host for the fact cache's batches (deploys/speed/factcache.py).

Sending each batch on a new SSH channel costs the host more than most batches' facts do:
sshd starts the login shell, which starts sudo, which starts sh, and sudo logs the whole
batch (some 17 KB) to the journal; about 10 ms of the host's CPU a round trip. A
BatchShell starts that chain once per way of running facts (sudo or not...) and sends each
batch on its input.

- A batch is sent as one quoted word that the shell evals in a subshell with its input
  from /dev/null: a fact command can neither read the batches that follow nor break the
  shell's own parsing, change its state or end it.
- Each command runs in the subshell of a command substitution that collects its output
  (one fork: an exit trap marks the output's end, the substitution's status is the
  command's), which the shell's builtin ``printf`` prints, then a frame line: a secret of
  this shell and the status. No process a fact starts holds the channel: one that
  lingers, or a user it runs as (``runuser``) who takes a copy of its output, can only
  hold up that fact's answer, never write into a later one's.
- The deploy lock's process starts the shell of root's facts and passes it what follows
  on its channel (deploys/release/lock.py): that shell never has the lock; it is never closed,
  only no longer used, since closing its channel would let the lock go.
- The secret travels on the channel only (never on a command line, where ``ps`` would
  show it to any user of the host) and is unset before each command runs, so nothing a
  fact prints can pass for a frame. Each batch ends with an end line holding the secret
  and the batch's number.
- A shell that answers out of frame, ends, fails or whose reading is interrupted is
  closed, and its batches are read another way (a shell per batch, then fact by fact).
  What the shell itself would say on its error output goes to /dev/null.
- The shell is the host's ``sh`` (dash on Debian), whose ``printf`` is a builtin.
"""

from __future__ import annotations

import secrets
import shlex
from collections.abc import Callable

import gevent.lock
from paramiko import SSHException
from pyinfra.api import StringCommand
from pyinfra.connectors.util import make_unix_command_for_host

SECRET_VARIABLE = "flask_deploy_frame"  # the shell's variable holding the secret
# connector arguments the connector itself handles (a batchable fact has none of them set)
CONNECTION_ONLY = ("_get_pty", "_timeout", "_stdin", "_success_exit_codes")


UNKNOWN = -1  # the status of a command whose answer is not known exactly (see batch_line)


def batch_line(commands: list[str], number: int) -> str:
    """What is sent for batch ``number``: each command framed (see the module), then the
    end. Each runs in the subshell that collects its output, where an exit trap marks the
    output's end (a command substitution drops trailing newlines), so a command that exits
    gets its status and all its output too; one that takes the mark away (replaces or
    silences that subshell, or sets its own trap) is answered UNKNOWN, to be read alone."""
    steps = "".join(
        f"o=$(trap 'printf .' EXIT\nunset {SECRET_VARIABLE}\n{{\n{command}\n}}"
        " 2>/dev/null </dev/null); s=$?\n"
        f'case $o in *.) printf \'%s\\n%s %s\\n\' "${{o%.}}" "${SECRET_VARIABLE}" "$s" ;;'
        f" *) printf '\\n%s ?\\n' \"${SECRET_VARIABLE}\" ;; esac\n"
        for command in commands
    )
    return (
        f"( eval {shlex.quote(steps)} ) </dev/null\n"
        f"printf '\\n%s end %d\\n' \"${SECRET_VARIABLE}\" {number}\n"
    )


class BatchShell:
    """A shell reading batches on its input (``send``) and answering on ``stdout`` (a text
    file, read line by line as pyinfra reads a command's output)."""

    def __init__(self, send: Callable[[str], None], stdout, close: Callable[[], None]):
        self._send, self._stdout, self._close = send, stdout, close
        self.secret = secrets.token_hex(16)
        self.closed = False
        self._turn = gevent.lock.Semaphore()  # one batch at a time on the shell
        self._greeted = False  # whether its first line, before any batch, was read
        self._batches = 0
        self._call(  # its own errors (a broken batch) unread would fill the channel's window
            send,
            f"exec 2>/dev/null\n{SECRET_VARIABLE}={self.secret}\n"
            f"printf '%s ready\\n' \"${SECRET_VARIABLE}\"\n",
        )

    def run(self, commands: list[str]) -> list[tuple[int, list[str]]] | None:
        """Each command's exit status and output lines (as pyinfra would have them); None
        when the shell is closed or the batch did not answer in frame."""
        with self._turn:
            self._batches += 1
            if self.closed or not self._call(self._send, batch_line(commands, self._batches)):
                return None
            results = None
            try:
                if self._greeted or self._read_greeting():
                    results = self._read_batch()
            except (OSError, EOFError, UnicodeDecodeError, SSHException):
                pass
            finally:
                if results is None:  # also when interrupted: where its answers end is unknown
                    self.close()
            return results if results is not None and len(results) == len(commands) else None

    def _read_greeting(self) -> bool:
        """Whether the shell's first line is its ready line: anything before it (a login
        script that prints) would pass for the first fact's output."""
        self._greeted = self._stdout.readline() == f"{self.secret} ready\n"
        return self._greeted

    def _read_batch(self) -> list[tuple[int, list[str]]] | None:
        """The frames up to the batch's end line; None if the shell ended or answered out
        of frame (then where the next batch would start is unknown)."""
        frame, end = f"{self.secret} ", f"{self.secret} end {self._batches}"
        results: list[tuple[int, list[str]]] = []
        output: list[str] = []
        while line := self._stdout.readline():
            line = line.removesuffix("\n")
            if line == end:
                return results if output == [""] else None
            status = line[len(frame) :] if line.startswith(frame) else ""
            if status.isdigit() or status == "?":
                if output and output[-1] == "":  # the newline before the frame
                    output.pop()
                results.append((int(status) if status != "?" else UNKNOWN, output))
                output = []
            else:
                output.append(line)
        return None

    def _call(self, method: Callable, *args) -> bool:
        try:
            method(*args)
            return True
        except (OSError, EOFError, SSHException):
            self.close()
            return False

    def close(self) -> None:
        """Close the shell's channel (the shell ends at the end of its input)."""
        if not self.closed:
            self.closed = True
            try:
                self._close()
            except (OSError, EOFError, SSHException):
                pass


def open_channel(host, state, arguments: dict, script: str = "sh"):
    """An SSH channel of ``host`` running ``script`` the way pyinfra runs a fact with these
    connector ``arguments`` (sudo, user, environment...); None for other connectors, su, and
    with a sudo password (pyinfra's askpass helpers)."""
    client = getattr(host.connector, "client", None)
    if client is None or arguments.get("_su_user"):
        return None
    if arguments.get("_sudo_password") or host.connector_data.get("prompted_sudo_password"):
        return None
    running = {k: v for k, v in arguments.items() if k not in CONNECTION_ONLY}
    command = make_unix_command_for_host(state, host, StringCommand(script), **running)
    try:
        channel = client.get_transport().open_session()
        channel.exec_command(command.get_raw_value())
    except (OSError, EOFError, SSHException, AttributeError):
        return None
    return channel


def open_over_ssh(host, state, arguments: dict) -> BatchShell | None:
    """A BatchShell on ``host``'s SSH connection that runs its batches the way pyinfra runs
    a fact with these connector ``arguments``; None where open_channel gives no channel."""
    channel = open_channel(host, state, arguments)
    return None if channel is None else on_channel(channel, channel.makefile("r"))


def on_channel(channel, stdout, keep_open: bool = False) -> BatchShell:
    """A BatchShell of the shell reading ``channel`` (its output: the text file ``stdout``).
    ``keep_open``: closing the shell leaves the channel open (its shell holds a lock that
    lasts as long as the connection); the shell just answers nothing more."""
    close = (lambda: None) if keep_open else channel.close
    return BatchShell(lambda text: channel.sendall(text.encode()), stdout, close)
