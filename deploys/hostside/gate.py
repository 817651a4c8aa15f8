"""The health gate: uWSGI must serve the release ``current`` points to and answer healthily
through nginx; then it is recorded in the history and old releases and venvs are pruned,
else ``current`` switches back to the previous healthy release."""

from __future__ import annotations

import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from .handover import (
    Service,
    recorded_release,
    restart_without_pause,
    retire_handover,
    wait_for_generation,
)
from .health import Health, health, through_nginx
from .rules import previous_release
from .units import escaped, unit_log
from .workers import restart_workers


@dataclass(frozen=True)
class Workers:
    """The app's worker instances to move onto the release, how long each must stay up,
    how long their graceful stops may take."""

    units: tuple[str, ...] = ()
    steady: float = 5
    deadline: float = 90

    def restart(self) -> str | None:
        """Restart them onto the release ``current`` names (see restart_workers)."""
        return restart_workers(list(self.units), self.steady, self.deadline)


@dataclass(frozen=True)
class Paths:
    """The app's layout on the host, as the deploy names it (deploys/config/layout.py)."""

    current: Path
    history: Path
    releases: Path
    venvs: Path


def history(path: Path) -> list[str]:
    """The ids in the release history (oldest first)."""
    return path.read_text().split() if path.exists() else []


def switch(current: Path, target: str) -> None:
    """Point the symlink ``current`` at ``target`` atomically."""
    tmp = current.with_name(current.name + ".new")
    if tmp.is_symlink():
        tmp.unlink()
    tmp.symlink_to(target)
    os.replace(tmp, current)


def serve(service: Service, check: Health, release: str, restart: bool = False) -> str | None:
    """Make uWSGI serve ``release`` and check its health through nginx; None on success. It
    restarts unless root's record says the service's current run loaded ``release`` (what
    the app reports decides nothing: it can forge its stats); ``restart``: always."""
    problem = None
    if restart or recorded_release(service) != release:
        problem = restart_without_pause(service, release, check.timeout)
    problem = problem or wait_for_generation(service, service.main, release, check.timeout)
    if problem is None:
        retire_handover(service)  # one an interrupted run left
    return problem or health(check, lambda: through_nginx(check))


def prune(paths: Paths, keep: int, live: str) -> None:
    """Keep the ``keep`` most recently healthy releases (and the live one), and the venvs they
    use; remove the rest."""
    kept = {live}
    for name in reversed(history(paths.history)):
        if len(kept) >= keep:
            break
        kept.add(str(paths.releases / name))
    for release in paths.releases.iterdir():
        if str(release) not in kept and release.is_dir():
            shutil.rmtree(release)
    used = {os.path.realpath(Path(r) / "venv") for r in kept}
    for venv in paths.venvs.iterdir():
        if venv.is_dir() and str(venv) not in used:
            shutil.rmtree(venv)
            venv.with_name(venv.name + ".requirements.txt").unlink(missing_ok=True)


def gate(
    paths: Paths,
    service: Service,
    check: Health,
    keep: int,
    restart: bool = False,
    workers: Workers | None = None,
) -> int:
    """Serve the release ``current`` names and prove it healthy, then move ``workers`` onto
    it (each must stay up): record and prune; or switch back to the previous healthy
    release (web and workers) and fail with the reason and the failing unit's log.
    ``restart``: restart the service onto it whatever it runs (a rollback)."""
    release = os.path.realpath(paths.current)
    name = Path(release).name
    problem = serve(service, check, release, restart)
    web_failed = problem is not None
    workers = workers or Workers()
    if problem is None:
        problem = workers.restart()
    if problem is None:
        names = history(paths.history)
        if not names or names[-1] != name:
            with paths.history.open("a") as f:
                f.write(name + "\n")
        prune(paths, keep, release)
        print(f"release {name} is live and healthy")
        return 0
    previous = previous_release(history(paths.history), name)
    message = f"release {name} failed its health check: {problem}"
    if previous and (paths.releases / previous).is_dir():
        switch(paths.current, str(paths.releases / previous))
        again = serve(service, check, str(paths.releases / previous), restart=True)
        if again is None and not web_failed:  # the workers ran the new release: back too
            again = workers.restart()
        message += f"; switched back to {previous}" + (
            f" (still failing: {again})" if again else ""
        )
    if web_failed:
        message += (
            f"\n-- its log (journalctl -u {service.main.unit}):\n{unit_log(service.main.unit)}"
        )
    print(escaped(message), file=sys.stderr)
    return 1
