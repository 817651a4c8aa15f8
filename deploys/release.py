"""App releases: upload, pre-flight checks, atomic switch and a health gate with automatic
switch-back, plus the facts rollback and the verifier read.

A release is ``/srv/<app>/releases/<id>/`` with the code in ``app/`` and a ``venv`` link to
its virtualenv; ``id`` fingerprints both, so unchanged code and requirements create nothing.
The checks themselves run on the host (files/release_gate.py, standard library only).
"""

from __future__ import annotations

import shlex
from pathlib import Path

from pyinfra import host
from pyinfra.api import FactBase, deploy, operation
from pyinfra.facts.files import Link
from pyinfra.operations import files

from deploys.converge import switch_link
from deploys.layout import Layout
from deploys.render import SKIPPED_NAMES, SKIPPED_SUFFIXES, digest, folder_digest
from deploys.settings import Settings
from deploys.virtualenv import venv_id

GATE_SOURCE = Path(__file__).resolve().parent.parent / "files" / "release_gate.py"


def release_id(settings: Settings) -> str:
    """The release id: a fingerprint of the app's shipped files and its virtualenv."""
    return digest(folder_digest(settings.app_path), venv_id(settings))


class ReleaseHistory(FactBase):
    """Ids of the releases that went live healthy, oldest first (``[]`` before any)."""

    def command(self, path: str) -> str:
        return f"cat {shlex.quote(path)} 2>/dev/null || true"

    @staticmethod
    def default():
        return []

    def process(self, output):
        return [line.strip() for line in output if line.strip()]


class LiveRelease(FactBase):
    """The release uWSGI really runs, from its stats server (the master's working directory is
    the release's resolved ``app`` folder): ``{"release": dir, "workers": count}``, or
    ``{"release": None, "workers": 0}`` when it does not answer (or before the first deploy)."""

    def command(self, gate_script: str, stats_socket: str) -> str:
        return (
            f"test -f {gate_script} || exit 0;"
            f" python3 {gate_script} live --stats={shlex.quote(stats_socket)}"
        )

    @staticmethod
    def default():
        return {"release": None, "workers": 0}

    def process(self, output):
        if not output or not output[0].strip():
            return self.default()
        release, workers = output[0].split()
        return {"release": release, "workers": int(workers)}


def health_args(settings: Settings) -> str:
    """The health check's arguments for release_gate.py."""
    server_name = settings.server_name[0]
    return " ".join(
        shlex.quote(arg)
        for arg in (
            f"--path={settings.health_path}",
            f"--host-header={'localhost' if server_name == '_' else server_name}",
            f"--expect={settings.expected_text}",
            f"--timeout={settings.health_timeout}",
        )
    )


@operation()
def release_checked(layout: Layout, release: str, settings: Settings):
    """
    Before ``release`` goes live: it must import and answer its health path from a throw-away
    uWSGI. Nothing runs when it is live already.

    + layout, release, settings: where, which release, and its module, user and health path
    """
    link = host.get_fact(Link, path=layout.current)
    if link and link.get("link_target") == release:
        host.noop(f"{release} is live already")
        return
    yield (
        f"python3 {layout.gate_script} check --release={shlex.quote(release)}"
        f" --module={shlex.quote(settings.app_module)} --user={shlex.quote(settings.user)}"
        f" --env-file={layout.env_file} {health_args(settings)}"
    )


@operation()
def release_gated(layout: Layout, settings: Settings):
    """
    Make uWSGI serve the release ``current`` points to and require a healthy answer through
    nginx; on failure switch back to the previous healthy release and fail. Records healthy
    releases and prunes all but ``keep_releases``. Nothing runs when the live release is
    current and recorded healthy.

    + layout, settings: where, and the processes, health path and keep_releases
    """
    link = host.get_fact(Link, path=layout.current) or {}
    current = link.get("link_target")
    live = host.get_fact(
        LiveRelease, gate_script=layout.gate_script, stats_socket=layout.stats_socket
    )
    recorded = host.get_fact(ReleaseHistory, path=layout.history)
    if current and live["release"] == current and recorded and recorded[-1] == Path(current).name:
        host.noop(f"{current} is live and recorded healthy")
        return
    yield (
        f"python3 {layout.gate_script} gate --root={layout.root} --service={layout.unit_name}"
        f" --stats={layout.stats_socket}"
        f" --processes={settings.processes} --keep={settings.keep_releases}"
        f" {health_args(settings)}"
    )


@deploy("App release")
def upload_release(settings: Settings):
    """Sync ``app_src`` into releases/<id>/app (unchanged code uploads nothing) and link the
    release to its virtualenv. Returns the upload operation."""
    layout = Layout.of(settings)
    release = layout.release(release_id(settings))
    upload = files.sync(
        name=f"Upload {settings.app_src} to {release}/app",
        src=str(settings.app_path),
        dest=f"{release}/app",
        user="root",
        group="root",
        mode="644",
        dir_mode="755",
        delete=True,
        exclude=[f"*{suffix}" for suffix in SKIPPED_SUFFIXES],
        exclude_dir=sorted(SKIPPED_NAMES),
    )
    files.link(
        name=f"{release}/venv links its virtualenv",
        path=f"{release}/venv",
        target=f"{layout.venvs}/{venv_id(settings)}",
    )
    return upload


@deploy("Release checks")
def install_release_gate(settings: Settings):
    """Ship release_gate.py to the host."""
    layout = Layout.of(settings)
    files.put(
        name=f"Release checks {layout.gate_script}",
        src=str(GATE_SOURCE),
        dest=layout.gate_script,
        mode="644",
    )


@deploy("Release switch")
def switch_release(settings: Settings, release: str | None = None):
    """Check the release (default: the one this deploy uploaded), then point ``current`` at it
    atomically."""
    layout = Layout.of(settings)
    release = release or layout.release(release_id(settings))
    release_checked(
        name=f"{release} imports and is healthy", layout=layout, release=release, settings=settings
    )
    switch_link(name=f"Point {layout.current} at {release}", path=layout.current, target=release)


@deploy("Release health gate")
def gate_release(settings: Settings):
    """Serve the current release and prove it healthy through nginx, or switch back."""
    release_gated(
        name="Live release is healthy through nginx", layout=Layout.of(settings), settings=settings
    )
