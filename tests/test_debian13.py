"""The core on Debian 13 (trixie) as well: a fresh host converges, a re-run changes nothing,
verify passes (the full suite runs on Debian 12)."""

from __future__ import annotations

import time

import pytest

import testbed
from testbed.pyinfra_cli import pyinfra


@pytest.fixture(scope="module")
def trixie(base_image):  # base_image: Docker must answer, and this is an integration test
    hosts = testbed.boot(1, prefix="test-debian13", debian="13")
    yield hosts[0]
    testbed.destroy(hosts)


def test_debian_13_converges_idempotently_and_verifies(trixie, workdir):
    assert "13" in trixie.exec("cat /etc/debian_version").stdout.split(".")[0]
    started = time.monotonic()
    pyinfra([trixie], workdir).check()
    fresh = time.monotonic() - started
    again = pyinfra([trixie], workdir).check()
    assert again.changed == 0, again.changed_ops()
    verify = pyinfra([trixie], workdir, "verify.py")
    assert verify.returncode == 0, verify.output[-3000:]
    print(f"\n[debian13] fresh converge {fresh:.1f} s; re-run: 0 changes; verify: all checks pass")
