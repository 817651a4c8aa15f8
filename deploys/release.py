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
from pyinfra.facts.files import File, Link
from pyinfra.operations import files

from deploys.converge import switch_link, upload_command
from deploys.layout import Layout
from deploys.render import FILES, digest
from deploys.settings import Settings
from deploys.shipping import archive, folder_digest
from deploys.virtualenv import venv_id

UNPACKED_MARKER = ".unpacked"

GATE_SOURCE = FILES / "release_gate.py"


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
    ``{"release": None, "workers": 0}`` when it does not answer (or before the first deploy).
    The stats socket lives in the app's own folder, so the gate reads it in a child that
    dropped root for the app's uid without exec'ing: a process the app could neither follow
    a planted path with, nor inspect (``runuser ... python3`` would be both)."""

    def command(self, gate_script: str, stats_socket: str, user: str) -> str:
        return (
            f"test -f {gate_script} && id -u {shlex.quote(user)} >/dev/null 2>&1 || exit 0;"
            f" python3 {gate_script} live --stats={shlex.quote(stats_socket)}"
            f" --user={shlex.quote(user)}"
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
        f" --sandbox={layout.sandbox} {health_args(settings)}"
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
    live = live_release(layout, settings)
    recorded = host.get_fact(ReleaseHistory, path=layout.history)
    if current and live["release"] == current and recorded and recorded[-1] == Path(current).name:
        host.noop(f"{current} is live and recorded healthy")
        return
    yield (
        f"python3 {layout.gate_script} gate --root={layout.root} --service={layout.unit_name}"
        f" --stats={layout.stats_socket} --user={shlex.quote(settings.user)}"
        f" --processes={settings.processes} --keep={settings.keep_releases}"
        f" {health_args(settings)}"
    )


def live_release(layout: Layout, settings: Settings) -> dict:
    """The LiveRelease fact of this app."""
    return host.get_fact(
        LiveRelease,
        gate_script=layout.gate_script,
        stats_socket=layout.stats_socket,
        user=settings.user,
    )


@operation()
def release_unpacked(release: str, src: Path, group: str):
    """
    Unpack the app's archive into ``release``/app, owned root:``group`` with the archive's
    modes, unless a complete one is there (releases are immutable: their id fingerprints the
    code). An interrupted unpack is redone; the archive passes only through private folders.

    + release: the release folder
    + src: the local app folder, packed by deploys/shipping.py only when needed
    + group: the app's group, the only one that may read the code
    """
    if host.get_fact(File, path=f"{release}/{UNPACKED_MARKER}"):
        host.noop(f"{release} is unpacked")
        return
    packed = f"{release}/app.tar.gz"
    folder, tarball = shlex.quote(release), shlex.quote(packed)
    yield f"rm -rf {folder}/app {folder}/app.new && install -d -m 750 {folder}/app.new"
    yield f"install -m 600 /dev/null {tarball}"
    yield upload_command(archive(src), packed)
    yield (
        f"tar -xzf {tarball} -C {folder}/app.new --no-same-owner"
        f" && chgrp -R {shlex.quote(group)} {folder}/app.new && chmod 750 {folder}/app.new"
        f" && mv {folder}/app.new {folder}/app && rm {tarball}"
        f" && touch {folder}/{UNPACKED_MARKER}"
    )


@deploy("App release")
def upload_release(settings: Settings):
    """Ship ``app_src`` as releases/<id>/app (unchanged code uploads nothing) and link the
    release to its virtualenv. Returns the upload operation."""
    layout = Layout.of(settings)
    release = layout.release(release_id(settings))
    upload = release_unpacked(
        name=f"Unpack {settings.app_src} into {release}/app",
        release=release,
        src=settings.app_path,
        group=settings.user,
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
