"""The restart without a pause: the handover instance, a second uWSGI on the same socket,
serves while the service restarts onto the release ``current`` points to (each master is
paused with SIGTSTP, so no worker drops a request it accepted), then it is retired."""

from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from .live import as_user, read_stats, running, workers_up
from .rules import release_in_record
from .units import active, discard, running_invocation, systemctl, unit_log


@dataclass(frozen=True)
class Instance:
    """One uWSGI master of the app: its systemd unit and its stats socket."""

    unit: str
    stats: str


@dataclass(frozen=True)
class Service:
    """The app's uWSGI: the service, and the handover instance that serves the same socket
    while the service restarts; their stats are read as ``user``; ``processes`` workers."""

    main: Instance
    handover: Instance
    user: str
    processes: int
    record: Path | None = None  # root's record of what the service's invocation loaded


def recorded_release(service: Service) -> str | None:
    """The release the service's current run loaded, from root's record; None when the
    service does not run or the record is not its current run's: then only the app's own
    word says what it runs."""
    try:
        record = service.record.read_text() if service.record else ""
    except OSError:
        return None
    return release_in_record(record, running_invocation(service.main.unit))


def worker_states(stats_socket: str) -> list[str]:
    """Each uWSGI worker's status (idle, busy, pause, ...); [] when it does not answer."""
    return [str(w.get("status", ""))[:16] for w in workers_up(read_stats(stats_socket) or {})]


def wait_for_generation(
    service: Service, instance: Instance, release: str, timeout: float
) -> str | None:
    """Wait until ``instance`` runs ``release`` with all its workers; None, or what was seen
    at the timeout."""
    deadline = time.monotonic() + timeout
    while True:
        live, workers = running(instance.stats, service.user)
        if live == release and workers == service.processes:
            return None
        if time.monotonic() > deadline:
            return f"{instance.unit} runs {live} with {workers} of {service.processes} workers"
        time.sleep(0.2)


PAUSE_SETTLE = 0.3  # seconds for every worker to act on SIGTSTP (microseconds, in practice)


def suspended(states: list[str]) -> bool:
    """Whether a master's workers are suspended: uWSGI reports a suspended worker as
    "pause" unless it is still finishing a request ("busy"); an "idle" one takes requests."""
    return "pause" in states and "idle" not in states


def pause(service: Service, instance: Instance) -> None:
    """Stop ``instance`` taking requests from the shared socket: SIGTSTP to its master makes
    each worker finish the request it holds, then wait instead of accepting (the signal
    toggles, so it is sent only to a master that is not suspended yet). Unlike a stop, this
    never catches a worker between accepting a connection and reading it: that worker
    serves it first."""
    if not suspended(as_user(service.user, worker_states, instance.stats)):
        systemctl("kill", "--kill-whom=main", "--signal=SIGTSTP", instance.unit)
    time.sleep(PAUSE_SETTLE)


def resume(service: Service, instance: Instance) -> None:
    """Make a suspended ``instance`` take requests again (a run killed after pausing it)."""
    if suspended(as_user(service.user, worker_states, instance.stats)):
        systemctl("kill", "--kill-whom=main", "--signal=SIGTSTP", instance.unit)


def retire_handover(service: Service) -> None:
    """Pause and stop the handover instance if it runs (the last step of a restart, or what
    an interrupted run left), and clear a failed state."""
    if active(service.handover.unit):
        pause(service, service.handover)
        systemctl("stop", service.handover.unit)
    systemctl("reset-failed", service.handover.unit, check=False)


def restart_without_pause(service: Service, release: str, timeout: float) -> str | None:
    """Restart the service onto ``release`` (``current``'s target, with the configuration on
    disk) so that no request waits: the handover instance starts on it and takes requests
    from the same socket, the service is paused (its in-flight requests finish on the old
    release) and restarted (gracefully: its master alone gets SIGTERM and lets each worker
    finish), then the handover is paused and stopped. A service that does not run is just
    (re)started. None, or the problem (the service untouched when the handover fails)."""
    main, handover = service.main, service.handover
    try:
        if running(main.stats, service.user)[0] is not None:
            resume(service, main)  # it must serve while the handover (re)starts
            systemctl("reset-failed", handover.unit, check=False)
            try:
                systemctl("restart", handover.unit)
                problem = wait_for_generation(service, handover, release, timeout)
            except subprocess.CalledProcessError as err:
                problem = f"{handover.unit} did not start: {err.stderr.strip()}"
            if problem:
                log = unit_log(handover.unit, 20)
                discard(handover.unit)
                return f"{problem}\n{log}"
            pause(service, main)
        systemctl("restart", main.unit)
        problem = wait_for_generation(service, main, release, timeout)
        if problem is None:
            retire_handover(service)
        return problem
    except subprocess.CalledProcessError as err:
        return f"{' '.join(err.cmd)} failed: {err.stderr.strip()}"
    except RuntimeError as err:  # the stats could not be read as the app user
        return str(err)
