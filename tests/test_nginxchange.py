"""The one way nginx's configuration changes (deploys/ops/nginxchange.py): facts in and commands
out, and its swap script run by a real sh on real files, with a stand-in nginx whose test
passes or fails: on failure every file and link is back as it was."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess

import pytest
from pyinfra.api import FileUploadCommand

from deploys.ops import nginxchange
from deploys.ops.nginxchange import STAGED, nginx_change, swap_script
from tests.fakehost import commands

SITE = "/etc/nginx/sites-available/blog"
ENABLED = "/etc/nginx/sites-enabled/blog"
STAMP = "/srv/blog/state/nginx.applied"


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def test_nothing_runs_when_the_disk_matches_and_the_stamp_records_it(fake):
    record = {"files": {SITE: sha("site\n")}}
    host = fake(
        {
            ("Sha256File", f"path={SITE}"): sha("site\n"),
            ("Link", f"path={ENABLED}"): {"link_target": SITE},
            ("FileContents", f"path={STAMP}"): [json.dumps(record)],
        }
    )
    ops = commands(
        nginx_change, files={SITE: "site\n"}, links={ENABLED: SITE}, stamps={STAMP: record}
    )
    assert ops == [] and host.noops


def test_a_change_is_staged_then_swapped_tested_and_reloaded_in_one_command(fake):
    fake(
        {
            ("Sha256File", f"path={SITE}"): None,  # a new site
            ("Link", f"path={ENABLED}"): None,
            ("Link", "path=/etc/nginx/sites-enabled/old"): {"link_target": "x"},
            ("FileContents", f"path={STAMP}"): None,
        }
    )
    ops = commands(
        nginx_change,
        files={SITE: "site\n"},
        links={ENABLED: SITE, "/etc/nginx/sites-enabled/old": None},
        stamps={STAMP: {"files": {}}},
    )
    upload, owner, swap, stamp = ops
    assert isinstance(upload, FileUploadCommand) and upload.dest == SITE + STAGED
    assert owner == f"chown root:root {SITE}{STAGED} && chmod 644 {SITE}{STAGED}"
    assert f"mv -Tf {SITE}{STAGED} {SITE}" in swap
    assert "rm -f /etc/nginx/sites-enabled/old" in swap
    assert f"ln -sfn {SITE} {ENABLED}{STAGED}" in swap
    assert isinstance(stamp, FileUploadCommand) and stamp.dest == STAMP  # never echoed


def test_an_applied_disk_with_a_stale_stamp_is_tested_and_reloaded_again(fake):
    """A run interrupted after writing but before its reload heals on the next run."""
    fake({("Sha256File", f"path={SITE}"): sha("site\n"), ("FileContents", f"path={STAMP}"): None})
    ops = commands(nginx_change, files={SITE: "site\n"}, stamps={STAMP: {"files": {}}})
    swap, stamp = ops
    assert "if { true; } && out=$(nginx -t 2>&1); then" in swap  # nothing to move
    assert stamp.dest == STAMP


@pytest.fixture
def etc(tmp_path, monkeypatch):
    """A folder standing for /etc/nginx, and a stand-in nginx (its test fails while the
    file ``broken`` is there, and says so as nginx would) and systemctl on PATH."""
    bin_dir, root = tmp_path / "bin", tmp_path / "nginx"
    bin_dir.mkdir()
    root.mkdir()
    (bin_dir / "nginx").write_text(
        f'#!/bin/sh\nif [ -e {root}/broken ]; then echo "nginx: [emerg] broken" >&2; exit 1; fi\n'
    )
    (bin_dir / "systemctl").write_text(f'#!/bin/sh\necho "$@" >> {tmp_path}/reloads\n')
    for tool in ("nginx", "systemctl"):
        os.chmod(bin_dir / tool, 0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    monkeypatch.setattr(nginxchange, "BACKUP", f"{tmp_path}/backup.XXXXXX")
    return root


def snapshot(root) -> dict:
    """Every path under ``root``: file text or link target."""
    return {
        p.name: ("-> " + os.readlink(p)) if p.is_symlink() else p.read_text()
        for p in sorted(root.iterdir())
    }


def swap(root, writes: dict, removals: list, links: dict) -> subprocess.CompletedProcess:
    for name, text in writes.items():
        (root / (name + STAGED)).write_text(text)
    script = nginxchange.swap_script(
        [str(root / n) for n in writes],
        [str(root / n) for n in removals],
        {str(root / n): t for n, t in links.items()},
    )
    return subprocess.run(["sh", "-c", script], capture_output=True, text=True)


def before(root) -> dict:
    (root / "site").write_text("old site\n")
    (root / "gone").write_text("retired site\n")
    os.symlink("gone", root / "gone-enabled")
    os.symlink("elsewhere", root / "moved")
    return snapshot(root)


def test_a_passing_test_applies_every_path_and_reloads_nginx(etc):
    before(etc)
    result = swap(
        etc,
        {"site": "new site\n", "added": "new file\n"},
        ["gone", "gone-enabled"],
        {"moved": "site", "site-enabled": "site"},
    )
    assert result.returncode == 0, result.stderr
    assert snapshot(etc) == {
        "added": "new file\n",
        "moved": "-> site",
        "site": "new site\n",
        "site-enabled": "-> site",
    }
    assert (etc.parent / "reloads").read_text() == "reload-or-restart nginx\n"
    assert not list(etc.parent.glob("backup.*"))


def test_a_failing_test_puts_back_exactly_what_was_there(etc):
    was = before(etc)
    result = swap(
        etc,
        {"site": "new site\n", "broken": "makes nginx -t fail\n"},
        ["gone", "gone-enabled"],
        {"moved": "site", "site-enabled": "site"},
    )
    assert result.returncode == 1
    assert "nginx: [emerg] broken" in result.stderr and nginxchange.FAILED in result.stderr
    assert snapshot(etc) == was  # files, links, absent paths absent, nothing staged left
    assert not (etc.parent / "reloads").exists()  # never reloaded
    assert not list(etc.parent.glob("backup.*"))


def test_paths_with_spaces_and_quotes_stay_one_word(etc):
    odd = "it's a site"
    result = swap(etc, {odd: "text\n"}, [], {"link 'x'": odd})
    assert result.returncode == 0, result.stderr
    assert snapshot(etc) == {odd: "text\n", "link 'x'": f"-> {odd}"}
    nothing = subprocess.run(["sh", "-c", swap_script([], [], {})], capture_output=True)
    assert nothing.returncode == 0  # nothing to swap: tested and reloaded (a stale stamp)
    assert (etc.parent / "reloads").read_text().count("reload") == 2


def test_a_path_that_cannot_be_put_in_place_is_refused_and_everything_put_back(etc):
    """A folder where a site should be (root's doing, not the app's): nothing is half
    changed, the folder and its content stay, nginx is not reloaded."""
    was = before(etc)
    (etc / "folder").mkdir()
    (etc / "folder" / "inside").write_text("kept\n")
    result = swap(etc, {"site": "new site\n", "folder": "a file\n"}, ["gone"], {"moved": "site"})
    assert result.returncode == 1
    assert "a path could not be put in place" in result.stderr
    assert (etc / "folder").is_dir() and (etc / "folder" / "inside").read_text() == "kept\n"
    (etc / "folder" / "inside").unlink()
    (etc / "folder").rmdir()
    assert snapshot(etc) == was
    assert not (etc.parent / "reloads").exists()
    assert not list(etc.parent.glob("backup.*")) and not list(etc.glob(f"*{STAGED}"))
