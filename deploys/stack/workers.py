"""The app's workers and timers as systemd units: each worker a unit template with one
instance per copy, each timer a ``.timer`` with its oneshot ``.service``; all take the app's
sandbox drop-ins (linked, as the handover's) and start their command in the release
``current`` names (files/run-in-release). Units no longer in the settings are stopped and
removed. Workers move to a new release in the health gate (release/gate.py), timers' runs
are never interrupted: the next one starts in the new release."""

from __future__ import annotations

import shlex
import shutil
from dataclasses import dataclass

from pyinfra import host, logger
from pyinfra.api import FactBase, operation
from pyinfra.operations import files

from deploys.config.fingerprint import digest
from deploys.config.layout import RELEASE_LAUNCHER, Layout
from deploys.config.processes import calendar_error, expanded_env
from deploys.config.settings import Settings
from deploys.ops.context import SettingsRefused
from deploys.ops.facts import UnitStatus
from deploys.ops.render import FILES, put_text, render
from deploys.ops.typed import deploy
from deploys.ops.units import unit_loaded, unit_state
from deploys.stack.appservice import env_file, sandbox

HEADER = (
    "# Managed by pyinfra (deploys/stack/workers.py): edits here are undone by the next deploy."
)
SYSTEMD_ESCAPES = str.maketrans({"\\": "\\\\", '"': '\\"', "%": "%%", "$": "$$"})


def systemd_quoted(text: str) -> str:
    """``text`` as one argument of a unit's ExecStart=, taken literally: no specifier (%),
    no variable ($), no escape (\\) of systemd's applies to it."""
    return '"' + text.translate(SYSTEMD_ESCAPES) + '"'


@dataclass(frozen=True)
class Processes:
    """What of the app's workers and timers runs on this host, their units' texts by path."""

    units: dict[str, str]  # unit file path -> text
    instances: tuple[str, ...]  # every worker instance's unit
    timers: tuple[str, ...]  # every .timer unit
    drop_in_links: tuple[str, ...]  # each unit's drop-in folder, a link to the service's
    environment: str  # fingerprint of what else they run with: sandbox, env file, launcher

    @property
    def fingerprint(self) -> str:
        """The workers' configuration (their units, what they run with): a change restarts
        them; a timer's change does not."""
        units = (
            f"{p}\n{text}" for p, text in sorted(self.units.items()) if p.endswith("@.service")
        )
        return digest(*units, self.environment)

    @property
    def services(self) -> tuple[str, ...]:
        """The units that run the app's code: worker instances, timers' services."""
        timer_services = tuple(t.removesuffix(".timer") + ".service" for t in self.timers)
        return (*self.instances, *timer_services)


NO_PROCESSES = Processes({}, (), (), (), "")  # a retired app's


def processes(settings: Settings, workers: bool, timers: bool) -> Processes:
    """The app's processes on this host: its workers when ``workers``, its timers when
    ``timers`` (a fleet runs each timer on one host)."""
    layout = Layout.of(settings)
    common = {
        "s": settings,
        "layout": layout,
        "launcher": RELEASE_LAUNCHER,
        "module": systemd_quoted(settings.app_module),
    }
    units: dict[str, str] = {}
    instances: list[str] = []
    timer_units: list[str] = []
    for name, worker in settings.workers.items() if workers else ():
        unit = layout.worker_template(name)
        units[layout.system_unit(unit)] = render(
            "worker.service.j2",
            **common,
            process=name,
            unit=unit,
            worker=worker,
            command=f"--procfile {name}" if worker.procfile else systemd_quoted(worker.command),
        )
        instances += layout.worker_instances(name, worker.instances)
    for name, timer in settings.timers.items() if timers else ():
        unit = f"{layout.timer(name)}.service"
        context = {**common, "process": name, "timer": timer, "unit": unit}
        units[layout.system_unit(unit)] = render(
            "timer.service.j2", **context, command=systemd_quoted(timer.command)
        )
        units[layout.system_unit(f"{layout.timer(name)}.timer")] = render(
            "timer.timer.j2", **context
        )
        timer_units.append(f"{layout.timer(name)}.timer")
    links = tuple(f"{path}.d" for path in units if path.endswith(".service"))
    launcher = (FILES / "run-in-release").read_text()
    environment = digest(sandbox(settings), env_file(settings), launcher)
    return Processes(units, tuple(instances), tuple(timer_units), links, environment)


class ProcessUnits(FactBase):
    """The app's worker and timer units this deploy wrote on the host, and every unit of
    theirs systemd has loaded or enabled: ``{"files": [unit names], "units": {name:
    active state}, "enabled": [unit names]}``."""

    def command(self, app: str) -> str:
        """The unit files carrying our header, the units systemd lists, the wants links."""
        patterns = Layout(app).process_patterns
        files = " ".join(f"/etc/systemd/system/{p}" for p in patterns)
        wants = " ".join(f"/etc/systemd/system/*.wants/{p}" for p in patterns)
        return (
            f"grep -l -x -F {shlex.quote(HEADER)} {files} 2>/dev/null; echo --;"
            f" systemctl list-units --all --plain --no-legend --no-pager {shlex.join(patterns)};"
            f" echo --; ls -1d {wants} 2>/dev/null; true"
        )

    @staticmethod
    def default():
        return {"files": [], "units": {}, "enabled": []}

    def process(self, output):
        """The three sections of the command's output, between its ``--`` lines."""
        sections: list[list[str]] = [[]]
        for line in output:
            if line.strip() == "--":
                sections.append([])
            else:
                sections[-1].append(line.strip())
        files, units, enabled = [*sections, [], [], []][:3]
        listed = [line.lstrip("●* ").split() for line in units]
        return {
            "files": [path.rsplit("/", 1)[-1] for path in files if path],
            "units": {words[0]: words[2] for words in listed if len(words) >= 4},
            "enabled": [path.rsplit("/", 1)[-1] for path in enabled if path],
        }


def unit_file(unit: str) -> str:
    """The file a unit is loaded from: an instance's (``x@2.service``) is its template's."""
    name, at, rest = unit.partition("@")
    return f"{name}@.{rest.split('.', 1)[1]}" if at else unit


def obsolete(found: dict, wanted: Processes) -> tuple[list[str], list[str]]:
    """(units to stop and disable, unit files to remove) of what ``found`` (ProcessUnits)
    lists and ``wanted`` does not: removed workers and timers, instances beyond the count.
    Only units loaded from a file this deploy wrote (its header): a unit of another app or
    of the admin that matches the name patterns is left alone."""
    wanted_files = {path.rsplit("/", 1)[-1] for path in wanted.units}
    keep = set(wanted.instances) | set(wanted.timers) | wanted_files
    ours = set(found["files"])
    running = {
        name for name, state in found["units"].items() if state not in ("inactive", "failed")
    }
    units = sorted(
        name
        for name in running | set(found["enabled"])
        if name not in keep and unit_file(name) in ours
    )
    return units, sorted(ours - wanted_files)


@operation()
def processes_removed(app: str, wanted: Processes):
    """
    Stop and disable the app's worker and timer units that the settings no longer name (a
    worker stops gracefully, as in a release), and remove their unit files and drop-in
    links; nothing runs when there are none.

    + app: the app's name
    + wanted: what of its workers and timers this host runs
    """
    units, gone = obsolete(host.get_fact(ProcessUnits, app=app), wanted)
    if not units and not gone:
        host.noop(f"no worker or timer of {app} to remove")
        return
    if units:
        quoted = shlex.join(units)
        yield f"systemctl disable --now {quoted}; systemctl reset-failed {quoted} 2>/dev/null; true"
    if gone:
        paths = [Layout.system_unit(name) for name in gone]
        yield f"rm -f {shlex.join(paths)} {shlex.join(p + '.d' for p in paths)}"
        yield "systemctl daemon-reload"


@operation()
def units_enabled(units: tuple[str, ...], along: tuple[str, ...] = ()):
    """
    Enable ``units`` at boot, in one systemctl call for those that are not (starting none).

    + units: unit names, e.g. worker instances
    + along: units whose state is read in the same call (see UnitStatus)
    """
    off = [
        u
        for u in units
        if host.get_fact(UnitStatus, unit=u, along=along).get("UnitFileState") != "enabled"
    ]
    if not off:
        host.noop("enabled at boot")
        return
    yield f"systemctl enable {shlex.join(off)}"


class CalendarProblem(FactBase):
    """Why the host's systemd refuses a calendar expression ("" when it accepts it)."""

    def command(self, expression: str) -> str:
        return (
            f"systemd-analyze calendar -- {shlex.quote(expression)} >/dev/null 2>&1"
            f" || systemd-analyze calendar -- {shlex.quote(expression)} 2>&1; true"
        )

    default = str

    def process(self, output):
        return calendar_error("\n".join(output)) if output else ""


def check_calendars(settings: Settings) -> None:
    """Each timer's calendar, asked of the host's systemd when this machine had none to ask
    (config.processes.calendar_problem): SettingsRefused names the timer before anything
    changes."""
    if shutil.which("systemd-analyze"):
        return  # the settings' validation asked this machine's systemd already
    calendars = {f"timers.{n}.on_calendar": t.on_calendar for n, t in settings.timers.items()}
    if settings.backups:
        calendars["backup_on_calendar"] = settings.backup_on_calendar
    for key, expression in calendars.items():
        problem = host.get_fact(CalendarProblem, expression=expression)
        if problem:
            raise SettingsRefused(f"{key}: {problem}")


SERVED_URLS = ("DATABASE_URL", "REDIS_URL")  # on a fleet's app server: with the password


def warn_of_expanded_env(settings: Settings) -> None:
    """Say so when a worker's or timer's command expands a value of ``env``, or the
    database server's URLs (a password in ``--url $REDIS_URL``): it lands on the command
    line, readable by every local user."""
    commands = {
        **{f"workers.{n}": w.command for n, w in settings.workers.items()},
        **{f"timers.{n}": t.command for n, t in settings.timers.items()},
    }
    secret = [*settings.env, *(SERVED_URLS if settings.database_server else ())]
    for key, command in commands.items():
        names = expanded_env(command, secret)
        if names:
            host.log(
                f"{key}: the command expands {', '.join('$' + n for n in names)} from env: the"
                " value lands on the process's command line, which every local user can read"
                " (ps); if it is a secret, let the program read it from its environment",
                log_func=logger.warning,
            )


@deploy("Workers and timers")
def configure_processes(settings: Settings, workers: bool, timers: bool) -> Processes:
    """Write the unit files of the app's workers (when ``workers``) and timers (when
    ``timers``), link each to the app's sandbox drop-ins, have systemd load them and enable
    them at boot; stop and remove those no longer named. Starting and restarting workers is
    the health gate's (release/gate.py); timers are started by start_timers. Returns what
    runs here."""
    layout = Layout.of(settings)
    wanted = processes(settings, workers, timers)
    warn_of_expanded_env(settings)
    processes_removed(
        name=f"Workers and timers of {settings.app_name} no longer named",
        app=settings.app_name,
        wanted=wanted,
    )
    for path, text in wanted.units.items():
        put_text(f"Unit {path}", text, path)
    for link in wanted.drop_in_links:
        files.link(
            name=f"{link} links the service's drop-ins", path=link, target=f"{layout.unit}.d"
        )
    along = (*wanted.services, *wanted.timers)
    for unit in along:  # one daemon-reload at most: the first that finds systemd's copy stale
        unit_loaded(
            name=f"systemd knows the current {unit}",
            unit=unit,
            drop_ins=() if unit.endswith(".timer") else (layout.sandbox,),
            along=along,
        )
    enabled = (*wanted.instances, *wanted.timers)
    if enabled:
        units_enabled(
            name=f"{settings.app_name}'s workers and timers enabled", units=enabled, along=along
        )
    return wanted


@deploy("Timers")
def start_timers(wanted: Processes):
    """Keep the app's timers running (their schedules active)."""
    for unit in wanted.timers:
        unit_state(name=f"{unit} running", unit=unit, running=True, along=wanted.timers)
