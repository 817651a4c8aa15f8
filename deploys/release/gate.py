"""The host-side release checks (files/release_gate.py and the package deploys/hostside,
standard library only), shipped and driven from here: the import check, release commands
and throw-away candidate before a switch, the pause-free restart, and the health gate with
history, pruning and switch-back."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

from pyinfra import host
from pyinfra.api import operation
from pyinfra.facts.files import FileContents
from pyinfra.operations import files

from deploys import hostside
from deploys.config.layout import GATE_PACKAGE, GATE_SCRIPT, RELEASE_LAUNCHER, Layout
from deploys.config.settings import Settings
from deploys.hostside.rules import release_in_record
from deploys.ops.facts import UnitStatus
from deploys.ops.fileops import link_target, switched_at, upload_command
from deploys.ops.output import shown
from deploys.ops.render import FILES
from deploys.ops.stamps import recorded_stamp
from deploys.ops.typed import deploy
from deploys.release.live import release_history
from deploys.release.lock import held_lock


def gate_files() -> dict[str, Path]:
    """Host path -> source of each file of the release checks: the package's modules, then
    the command line that imports them (an upload cut short leaves the old one working)."""
    package = Path(hostside.__file__).parent
    modules = {f"{GATE_PACKAGE}/{m.name}": m for m in sorted(package.glob("*.py"))}
    return {
        **modules,
        RELEASE_LAUNCHER: FILES / "run-in-release",
        GATE_SCRIPT: FILES / "release_gate.py",
    }


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
    if link_target(layout.current) == release:
        host.noop(f"{release} is live already")
        return
    command_args = "".join(f" --command={shlex.quote(c)}" for c in commands)
    yield shown(
        f"{gate_command(layout, 'check')} {app_command_args(layout, settings, release)}"
        f"{command_args} {health_args(settings)}"
    )


@operation()
def release_gated(
    layout: Layout,
    settings: Settings,
    restart: bool = False,
    workers: tuple[str, ...] = (),
    workers_config: str | None = None,
):
    """
    Make uWSGI serve the release ``current`` points to and require a healthy answer through
    nginx, then move the workers onto it; on failure switch back to the previous healthy
    release (web and workers) and fail. Records healthy releases and prunes all but
    ``keep_releases``. Without a new release, workers whose configuration changed are
    restarted and stopped ones started. Nothing runs when root's record says the service's
    current run loaded the current release, it is recorded healthy, and the workers run
    with their configuration on it (their stamp).

    + layout, settings: where, and the processes, health path and keep_releases
    + restart: restart the service onto it whatever it runs (a rollback)
    + workers: the unit of each worker instance on this host
    + workers_config: their configuration's fingerprint (a change restarts them); None
      keeps the one applied (rollback.py, which changes no configuration)
    """
    current = link_target(layout.current)
    recorded = release_history(layout.history)
    healthy = current and recorded and recorded[-1] == Path(current).name
    serving = not restart and healthy and recorded_release(layout) == current
    if workers_config is None:
        workers_config = recorded_stamp(layout.workers_stamp).get("config", "")
    applied = {"config": workers_config, "release": current}
    moving = workers_to_move(layout, workers, applied)
    if serving and not moving:
        on_it = ", its workers on it" if workers else ""
        host.noop(f"{current} is live and recorded healthy{on_it}")
    elif serving:
        yield f"{gate_command(layout, 'workers')} {worker_args(settings, moving)}"
    else:
        yield (
            f"{gate_command(layout, 'gate')}{' --restart' if restart else ''}"
            f" --history={layout.history} --releases={layout.releases} --venvs={layout.venvs}"
            f" --keep={settings.keep_releases} {service_args(layout, settings)}"
            f" {health_args(settings)} {worker_args(settings, moving)}"
        )
    if workers and recorded_stamp(layout.workers_stamp) != applied:
        yield upload_command(json.dumps(applied, sort_keys=True).encode(), layout.workers_stamp)


def workers_to_move(layout: Layout, workers: tuple[str, ...], applied: dict) -> tuple[str, ...]:
    """The worker instances to restart: all when their configuration or release differs
    from what their stamp says was applied (``applied``: what should be), else those that
    do not run or started before ``current`` was last switched (a worker restarting on its
    own while a failed release was live: verify.py asks the same)."""
    if workers and recorded_stamp(layout.workers_stamp) != applied:
        return workers
    switched = switched_at(layout.current)

    def stale(unit: str) -> bool:
        status = host.get_fact(UnitStatus, unit=unit, along=workers)
        started = status.get("ExecMainStartTimestamp", 0)
        return status.get("ActiveState") != "active" or started < switched

    return tuple(unit for unit in workers if stale(unit))


def worker_args(settings: Settings, units: tuple[str, ...]) -> str:
    """release_gate.py's arguments naming the worker instances to move, how long each must
    stay up, how long their graceful stops may take."""
    if not units:
        return ""
    longest_stop = max(worker.stop_timeout for worker in settings.workers.values())
    return " ".join(
        [
            *(f"--worker={unit}" for unit in units),
            f"--worker-steady={settings.worker_start_seconds}",
            f"--worker-deadline={longest_stop + 60}",
        ]
    )


def recorded_release(layout: Layout) -> str | None:
    """The release the service's current run loaded, from root's record (the unit writes it
    before each start, see appservice.record_command); None when the service does not run
    or the record is not its current run's. What the app reports (LiveRelease) decides
    nothing: it can forge its stats."""
    status = host.get_fact(UnitStatus, unit=layout.unit_name, along=layout.units_read_together)
    running = status.get("InvocationID", "") if status.get("ActiveState") == "active" else ""
    record = " ".join(host.get_fact(FileContents, path=layout.service_record) or [])
    return release_in_record(record, running)


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


@deploy("Release checks")
def install_release_gate():
    """Ship the release checks to the host (one copy for every app)."""
    for dest, source in gate_files().items():
        files.put(
            name=f"Release checks {dest}",
            src=str(source),
            dest=dest,
            user="root",  # root runs them: an owner that drifted is put back
            group="root",
            mode="755" if dest == RELEASE_LAUNCHER else "644",
        )
