"""App releases: upload, pre-flight checks, atomic switch and a health gate with automatic
switch-back, plus the facts rollback and the verifier read.

A release is ``/srv/<app>/releases/<id>/`` with the code in ``app/`` (the shared paths
linked into it from the data directory), nginx's copy of the static folders in ``static/``
and a ``venv`` link to its virtualenv; ``id`` fingerprints all of it, so unchanged code and
requirements create nothing. The checks themselves run on the host (files/release_gate.py,
standard library only), and so do the release commands.
"""

from __future__ import annotations

import importlib.util
import shlex
import sys
from pathlib import Path

from pyinfra import host
from pyinfra.api import FactBase, deploy, operation
from pyinfra.facts.files import Directory, File, FileContents, Link
from pyinfra.operations import files

from deploys.facts import UnitStatus
from deploys.fileops import link_switched, upload_command
from deploys.layout import GATE_SCRIPT, Layout
from deploys.lock import held_lock
from deploys.output import shown
from deploys.render import FILES, digest
from deploys.settings import Settings
from deploys.shipping import AppFiles
from deploys.virtualenv import venv_id

UNPACKED_MARKER = ".unpacked"

GATE_SOURCE = FILES / "release_gate.py"


def _gate_module():
    """files/release_gate.py as a module: the rules the host-side checks and the deploy
    share live there once (it is standard library only)."""
    spec = importlib.util.spec_from_file_location("release_gate", GATE_SOURCE)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look themselves up there
    spec.loader.exec_module(module)
    return module


release_gate = _gate_module()


def release_id(settings: Settings) -> str:
    """The release id: a fingerprint of the app's shipped files, its virtualenv, the shared
    paths linked into it and the static folders copied for nginx."""
    layout_parts = [*settings.shared_paths, "|", *settings.static.values()]
    extra = layout_parts if len(layout_parts) > 1 else []
    return digest(settings.app_files.digest(), venv_id(settings), *extra)


def gate_command(layout: Layout, subcommand: str) -> str:
    """``python3 release_gate.py SUBCOMMAND``, told the run's deploy lock: what it does for
    the run ends with the run (nothing it started outlives it)."""
    lock = held_lock()
    return f"python3 {layout.gate_script} {subcommand}" + (f" --lock={lock}" if lock else "")


def app_command_args(layout: Layout, settings: Settings, release: str) -> str:
    """release_gate.py's arguments that run the app's code in ``release``: which app, in
    which sandbox, from which source root."""
    source_root = f" --source-root={settings.source_root}" if settings.source_root else ""
    return (
        f"--release={shlex.quote(release)} --module={shlex.quote(settings.app_module)}"
        f" --user={shlex.quote(settings.user)} --sandbox={layout.sandbox}{source_root}"
    )


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


def health_args(settings: Settings) -> str:
    """The health check's arguments for release_gate.py."""
    return " ".join(
        shlex.quote(arg)
        for arg in (
            f"--path={settings.health_path}",
            f"--host-header={settings.host_header}",
            f"--expect={settings.expected_text}",
            f"--timeout={settings.health_timeout}",
            *(["--https"] if settings.https else []),
        )
    )


@operation()
def release_checked(layout: Layout, release: str, settings: Settings, commands: list[str]):
    """
    Before ``release`` goes live: its app must load, its release commands (e.g. migrations)
    succeed, and it must answer its health path from a throw-away uWSGI; their output is
    shown. Nothing runs when it is live already.

    + layout, release, settings: where, which release, and its module, user and health path
    + commands: the release commands to run in it
    """
    link = host.get_fact(Link, path=layout.current)
    if link and link.get("link_target") == release:
        host.noop(f"{release} is live already")
        return
    command_args = "".join(f" --command={shlex.quote(c)}" for c in commands)
    yield shown(
        f"{gate_command(layout, 'check')} {app_command_args(layout, settings, release)}"
        f"{command_args} {health_args(settings)}"
    )


@operation()
def release_gated(layout: Layout, settings: Settings, restart: bool = False):
    """
    Make uWSGI serve the release ``current`` points to and require a healthy answer through
    nginx; on failure switch back to the previous healthy release and fail. Records healthy
    releases and prunes all but ``keep_releases``. Nothing runs when root's record says the
    service's current run loaded the current release and it is recorded healthy.

    + layout, settings: where, and the processes, health path and keep_releases
    + restart: restart the service onto it whatever it runs (a rollback)
    """
    link = host.get_fact(Link, path=layout.current) or {}
    current = link.get("link_target")
    recorded = release_history(layout.history)
    healthy = current and recorded and recorded[-1] == Path(current).name
    if not restart and healthy and recorded_release(layout) == current:
        host.noop(f"{current} is live and recorded healthy")
        return
    yield (
        f"{gate_command(layout, 'gate')}{' --restart' if restart else ''}"
        f" --history={layout.history} --releases={layout.releases} --venvs={layout.venvs}"
        f" --keep={settings.keep_releases} {service_args(layout, settings)}"
        f" {health_args(settings)}"
    )


def recorded_release(layout: Layout) -> str | None:
    """The release the service's current run loaded, from root's record (the unit writes it
    before each start, see appservice.record_command); None when the service does not run
    or the record is not its current run's. What the app reports (LiveRelease) decides
    nothing: it can forge its stats."""
    status = host.get_fact(UnitStatus, unit=layout.unit_name, along=layout.units_read_together)
    running = status.get("InvocationID", "") if status.get("ActiveState") == "active" else ""
    record = " ".join(host.get_fact(FileContents, path=layout.service_record) or [])
    return release_gate.release_in_record(record, running)


def service_args(layout: Layout, settings: Settings) -> str:
    """release_gate.py's arguments naming the app's uWSGI: the service, its handover
    instance, their stats sockets, the release they should run."""
    return (
        f"--current={layout.current} --service={layout.unit_name}"
        f" --stats={layout.stats_socket} --handover={layout.handover_unit_name}"
        f" --handover-stats={layout.handover_stats_socket}"
        f" --user={shlex.quote(settings.user)} --processes={settings.processes}"
        f" --record={layout.service_record}"
    )


def restart_command(layout: Layout, settings: Settings) -> str:
    """The command restarting the app's uWSGI onto ``current`` and the configuration on disk
    without a request waiting (release_gate.py restart)."""
    return (
        f"{gate_command(layout, 'restart')} --timeout={settings.health_timeout}"
        f" {service_args(layout, settings)}"
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
def release_unpacked(release: str, files_: AppFiles, group: str, shared: dict, static: list):
    """
    Unpack the app's archive into ``release``/app, owned root:``group`` with the archive's
    modes, link the shared paths into it and copy the static folders to ``release``/static
    for nginx (root:www-data), unless a complete release is there (releases are immutable:
    their id fingerprints all of it). An interrupted unpack is redone; the archive passes
    only through private folders.

    + release: the release folder
    + files_: what of the local app folder ships, packed only when needed
    + group: the app's group, the only one that may read the code
    + shared: shared path inside the app -> its place in the data directory
    + static: folders inside the app that nginx serves
    """
    if host.get_fact(File, path=f"{release}/{UNPACKED_MARKER}"):
        host.noop(f"{release} is unpacked")
        return
    folder = shlex.quote(release)
    app, static_copy = f"{folder}/app.new", f"{folder}/static.new"
    tarball = shlex.quote(f"{release}/app.tar.gz")
    yield (
        f"rm -rf {folder}/app {app} {folder}/static {static_copy}"
        f" && install -d -m 750 {app} && chmod 711 {folder}"
        f" && install -m 600 /dev/null {tarball}"
    )
    yield upload_command(files_.archive(), f"{release}/app.tar.gz")
    steps = [f"tar -xzf {tarball} -C {app} --no-same-owner && rm {tarball}"]
    steps += [f"mkdir -p {app}/{shlex.quote(str(Path(path).parent))}" for path in shared]
    # -R never follows a symlink it meets; the links to the app's data come after anyway
    steps.append(f"chgrp -R {shlex.quote(group)} {app} && chmod -R u=rwX,g=rX,o= {app}")
    steps += [f"ln -sn {shlex.quote(t)} {app}/{shlex.quote(p)}" for p, t in shared.items()]
    if static:
        steps.append(f"install -d -m 750 -g www-data {static_copy}")
        for path in static:
            steps.append(f"mkdir -p {static_copy}/{shlex.quote(path)}")
            steps.append(f"cp -R {app}/{shlex.quote(path)}/. {static_copy}/{shlex.quote(path)}/")
        steps.append(f"chgrp -R www-data {static_copy} && chmod -R u=rwX,g=rX,o= {static_copy}")
        steps.append(f"mv {static_copy} {folder}/static")
    steps.append(f"mv {app} {folder}/app && touch {folder}/{UNPACKED_MARKER}")
    yield " && ".join(steps)


@operation()
def shared_folders(layout: Layout, settings: Settings, release: str):
    """
    Create the shared folders missing from the data directory, as the app in its sandbox (a
    root command never writes into a folder the app owns).

    + layout, settings: where, and which shared paths are folders
    + release: the release whose environment the command runs in
    """
    missing = [
        p for p in settings.shared_folders if not host.get_fact(Directory, path=layout.shared(p))
    ]
    if not missing:
        host.noop("the shared folders exist")
        return
    paths = " ".join(shlex.quote(layout.shared(p)) for p in missing)
    yield (
        f"{gate_command(layout, 'run')} {app_command_args(layout, settings, release)}"
        f" --workdir=/ -- {shlex.quote(f'mkdir -p -m 750 -- {paths}')}"
    )


@operation()
def app_command(layout: Layout, settings: Settings, command: str):
    """
    Run a one-off ``command`` in the live release like a release command (the app's user,
    environment, data directory and sandbox) and show its output. Runs every time.

    + layout, settings: where, and the app
    + command: a shell command line, e.g. ``flask --app myapp init-db``
    """
    yield shown(
        f"{gate_command(layout, 'run')} {app_command_args(layout, settings, layout.current)}"
        f" -- {shlex.quote(command)}"
    )


@deploy("App release")
def upload_release(settings: Settings):
    """Ship ``app_src`` as releases/<id>/app (unchanged code uploads nothing) and link the
    release to its virtualenv. Returns the upload operation."""
    layout = Layout.of(settings)
    release = layout.release(release_id(settings))
    local_shared = settings.app_files.skipped_shared()
    upload = release_unpacked(
        name=f"Unpack {settings.app_src} into {release}/app"
        + (f" (shared, not uploaded: {', '.join(local_shared)})" if local_shared else ""),
        release=release,
        files_=settings.app_files,
        group=settings.user,
        shared={path: layout.shared(path) for path in settings.shared_paths},
        static=sorted(set(settings.static.values())),
    )
    files.link(
        name=f"{release}/venv links its virtualenv",
        path=f"{release}/venv",
        target=f"{layout.venvs}/{venv_id(settings)}",
    )
    return upload


@deploy("Release checks")
def install_release_gate():
    """Ship release_gate.py to the host (one copy for every app)."""
    files.put(
        name=f"Release checks {GATE_SCRIPT}", src=str(GATE_SOURCE), dest=GATE_SCRIPT, mode="644"
    )


@deploy("Shared folders")
def create_shared_folders(settings: Settings):
    """The shared folders in the data directory, before the new release's checks use them."""
    if settings.shared_folders:
        layout = Layout.of(settings)
        shared_folders(
            name=f"Shared folders in {layout.data}: {', '.join(settings.shared_folders)}",
            layout=layout,
            settings=settings,
            release=layout.release(release_id(settings)),
        )


def _target(settings: Settings, release: str | None) -> str:
    """The release a switch goes to: ``release``, else the one this deploy uploads."""
    return release or Layout.of(settings).release(release_id(settings))


@deploy("Release pre-flight")
def check_release(settings: Settings, release: str | None = None):
    """Check the release before it may go live. The new release this deploy uploaded (the
    default) runs the release commands first; a release rolled back to does not (its data
    changes were made when it was new, and a migration tool may refuse to run an older
    release's migrations against newer data)."""
    layout = Layout.of(settings)
    release_checked(
        name=f"{_target(settings, release)} passes its checks",
        layout=layout,
        release=_target(settings, release),
        settings=settings,
        commands=settings.release_command if release is None else [],
    )


@deploy("Release switch")
def point_current(settings: Settings, release: str | None = None):
    """Point ``current`` at the release atomically."""
    layout = Layout.of(settings)
    target = _target(settings, release)
    link_switched(name=f"Point {layout.current} at {target}", path=layout.current, target=target)


def switch_release(settings: Settings, release: str | None = None, **global_args) -> None:
    """Check the release, then point ``current`` at it (see check_release);
    ``global_args``: pyinfra's, for both."""
    check_release(settings, release, **global_args)
    point_current(settings, release, **global_args)


@deploy("Release health gate")
def gate_release(settings: Settings, restart: bool = False):
    """Serve the current release and prove it healthy through nginx, or switch back;
    ``restart``: restart the service onto it whatever it runs (a rollback)."""
    release_gated(
        name="Live release is healthy through nginx",
        layout=Layout.of(settings),
        settings=settings,
        restart=restart,
    )
