"""Two costs of pyinfra 3.10's own bookkeeping, taken away without changing what it does.

Profiled on a run that changes nothing, pyinfra spends more of its time on these than on
the deploy itself, and both grow with each host and operation:

- Every fact read and operation works out its global arguments (``_sudo``...) from the
  type hints of one TypedDict, which ``all_global_arguments`` evaluates anew each time
  (``typing.get_type_hints``: a millisecond a call, over 1,400 calls for eight hosts). The
  hints never change, so they are evaluated once.
- Every operation orders itself by the line numbers of its call stack, read with
  ``inspect.stack``, which also finds the module and source of every frame; for the deploy
  file, which pyinfra runs without making it a module, that means scanning every loaded
  module (a millisecond an operation and host). Walking the frames gives the same numbers.
"""

from __future__ import annotations

import functools
import importlib
import sys
from collections.abc import Callable

import pyinfra
from pyinfra.api import arguments
from pyinfra.api.util import PYINFRA_INSTALL_DIR

# the module, not the operation decorator that pyinfra.api exports under the same name
operation_module = importlib.import_module("pyinfra.api.operation")


def cache_global_arguments() -> None:
    """Evaluate pyinfra's global argument hints once (they are constant)."""
    if not hasattr(arguments.all_global_arguments, "cache_info"):
        arguments.all_global_arguments = functools.cache(arguments.all_global_arguments)


def order_from_frames(state, offset: Callable[[], float] = lambda: 0.0) -> list:
    """pyinfra.api.util.get_operation_order_from_stack, from the frames themselves: the line
    numbers of the calls that led to an operation, from the deploy file's down, pyinfra's
    own left out; ``offset()`` is added to the first (the deploy file's number)."""
    frames = []
    frame = sys._getframe(0)  # as pyinfra's, which counts its own frame (then leaves it out)
    while frame is not None:
        frames.append(frame)
        frame = frame.f_back
    frames.reverse()
    i = 0
    if state.current_deploy_filename:
        for i, frame in enumerate(frames):  # noqa: B007 (as pyinfra: the last one if absent)
            if frame.f_code.co_filename == state.current_deploy_filename:
                break
    line_numbers = [state.current_op_file_number + offset()] if pyinfra.is_cli else []
    for frame in frames[i:]:
        code = frame.f_code
        if not code.co_filename.startswith(PYINFRA_INSTALL_DIR) and code is not OWN_CODE:
            line_numbers.append(frame.f_lineno)
    return line_numbers


OWN_CODE = order_from_frames.__code__


def order_without_inspect(offset: Callable[[], float]) -> None:
    """Have operations order themselves with ``order_from_frames``, ``offset()`` added to
    the deploy file's number (see context.in_turn)."""
    operation_module.get_operation_order_from_stack = functools.partial(
        order_from_frames, offset=offset
    )
