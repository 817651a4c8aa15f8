"""The deploy on stock pyinfra, the speed layer off (deploys/speed): on a pyinfra version the
layer was not tested against (the guard's table emptied) a fresh deploy says so once and
converges; with ``--data fast_facts=false`` a second run changes nothing, reading its facts
one by one, verify.py passes, a code change goes live and rollback.py brings the previous
release back.

Tests in this module share one host and run in file order."""

from __future__ import annotations

import subprocess
import sys

import pytest

import testbed
from testbed.pyinfra_cli import TEST_INVENTORY, Run, inventory_for, pyinfra
from tests.helpers import HELLO, app_saying, body_of

BARE_HOSTS = True  # stock pyinfra converges a bare host

STOCK = ("--data", "fast_facts=false")
WARNING = "this run uses stock pyinfra (slower, same result)"
# pyinfra's CLI in a process whose speed layer knows no tested version (never in the tests'
# own process: pyinfra's CLI patches the standard library for gevent)
GUARD_REFUSES = (
    "import sys; import deploys.speed; deploys.speed.TESTED_PYINFRA = ();"
    " from pyinfra_cli.main import main; sys.argv[0] = 'pyinfra'; sys.exit(main())"
)


@pytest.fixture(scope="module")
def host(boot):
    (host,) = boot(1)
    return host


def untested_pyinfra(host, workdir, *args: str) -> Run:
    """``pyinfra TEST_INVENTORY deploy.py -y ARGS`` as GUARD_REFUSES runs it."""
    proc = subprocess.run(
        [sys.executable, "-c", GUARD_REFUSES, TEST_INVENTORY, "deploy.py", *args, "-y"],
        cwd=testbed.REPO,
        env=inventory_for([host], workdir),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=900,
    )
    return Run(proc.returncode, proc.stdout + proc.stderr, dry=False)


def test_an_untested_pyinfra_warns_once_and_converges_a_fresh_host(host, workdir):
    run = untested_pyinfra(host, workdir).check()
    assert run.output.count(WARNING) == 1, run.output[-3000:]
    assert run.changed > 20
    assert HELLO in (body_of(host) or "")


def test_a_second_run_without_the_speed_layer_changes_nothing(host, workdir):
    """No warning (turned off on purpose), every fact its own sudo (no fact cache), and the
    deploy lock taken on a channel of its own."""
    since = int(host.exec("date +%s").stdout) + 1  # the journal counts whole seconds
    host.exec("sleep 1.1")
    run = pyinfra([host], workdir, "deploy.py", *STOCK).check()
    assert run.changed == 0 and WARNING not in run.output
    log = host.exec(f"journalctl -q --since @{since} _COMM=sudo -o cat").stdout
    commands = [line for line in log.splitlines() if "COMMAND=" in line]
    assert len(commands) > 20 and any("host.lock" in line for line in commands)


def test_verify_passes_without_the_speed_layer(host, workdir):
    run = pyinfra([host], workdir, "verify.py", *STOCK)
    assert run.returncode == 0, run.output[-3000:]
    assert "verify: PASS" in run.output


def test_a_code_change_goes_live_and_rolls_back_without_the_speed_layer(host, workdir, tmp_path):
    app = app_saying(tmp_path, "Hello Stock!")
    pyinfra([host], workdir, "deploy.py", "--data", f"app_src={app}", *STOCK).check()
    assert "Hello Stock!" in (body_of(host) or "")
    pyinfra([host], workdir, "rollback.py", *STOCK).check()
    assert HELLO in (body_of(host) or "")
