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
- Working out those global arguments looks each of them up in the host's data (some 4,000
  lookups per host and run): each lookup raises and catches an exception in every layer of
  data it is not in, and merges the host's groups' data into a new dict on the way. The
  lookup tests for the key instead, and a host's groups' data are merged once (they never
  change during a run: what a deploy sets goes to another layer).
- pyinfra's file facts make their commands with ``make_formatted_string_command``, which
  splits its constant template with ``shlex`` each time (over 150 times a host and run).
  The splits are kept.
"""

from __future__ import annotations

import copy
import functools
import importlib
import shlex
import sys
from collections.abc import Callable
from types import FrameType, MappingProxyType
from typing import Any

import pyinfra
from pyinfra.api import arguments
from pyinfra.api.host import HostData
from pyinfra.api.inventory import Inventory
from pyinfra.api.util import PYINFRA_INSTALL_DIR

# the modules, not the functions that pyinfra.api exports under the same names
operation_module: Any = importlib.import_module("pyinfra.api.operation")
command_module: Any = importlib.import_module("pyinfra.api.command")


def cache_global_arguments() -> None:
    """Evaluate pyinfra's global argument hints once (they are constant)."""
    if not hasattr(arguments.all_global_arguments, "cache_info"):
        arguments.all_global_arguments = functools.cache(arguments.all_global_arguments)


def install() -> None:
    """Take every cost of the module away (once: each step checks it is done)."""
    cache_global_arguments()
    order_without_inspect()
    lighter_host_data()
    keep_command_splits()


def order_from_frames(state) -> list:
    """pyinfra.api.util.get_operation_order_from_stack, from the frames themselves: the line
    numbers of the calls that led to an operation, from the deploy file's down, pyinfra's
    own left out."""
    frames: list[FrameType] = []
    frame: FrameType | None = sys._getframe(
        0
    )  # as pyinfra's, which counts its own frame (then leaves it out)
    while frame is not None:
        frames.append(frame)
        frame = frame.f_back
    frames.reverse()
    i = 0
    if state.current_deploy_filename:
        for i, frame in enumerate(frames):  # noqa: B007 (as pyinfra: the last one if absent)
            if frame.f_code.co_filename == state.current_deploy_filename:
                break
    line_numbers = [state.current_op_file_number] if pyinfra.is_cli else []
    for frame in frames[i:]:
        code = frame.f_code
        if not code.co_filename.startswith(PYINFRA_INSTALL_DIR) and code is not OWN_CODE:
            line_numbers.append(frame.f_lineno)
    return line_numbers


OWN_CODE = order_from_frames.__code__


def order_without_inspect() -> None:
    """Have operations order themselves with ``order_from_frames``."""
    operation_module.get_operation_order_from_stack = order_from_frames


def lighter_host_data() -> None:
    """Host data looked up without exceptions, groups' data merged once (see the module)."""
    if HostData.__getattr__ is not _host_data_attribute:
        HostData.__getattr__ = _host_data_attribute  # type: ignore[method-assign]
        merged = _merged_once(Inventory.get_groups_data)
        Inventory.get_groups_data = merged  # type: ignore[method-assign]


def _host_data_attribute(self, key: str):
    """HostData.__getattr__: the first layer of data holding ``key`` (a shallow copy of its
    value, as pyinfra gives), the layers that are callables called first. A plain dict (or
    a read-only view of one) without the key is passed over without an exception; other
    mappings are asked as pyinfra asks them (a defaultdict answers every key)."""
    for data in self.datas:
        if callable(data):
            data = data()
        if type(data) in PLAIN_MAPPINGS and key not in data:
            continue
        try:
            return copy.copy(data[key])
        except KeyError:
            pass
    raise AttributeError(f"Host `{self.host}` has no data `{key}`")


PLAIN_MAPPINGS = (dict, MappingProxyType)
PYINFRA_HOST_DATA_ATTRIBUTE = HostData.__getattr__  # pyinfra's own (what the tests compare)


def _merged_once(get_groups_data: Callable) -> Callable:
    """Inventory.get_groups_data, each list of groups merged once (a read-only view: pyinfra
    never changes an inventory's group data once loaded, nor does this project)."""

    @functools.wraps(get_groups_data)
    def merged(self, groups):
        known = self.__dict__.setdefault("_merged_groups_data", {})
        key = tuple(groups)
        if key not in known:
            known[key] = MappingProxyType(get_groups_data(self, groups))
        return known[key]

    return merged


class _KeptSplits:
    """``shlex`` for pyinfra.api.command: its splits kept (a template is split again and
    again), everything else shlex's own."""

    split = staticmethod(functools.lru_cache(maxsize=1024)(lambda text: tuple(shlex.split(text))))

    def __getattr__(self, name: str):
        return getattr(shlex, name)


def keep_command_splits() -> None:
    """Keep the splits of make_formatted_string_command's templates (see the module)."""
    command_module.shlex = _KeptSplits()
