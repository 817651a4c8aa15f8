"""One set of packages, the same everywhere (#31): two hosts, each deployed from settings
only. examples/notes pins Flask alone (pyproject.toml): the controller resolves the rest once
for the hosts' Python, and both venvs hold exactly that set (pip freeze alike, the set
written into the release). An app with a uv.lock pinning an older Flask than the newest
gets exactly the locked versions; a lock out of date with its pyproject.toml is refused
before the host is touched; --dry names the packages a deploy would change; a re-run
changes nothing.

Tests in this module share two hosts and run in file order."""

from __future__ import annotations

import json
import shutil

import pytest

import testbed
from testbed.pyinfra_cli import pyinfra
from tests.helpers import NOTES

SAMPLE = NOTES  # no lock, Flask pinned alone
LOCKED = {
    "app_name": "locked",
    "app_src": str(testbed.REPO / "examples/locked"),
    "app_module": "locked:create_app()",
    "server_name": "locked.test",
    "health_path": "/",
    "health_text": "locked runs Flask 3.0.3",
}
APPS = {"first": [SAMPLE], "second": [SAMPLE, LOCKED]}


def deploy(host, workdir, apps: list[dict], entry: str = "deploy.py"):
    return pyinfra([host], workdir, entry, "--data", f"apps={json.dumps(apps)}")


def freeze(host, app: str) -> list[str]:
    """What the app's live venv holds (pip freeze, lowercased), but what python3 -m venv
    puts in every venv (pip, setuptools)."""
    said = host.exec(f"/srv/{app}/current/venv/bin/pip freeze --exclude setuptools").stdout
    return sorted(line.lower().replace("_", "-") for line in said.split())


def resolved_pins(host, app: str) -> list[str]:
    """The pins of the resolved set its live release records."""
    text = host.exec(f"cat /srv/{app}/current/requirements.resolved.txt").stdout
    return sorted(line.split(" ")[0].lower() for line in text.splitlines() if "==" in line)


@pytest.fixture(scope="module")
def hosts(boot, workdir):
    first, second = boot(2)
    deploy(first, workdir, APPS["first"]).check()
    deploy(second, workdir, APPS["second"]).check()
    return first, second


def test_a_lockless_app_gets_the_same_packages_on_every_host(hosts):
    first, second = hosts
    packages = freeze(first, "notes")
    assert packages == freeze(second, "notes")
    assert "flask==3.1.3" in packages and any(p.startswith("werkzeug==") for p in packages)
    assert resolved_pins(first, "notes") == packages
    text = first.exec("cat /srv/notes/current/requirements.resolved.txt").stdout
    assert (
        text.startswith("# resolved by uv for Python 3.11 on x86_64") and "--hash=sha256:" in text
    )


def test_an_app_with_a_uv_lock_runs_exactly_the_locked_versions(hosts):
    _, second = hosts
    lock = (testbed.REPO / "examples/locked/uv.lock").read_text()
    packages = freeze(second, "locked")
    assert "flask==3.0.3" in packages  # the lock's, not the newest
    for pin in packages:
        name, version = pin.split("==")
        if name != "pyuwsgi":
            assert f'name = "{name}"\nversion = "{version}"' in lock, pin
    assert not any(p.startswith("pytest==") for p in packages)  # its dev group stays out
    page = second.exec("curl -s -H 'Host: locked.test' http://127.0.0.1/").stdout
    assert page == "locked runs Flask 3.0.3\n"


def test_a_lock_out_of_date_is_refused_before_the_host_is_touched(hosts, workdir, tmp_path):
    first, _ = hosts
    app = tmp_path / "locked"
    shutil.copytree(testbed.REPO / "examples/locked", app)
    pyproject = app / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace('"flask>=3.0,<3.1"', '"flask>=3.1"'))
    stale = {**LOCKED, "app_src": str(app)}
    run = deploy(first, workdir, [SAMPLE, stale])
    assert run.returncode != 0
    said = "not in the lock: flask >=3.1; only in the lock: flask <3.1,>=3.0"
    assert f"uv.lock does not match pyproject.toml ({said})" in run.output, run.output[-2000:]
    assert f"run `uv lock` in {app}" in run.output
    assert "Starting operation" not in run.output
    assert first.exec("test -e /srv/locked", check=False).returncode != 0


def test_a_preview_names_the_packages_a_deploy_would_change(hosts, workdir):
    first, _ = hosts
    more = [{**SAMPLE, "python_packages": ["six==1.17.0"]}]
    run = pyinfra([first], workdir, "deploy.py", "--dry", "--data", f"apps={json.dumps(more)}")
    assert "notes's packages would change: + six 1.17.0" in run.check().output


def test_a_rerun_changes_nothing(hosts, workdir):
    first, second = hosts
    assert deploy(first, workdir, APPS["first"]).check().changed == 0
    assert deploy(second, workdir, APPS["second"]).check().changed == 0
