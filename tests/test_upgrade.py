"""A host deployed by the previous version of this repository (one app, top-level settings)
is left exactly as it is by this version: a re-run after the upgrade changes nothing."""

from __future__ import annotations

import shutil
import subprocess

import testbed
from testbed.pyinfra_cli import pyinfra

# files/release_gate.py and the templates are as they were then: a later change to them is a
# real change on the host, and this test then pins the commit before it
BEFORE_SEVERAL_APPS = "4ca9fa8e8671e0a4cbb5ec3c3d8ca7b56a91fe7a"  # the last single-app commit


def checkout(commit: str, where) -> str:
    """The repository's files at ``commit`` in the folder ``where``."""
    where.mkdir()
    archive = subprocess.run(
        ["git", "-C", str(testbed.REPO), "archive", commit],
        capture_output=True,
        check=True,
    )
    subprocess.run(["tar", "-x", "-C", str(where)], input=archive.stdout, check=True)
    return where


def test_a_host_deployed_before_several_apps_needs_no_change(boot, workdir, tmp_path):
    (host,) = boot(1)
    old = checkout(BEFORE_SEVERAL_APPS, tmp_path / "before")
    shutil.rmtree(old / "testbed")  # the old deploy code, driven by today's test bed
    shutil.copytree(testbed.REPO / "testbed", old / "testbed")
    pyinfra([host], workdir, cwd=old).check()
    host.exec("test -e /run/flask-deploy/myproject.deploy-lock")  # the old code ran (its lock)
    upgraded = pyinfra([host], workdir).check()
    assert upgraded.changed == 0, upgraded.changed_ops()
    assert pyinfra([host], workdir, "verify.py").returncode == 0
