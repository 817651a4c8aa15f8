"""A host deployed by the previous version of this repository (one app, top-level settings)
is upgraded in place while it serves: the run changes only what this version adds (the
handover instance, uWSGI's graceful stop, the release checks script, nginx passing its own
scheme, a venv of the resolved set of packages and its release) without a failed request,
and the next run changes nothing."""

from __future__ import annotations

import re
import shutil
import subprocess

import testbed
from deploys.release.gate import gate_files
from deploys.stack.virtualenv import uv_home
from testbed.load import Load
from testbed.pyinfra_cli import pyinfra

BEFORE_SEVERAL_APPS = "4ca9fa8e8671e0a4cbb5ec3c3d8ca7b56a91fe7a"  # the last single-app commit

# what this version may change on such a host (systemd may have loaded the new unit on its
# own, then nothing needs a daemon-reload): a later change to the release checks or a
# template is a real change on the host too, and belongs here
UPGRADE_CHANGES = {
    *(f"Release checks | Release checks {path}" for path in gate_files()),
    "App environment | Sandbox /etc/systemd/system/myproject.service.d/sandbox.conf",  # IPC
    "Nginx site | Error log /var/log/nginx/myproject.error.log (not world-readable)",
    "uWSGI service | uWSGI ini /etc/myproject/uwsgi.ini",
    "uWSGI service | Unit /etc/systemd/system/myproject.service",  # KillMode=mixed
    "uWSGI service | systemd knows the current myproject.service",
    "uWSGI service | Unit /etc/systemd/system/myproject-handover.service",
    "uWSGI service | /etc/systemd/system/myproject-handover.service.d links the service's drop-ins",
    "uWSGI service | systemd knows the current myproject-handover.service",
    "uWSGI service | Apply changes to myproject.service",
    "Nginx site | Site /etc/nginx/sites-available/myproject: test and reload nginx",  # the
    # scheme nginx's own
    # one resolved set of packages (#31), installed by uv: a new venv, so a new release,
    # switched while serving
    f"uv | uv's requirements {uv_home()}.requirements.txt",
    "uv | Folder /var/cache/flask-deploy/uv (root only)",
    f"uv | uv in {uv_home()}",
    "Virtualenv | pip settings /etc/myproject/uv.toml",
    "Virtualenv | Requirements /srv/myproject/venvs/<id>.requirements.txt",
    "Virtualenv | Build virtualenv /srv/myproject/venvs/<id> (uv)",
    "App release | Unpack app into /srv/myproject/releases/<id>/app",
    "App release | /srv/myproject/releases/<id>/venv links its virtualenv",
    "App release | /srv/myproject/releases/<id>/requirements.resolved.txt: its packages",
    "Release pre-flight | /srv/myproject/releases/<id> passes its checks",
    "Release switch | Point /srv/myproject/current at /srv/myproject/releases/<id>",
    "Release health gate | Live release is healthy through nginx",
}


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


def test_a_host_deployed_before_several_apps_upgrades_while_it_serves(boot, workdir, tmp_path):
    (host,) = boot(1)
    old = checkout(BEFORE_SEVERAL_APPS, tmp_path / "before")
    shutil.rmtree(old / "testbed")  # the old deploy code, driven by today's test bed
    shutil.copytree(testbed.REPO / "testbed", old / "testbed")
    pyinfra([host], workdir, cwd=old).check()
    host.exec("test -e /run/flask-deploy/myproject.deploy-lock")  # the old code ran (its lock)
    with Load(host.http_port) as load:
        load.wait_for(50)
        upgraded = pyinfra([host], workdir).check()
        load.wait_for(len(load.samples) + 100)
    print(f"\n[upgrade] {load.summary()}")
    changed = {re.sub(r"\b[0-9a-f]{16}\b", "<id>", op) for op in upgraded.changed_ops()}
    assert changed <= UPGRADE_CHANGES, sorted(changed - UPGRADE_CHANGES)
    assert "uWSGI service | Apply changes to myproject.service" in changed
    assert load.failed == [], load.summary()
    again = pyinfra([host], workdir).check()
    assert again.changed == 0, again.changed_ops()
    assert pyinfra([host], workdir, "verify.py").returncode == 0
