"""Commands whose output belongs in the run's output, success or not (release commands,
run.py): pyinfra shows a command's output only when it fails, or with -vvv. Output that
comes from the app or from the network is printed with its control characters escaped: it
must not drive the operator's terminal."""

from __future__ import annotations

import re

from pyinfra.api import FunctionCommand, StringCommand
from pyinfra.api.arguments import CONNECTOR_ARGUMENT_KEYS

from deploys.ops.typed import op_arguments

CONTROL_RE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f]")


def printable(line: str) -> str:
    """``line`` with control characters (but tab) escaped as \\xNN: no escape sequence
    (colours, window titles, clearing the screen) and no forged extra line reaches a
    terminal."""
    return CONTROL_RE.sub(lambda m: f"\\x{ord(m.group()):02x}", line)


def shown(command: str) -> FunctionCommand:
    """``command`` run like any other (sudo etc.), each line of its output printed with the
    host's prefix as it finishes; the operation fails when it does."""
    arguments = {
        key: value for key, value in op_arguments().items() if key in CONNECTOR_ARGUMENT_KEYS
    }
    return FunctionCommand(_run_and_print, (command, arguments), {})


def _run_and_print(state, host, command: str, arguments: dict) -> bool:
    ok, output = host.run_shell_command(StringCommand(command), print_output=False, **arguments)
    for line in output:
        host.log(printable(line.line))
    return ok
