"""What a host says of an app's releases: which one ``current`` points at, the healthy
history, and what uWSGI really runs."""

from __future__ import annotations

import shlex

from pyinfra import host
from pyinfra.api import FactBase
from pyinfra.facts.files import FileContents, Link

from deploys.config.layout import Layout
from deploys.config.settings import Settings


def release_history(path: str, server=None) -> list[str]:
    """Ids of the releases that went live healthy, oldest first (``[]`` before any), on this
    host or the host ``server``."""
    lines = (server or host).get_fact(FileContents, path=path) or []
    return [line.strip() for line in lines if line.strip()]


def current_release(app_name: str, server=None) -> str:
    """The id of the release the app's ``current`` points at, on this host or the host
    ``server`` ("" before the first)."""
    link = (server or host).get_fact(Link, path=Layout(app_name).current) or {}
    return (link.get("link_target") or "").rsplit("/", 1)[-1]


class LiveRelease(FactBase):
    """The release uWSGI really runs, from its stats server (the master's working directory is
    the release's resolved ``app`` folder): ``{"release": dir, "workers": count}``, or
    ``{"release": None, "workers": 0}`` when it does not answer (or before the first deploy).
    The stats socket lives in the app's own folder, so the gate reads it in a child that
    dropped root for the app's uid without exec'ing: a process the app could neither follow
    a planted path with, nor inspect (``runuser ... python3`` would be both). Python starts
    isolated (no environment or user site) and without ``site``: the script needs the
    standard library only, and this fact is read on every run."""

    def command(self, gate_script: str, stats_socket: str, user: str) -> str:
        return (
            f"test -f {gate_script} && id -u {shlex.quote(user)} >/dev/null 2>&1 || exit 0;"
            f" python3 -I -S {gate_script} live --stats={shlex.quote(stats_socket)}"
            f" --user={shlex.quote(user)}"
        )

    @staticmethod
    def default():
        return {"release": None, "workers": 0}

    def process(self, output):
        """The app serves the stats: an answer in any other shape means "not answering"."""
        release, _, workers = (output[0] if output else "").rpartition(" ")
        if not release or not workers.isdigit():
            return self.default()
        return {"release": release, "workers": int(workers)}


def live_release(layout: Layout, settings: Settings) -> dict:
    """The LiveRelease fact of this app."""
    return host.get_fact(
        LiveRelease,
        gate_script=layout.gate_script,
        stats_socket=layout.stats_socket,
        user=settings.user,
    )
