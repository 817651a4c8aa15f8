"""Many file facts of a batch answered by one command each kind (deploys/speed/factcache.py).

pyinfra's file facts run a program per path: ``stat`` for File, Directory, Link and
Socket, ``sha1sum``/``sha256sum`` for Sha1File and Sha256File, each inside two subshells.
On a run that changes nothing they are some 45 of a host's 55 fact commands and most of
the CPU the run costs the host. A batch holding several of one kind gets one command
instead: shell builtins test which paths exist (as the facts' own commands do), then one
``stat`` or hash program runs on all of those, and each fact gets the line its own command
would have printed (these programs print one line per path, in order).

Only commands that are exactly what pyinfra makes for their path are merged (each is made
again from the path and compared). If the merged command's answer does not add up (a path
that changed in between, a program missing), none of its facts is answered: each is read
with its own command.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass

from pyinfra.api import FactBase, StringCommand
from pyinfra.facts.files import LINUX_STAT_COMMAND, File, Sha1File, Sha256File


@dataclass(frozen=True)
class Kind:
    """Facts whose commands merge: the fact that makes them, where the quoted path sits
    in one, the shell test a path must pass, and the program run on those that do."""

    fact: type[FactBase]
    path_re: re.Pattern
    exists: str  # shell test, {0}: the path
    program: str  # run once on every existing path (after "--")


# the hash facts print nothing for a folder (the program fails, their "|| true" hides it)
HASHABLE = "test -e {0} && ! test -d {0}"
KINDS = (
    Kind(
        File,
        re.compile(r"^! \(test -e (.+?) \|\| test -L "),
        "test -e {0} || test -L {0}",
        LINUX_STAT_COMMAND,
    ),
    Kind(Sha1File, re.compile(r"^test -e (.+?) && \( sha1sum "), HASHABLE, "sha1sum"),
    Kind(Sha256File, re.compile(r"^test -e (.+?) && \( sha256sum "), HASHABLE, "sha256sum"),
)


def _quoted_path(kind: Kind, command: str) -> str | None:
    """The path of ``command`` as the shell word pyinfra wrote, if ``command`` is exactly
    what ``kind.fact`` makes for it."""
    match = kind.path_re.match(command)
    if match is None:
        return None
    word = match.group(1)
    try:
        (path,) = shlex.split(word)
    except ValueError:
        return None
    made = kind.fact().command(path)
    raw = made.get_raw_value() if isinstance(made, StringCommand) else made
    return word if raw == command else None


@dataclass
class Merged:
    """One command answering the facts ``items`` (of one kind, paths ``words``)."""

    kind: Kind
    items: list
    words: list[str]

    @property
    def command(self) -> str:
        """Flags (1: exists) for every path in order, then the program's lines for those
        that exist."""
        steps = "".join(
            f'if {self.kind.exists.format(word)}; then set -- "$@" {word}; f=${{f}}1;'
            f" else f=${{f}}0; fi\n"
            for word in self.words
        )
        return (
            f'set --\nf=\n{steps}echo "$f"\nif [ $# -gt 0 ]; then {self.kind.program} -- "$@"; fi'
        )

    def answers(self, status: int, lines: list[str]) -> list[list[str]] | None:
        """Each item's output lines (its path's line, none for a missing path) from the
        merged command's answer; None when it does not add up."""
        if status != 0 or not lines or len(lines[0]) != len(self.items):
            return None
        flags, found = lines[0], iter(lines[1:])
        if set(flags) - {"0", "1"} or flags.count("1") != len(lines) - 1:
            return None
        return [[next(found)] if flag == "1" else [] for flag in flags]


def merge(items: list[tuple], command_of: Callable[[tuple], str]) -> tuple[list, list]:
    """``items`` split into Merged commands (kinds with at least two facts) and the items
    left to run on their own; ``command_of(item)`` is an item's command."""
    groups: dict[Kind, list[tuple]] = {}
    rest = []
    for item in items:
        command = command_of(item)
        for kind in KINDS:
            word = _quoted_path(kind, command)
            if word is not None:
                groups.setdefault(kind, []).append((item, word))
                break
        else:
            rest.append(item)
    merged = []
    for kind, members in groups.items():
        if len(members) < 2:
            rest.extend(item for item, _ in members)
        else:
            merged.append(Merged(kind, [item for item, _ in members], [w for _, w in members]))
    return merged, rest
