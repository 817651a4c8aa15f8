"""The verifier's checks of an app's workers and timers: each worker instance active,
enabled and started after the live release's switch (systemd's timestamps against the
``current`` link's, both root's), each timer enabled with a run scheduled and its last run
not failed; their sandbox rated like the web units'; nothing of them on a host that should
not run them, nothing left of a worker or timer the settings no longer name."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

from pyinfra import host

from deploys.config.layout import Layout
from deploys.config.settings import Settings
from deploys.ops.facts import JournalTail, SandboxExposure, TimerStatus, UnitStatus
from deploys.ops.fileops import switched_at
from deploys.ops.output import printable
from deploys.stack.workers import ProcessUnits, obsolete, processes
from deploys.verify.checks import SANDBOX_TARGET, Check, _check, _unit_checks

FAILED_LOG_LINES = 5


def when(seconds: int) -> str:
    """A unix time as UTC, for the checks' lines."""
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def exposure_check(label: str, unit: str) -> Check:
    """The unit's sandbox as systemd-analyze rates it, against SANDBOX_TARGET."""
    score = host.get_fact(SandboxExposure, unit=unit)
    return Check(
        f"{label} sandbox exposure",
        f"<= {SANDBOX_TARGET}",
        "not rated" if score is None else str(score),
        score is not None and score <= SANDBOX_TARGET,
    )


def worker_checks(instances: tuple[str, ...], switch: int) -> list[Check]:
    """Each instance active and enabled, its run started after the switch at ``switch``."""
    checks = []
    for unit in instances:
        status = host.get_fact(UnitStatus, unit=unit, along=instances)
        started, active = status.get("ExecMainStartTimestamp", 0), status.get("ActiveState")
        checks += _unit_checks(f"worker {unit}", status)
        observed = f"started {when(started)}" if started else "never started"
        checks.append(
            Check(
                f"worker {unit} runs the live release",
                f"started after the switch of {when(switch)}",
                observed if active == "active" else f"not running ({active or 'missing'})",
                active == "active" and started >= switch > 0,
            )
        )
    return [*checks, exposure_check("worker", instances[0])] if instances else checks


def timer_checks(layout: Layout, name: str) -> list[Check]:
    """The timer active, enabled, a run scheduled; its last run not failed (its log shown)."""
    timer = layout.timer(name)
    status = host.get_fact(TimerStatus, timer=timer)
    checks = _unit_checks(f"timer {timer}.timer", status)
    scheduled, running = status.get("NextElapse", 0), status.get("Running", False)
    observed = when(scheduled) if scheduled else "none scheduled"
    checks.append(
        Check(
            f"timer {name} next run",
            "scheduled (or a run in progress)",
            "a run in progress" if running and not scheduled else observed,
            scheduled > 0 or running,
        )
    )
    result, last = status.get("Result") or "never run", status.get("LastTrigger", 0)
    ok = result in ("success", "never run") or not last
    observed = "never run" if not last else f"{result} ({when(last)})"
    if not ok:  # the run's last lines, newest first, without the journal's prefix
        lines = host.get_fact(JournalTail, units=[f"{timer}.service"], lines=FAILED_LOG_LINES)
        said = [printable(line.split("]: ", 1)[-1]) for line in reversed(lines)]
        observed = f"{result}: " + " | ".join(said) + f" ({when(last)})"
    checks.append(Check(f"timer {name} last run", "succeeded (or none yet)", observed, ok))
    checks.append(exposure_check(f"timer {name}", f"{timer}.service"))
    return checks


def process_checks(settings: Settings, workers: bool, timers: bool) -> list[Check]:
    """The app's workers (when this host runs them) and timers (when it runs them), and
    that none of theirs runs or is installed beyond that."""
    layout = Layout.of(settings)
    wanted = processes(settings, workers, timers)
    checks = (
        worker_checks(wanted.instances, switched_at(layout.current)) if wanted.instances else []
    )
    for name in settings.timers if timers else ():
        checks += timer_checks(layout, name)
    if (
        settings.workers
        or settings.timers
        or host.get_fact(ProcessUnits, app=settings.app_name)["files"]
    ):
        running, files = obsolete(host.get_fact(ProcessUnits, app=settings.app_name), wanted)
        checks.append(
            _check(
                "no other worker or timer of the app here",
                "none",
                ", ".join(sorted({*running, *files})) or "none",
            )
        )
    return [replace(c, scope=settings.app_name) for c in checks]
