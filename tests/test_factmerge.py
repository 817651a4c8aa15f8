"""File facts of one kind answered by one command (deploys/speed/factmerge.py), run by a real
sh on real files: each fact gets exactly what its own command prints."""

from __future__ import annotations

import os
import subprocess

import pytest
from pyinfra.facts.files import Directory, File, Link, Sha1File, Sha256File

from deploys.speed import factmerge


def sh(command: str) -> tuple[int, list[str]]:
    out = subprocess.run(["sh", "-c", command], capture_output=True, text=True)
    return out.returncode, out.stdout.splitlines()


@pytest.fixture
def paths(tmp_path):
    """Every shape of path a fact meets: files with awkward names, a folder, links (one
    dangling), a missing path, one under ~."""
    names = ["plain", "with space", "it's", "dir", "link", "dangling", "missing", "$(nope)"]
    found = [str(tmp_path / name) for name in names]
    for path in (found[0], found[1], found[2], found[7]):
        with open(path, "w") as f:
            f.write(path)
    os.mkdir(found[3])
    os.symlink(found[0], found[4])
    os.symlink(tmp_path / "nowhere", found[5])
    return [*found, "~/.flask-deploy-test-missing x"]


def items_of(fact, paths):
    return [((fact().command(path).get_raw_value(), ()), None, {}) for path in paths]


@pytest.mark.parametrize("fact", [File, Sha1File, Sha256File])
def test_every_fact_of_a_kind_gets_what_its_own_command_prints(fact, paths):
    items = items_of(fact, paths)
    merged, alone = factmerge.merge(items, command_of=lambda item: item[0][0])
    assert alone == [] and len(merged) == 1 and merged[0].items == items
    answers = merged[0].answers(*sh(merged[0].command))
    assert answers == [sh(item[0][0])[1] for item in items]


def test_the_merged_answers_give_the_facts_pyinfra_would(paths):
    """File, Directory and Link share a command: one answer, each fact's own view."""
    merged, _ = factmerge.merge(items_of(File, paths), command_of=lambda item: item[0][0])
    answers = merged[0].answers(*sh(merged[0].command))
    for fact in (File, Directory, Link):
        for path, lines in zip(paths, answers, strict=True):
            alone = sh(fact().command(path).get_raw_value())[1]
            assert fact().process(lines) == fact().process(alone) if alone else not lines


def test_an_answer_that_does_not_add_up_answers_nothing(paths):
    merged, _ = factmerge.merge(items_of(File, paths), command_of=lambda item: item[0][0])
    status, lines = sh(merged[0].command)
    assert merged[0].answers(status, lines[:-1]) is None  # a path gone between test and stat
    assert merged[0].answers(1, lines) is None  # the program failed
    assert merged[0].answers(0, [lines[0][:-1], *lines[1:]]) is None
    assert merged[0].answers(0, []) is None


def test_only_pyinfras_own_commands_of_a_kind_and_two_of_them_merge(paths):
    own = items_of(File, paths[:2])
    lookalike = [(("! (test -e /a || test -L /b ) || ( stat /a )", ()), None, {})]
    lone_hash = items_of(Sha1File, paths[:1])
    other = [(("dpkg -l", ()), None, {})]
    merged, alone = factmerge.merge(
        own + lookalike + lone_hash + other, command_of=lambda item: item[0][0]
    )
    assert [m.items for m in merged] == [own]
    assert sorted(item[0][0] for item in alone) == sorted(
        item[0][0] for item in lookalike + lone_hash + other
    )
