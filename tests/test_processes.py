"""Workers and timers (#28) without a host: their settings, their units' texts, the facts on
output captured from a real Debian 12 host (tests/captured/process-units*.txt,
timer-status-*.txt, timer-command-quoting.txt, calendar-bad.txt), what is obsolete, the
release gate's decisions (facts in, commands out) and the host-side switch-back."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pyinfra.api import FileUploadCommand

from deploys.config.layout import RELEASE_LAUNCHER, Layout
from deploys.config.plan import load_plan
from deploys.config.processes import Worker, expanded_env
from deploys.config.settings import SettingsError, load_settings
from deploys.hostside import cli
from deploys.hostside import gate as hostside_gate
from deploys.hostside import workers as hostside_workers
from deploys.hostside.handover import Instance, Service
from deploys.hostside.health import Health
from deploys.ops.facts import JournalTail, SandboxExposure, TimerStatus, UnitStatus
from deploys.release import gate
from deploys.stack.workers import (
    NO_PROCESSES,
    CalendarProblem,
    ProcessUnits,
    obsolete,
    processes,
    processes_removed,
    systemd_quoted,
)
from deploys.verify.processes import timer_checks
from tests.fakehost import commands, fact

CAPTURED = Path(__file__).parent / "captured"
REPO = Path(__file__).resolve().parent.parent
APP = REPO / "app"
ANALYZE = shutil.which("systemd-analyze")
# CI installs it (scripts/prereqs.sh): there a missing one fails; elsewhere it skips
needs_analyze = pytest.mark.skipif(
    not ANALYZE and not os.environ.get("CI"), reason="no systemd-analyze on this machine"
)

# what the captures were taken with (deploy.py --data workers=... --data timers=...)
WORKERS = {"demo": {"command": "sleep 1000", "instances": 2}}
TIMERS = {"tick": {"command": "true", "on_calendar": "*:*:0/10"}}
INSTANCES = ("myproject-worker-demo@1.service", "myproject-worker-demo@2.service")
LAYOUT = Layout("myproject")
RELEASE = "/srv/myproject/releases/eed358cb2531b095"
OLD_RELEASE = "/srv/myproject/releases/d029e2b4043edb11"
GATE = "python3 /usr/local/lib/flask-deploy/release_gate.py"


def lines(name: str) -> list[str]:
    return (CAPTURED / name).read_text().splitlines()


def error_for(**data) -> str:
    with pytest.raises(SettingsError) as info:
        load_settings(data, "web1")
    return str(info.value)


def app_with_procfile(tmp_path: Path, text: str | None) -> str:
    """A copy of the sample app with this Procfile (None: without one)."""
    app = tmp_path / "app"
    shutil.copytree(APP, app)
    if text is not None:
        (app / "Procfile").write_text(text)
    return str(app)


# -- settings ---------------------------------------------------------------------------


def test_a_worker_given_as_its_command_is_a_table_with_the_defaults():
    s = load_settings({"workers": {"tasks": "rq worker tasks"}})
    assert s.workers == {"tasks": Worker(command="rq worker tasks", instances=1, stop_timeout=30)}


def test_a_worker_table_sets_its_instances_and_stop_timeout():
    s = load_settings({"workers": {"mail": {"command": "x", "instances": 3, "stop_timeout": 120}}})
    assert (s.workers["mail"].instances, s.workers["mail"].stop_timeout) == (3, 120)


@pytest.mark.parametrize(
    ("key", "value"),
    [("instances", 0), ("instances", 33), ("stop_timeout", 0), ("stop_timeout", 3601)],
)
def test_worker_bounds_are_refused_naming_the_key(key, value):
    assert f"workers.tasks.{key}: Input should be" in error_for(
        workers={"tasks": {"command": "x", key: value}}
    )


def test_timer_and_start_bounds_are_refused_naming_the_key():
    timer = {"command": "x", "on_calendar": "daily", "timeout": 0}
    assert "timers.t.timeout: Input should be" in error_for(timers={"t": timer})
    assert "worker_start_seconds" in error_for(worker_start_seconds=301)


def test_an_unknown_worker_key_is_refused():
    assert "workers.tasks.instance" in error_for(workers={"tasks": {"command": "x", "instance": 2}})


@pytest.mark.parametrize("name", ["Tasks", "my tasks", "x" * 33, "1st", "-x", "a.b"])
@pytest.mark.parametrize("kind", ["workers", "timers"])
def test_bad_process_names_are_refused(kind, name):
    value = "x" if kind == "workers" else {"command": "x", "on_calendar": "daily"}
    message = error_for(**{kind: {name: value}})
    assert f"{kind}.{name}" in message and "is not allowed as a process name" in message


@pytest.mark.parametrize("command", ["rq worker\nrm -rf /", "a\rb", "", "   "])
def test_a_command_is_one_non_empty_line(command):
    assert "workers.tasks.command" in error_for(workers={"tasks": command})
    timer = {"command": command, "on_calendar": "daily"}
    assert "a command is one non-empty line" in error_for(timers={"t": timer})


def test_workers_are_a_dict_or_the_procfile():
    assert "workers: a dict of workers" in error_for(workers=["rq worker"])


def test_workers_procfile_reads_its_entries_but_web_and_release(tmp_path):
    app = app_with_procfile(
        tmp_path,
        "# the app's processes\n"
        "web: gunicorn wsgi:app\n"
        "\n"
        "release: flask db upgrade\n"
        "worker: rq worker tasks\n"
        '  mail-out:   python -m mailer --queue "out"  \n'
        "   # indented comment\n",
    )
    s = load_settings({"app_src": app, "workers": "Procfile"})
    assert s.workers == {
        "worker": Worker(command="rq worker tasks", procfile=True),
        "mail-out": Worker(command='python -m mailer --queue "out"', procfile=True),
    }


def test_a_missing_procfile_is_named(tmp_path):
    app = app_with_procfile(tmp_path, None)
    message = error_for(app_src=app, workers="Procfile")
    assert f"workers: workers = 'Procfile' but {app}/Procfile is missing" in message


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("worker: rq worker\nclock python clock.py\n", "line 2: not of the form 'name: command'"),
        ("# jobs\nWorker: rq worker\n", "line 2: 'Worker' is not allowed as a process name"),
    ],
)
def test_a_bad_procfile_line_is_named(tmp_path, text, problem):
    app = app_with_procfile(tmp_path, text)
    assert f"{app}/Procfile, {problem}" in error_for(app_src=app, workers="Procfile")


def test_a_procfile_command_that_is_no_command_is_named(tmp_path):
    app = app_with_procfile(tmp_path, "\n\nworker:\n")
    message = error_for(app_src=app, workers="Procfile")
    assert f"{app}/Procfile, line 3: " in message
    assert "'': a command is one non-empty line" in message


def test_a_procfile_commands_problem_is_said_in_one_line(tmp_path):
    app = app_with_procfile(tmp_path, "worker:\n")
    message = error_for(app_src=app, workers="Procfile")
    assert f"{app}/Procfile, line 1: '': a command is one non-empty line (given" in message


@needs_analyze
@pytest.mark.parametrize("calendar", ["daily", "hourly", "Mon *-*-* 09:00", "*:*:0/10"])
def test_calendar_expressions_systemd_accepts_are_taken(calendar):
    s = load_settings({"timers": {"digest": {"command": "flask digest", "on_calendar": calendar}}})
    assert s.timers["digest"].on_calendar == calendar
    assert s.timers["digest"].timeout == 3600


@needs_analyze
def test_a_calendar_systemd_refuses_is_refused_with_its_own_message():
    timer = {"command": "x", "on_calendar": "every tuesday"}
    assert (
        "timers.weekly.on_calendar: Failed to parse calendar specification 'every tuesday'"
        in error_for(timers={"weekly": timer})
    )


@pytest.mark.parametrize("calendar", ["$HOME", "50%", 'daily"', "daily\\n", "daily\nx", ""])
def test_calendar_characters_of_unit_file_syntax_are_refused(calendar):
    message = error_for(timers={"t": {"command": "x", "on_calendar": calendar}})
    assert "timers.t.on_calendar" in message and "is not a calendar expression" in message


def test_the_host_says_why_it_refuses_a_calendar_when_this_machine_cannot():
    """CalendarProblem (asked of the host when this machine has no systemd), on the output
    of a Debian 12 host."""
    problem = CalendarProblem()
    assert "'every tuesday'" in problem.command(expression="every tuesday")
    assert problem.process(lines("calendar-bad.txt")) == (
        "Failed to parse calendar specification 'every tuesday': Invalid argument"
    )
    assert problem.process([]) == ""


def test_a_timer_and_a_worker_of_the_same_name_are_refused():
    timer = {"command": "x", "on_calendar": "daily"}
    message = error_for(workers={"jobs": "rq worker"}, timers={"jobs": timer})
    assert "timers: 'jobs' is also a worker's name" in message


@pytest.mark.parametrize("name", ["shop-worker-1", "a-timer-b"])
def test_app_names_holding_worker_or_timer_are_refused(name):
    message = error_for(app_name=name)
    assert "app_name" in message and "holds or ends with -worker or -timer" in message


def test_an_app_named_like_another_apps_worker_prefix_is_refused():
    apps = [
        {"app_name": "a", "server_name": "a.example"},
        {"app_name": "a-worker", "server_name": "b.example"},
    ]
    with pytest.raises(SettingsError):
        load_plan({"apps": apps})


def test_process_is_a_per_run_key():
    assert load_plan({"process": "tasks"}).apps[0].process == "tasks"
    with pytest.raises(SettingsError) as info:
        load_plan({"apps": [{"app_name": "a", "process": "tasks"}]})
    assert "process is set for the whole host or run, not per app" in str(info.value)
    assert "process" in error_for(process="Tasks")


def test_worker_and_timer_hosts_are_group_names():
    assert load_settings({"worker_hosts": "app_servers"}).worker_hosts == "app_servers"
    assert "timer_hosts" in error_for(timer_hosts="app servers")


# -- the units' texts -------------------------------------------------------------------

QUOTING = (
    """printf '%s\\n' "$BASH_EXECUTION_STRING" # $HOME ${X} 50% %n %% \\ \\\\ "q" 'single'"""
    " `tick`"
)


def exec_start(text: str) -> str:
    (line,) = [line for line in text.splitlines() if line.startswith("ExecStart=")]
    return line


def test_systemd_quoted_escapes_what_systemd_would_expand():
    assert systemd_quoted("plain words") == '"plain words"'
    assert systemd_quoted('a$b %i c\\d "e"') == r'"a$$b %%i c\\d \"e\""'


def test_a_command_reaches_bash_literally_on_a_real_host():
    """The captured timer-command-quoting.txt: its unit's ExecStart= line, as deployed by
    deploy.py to a Debian 12 host, then what the command printed when systemd ran it (bash's
    BASH_EXECUTION_STRING: the very command string bash got)."""
    deployed, separator, *printed = lines("timer-command-quoting.txt")
    assert separator == "--" and printed == [QUOTING]
    timers = {"quoting": {"command": QUOTING, "on_calendar": "*-*-* 03:00"}}
    units = processes(load_settings({"timers": timers}), False, True).units
    assert exec_start(units["/etc/systemd/system/myproject-timer-quoting.service"]) == deployed
    worker = processes(load_settings({"workers": {"q": QUOTING}}), True, False).units
    assert exec_start(worker["/etc/systemd/system/myproject-worker-q@.service"]).endswith(
        " " + systemd_quoted(QUOTING)
    )


@needs_analyze
def test_the_units_pass_systemd_analyze_verify(tmp_path):
    """The rendered units, their launcher a stub here, pass ``systemd-analyze verify`` without
    a warning; the command unescaped would not (so the check sees escaping)."""
    launcher = tmp_path / "launcher"
    launcher.write_text("#!/bin/sh\n")
    launcher.chmod(0o755)
    timers = {"tick": {"command": QUOTING, "on_calendar": "Mon *-*-* 09:00"}}
    wanted = processes(load_settings({"workers": {"q": QUOTING}, "timers": timers}), True, True)
    for path, text in wanted.units.items():
        (tmp_path / Path(path).name).write_text(text.replace(RELEASE_LAUNCHER, str(launcher)))

    def verify(unit: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [ANALYZE, "verify", str(tmp_path / unit)], capture_output=True, text=True, timeout=60
        )

    for unit in ("myproject-worker-q@1.service", *wanted.timers, "myproject-timer-tick.service"):
        result = verify(unit)
        assert (result.returncode, result.stdout + result.stderr) == (0, ""), unit
    template = tmp_path / "myproject-worker-q@.service"
    raw = template.read_text().replace(systemd_quoted(QUOTING), f'"{QUOTING}"')
    (tmp_path / "raw-q@.service").write_text(raw)
    assert verify("raw-q@1.service").stderr  # e.g. "Ignoring unknown escape sequences"


def test_processes_names_instances_timers_and_drop_in_links():
    wanted = processes(load_settings({"workers": WORKERS, "timers": TIMERS}), True, True)
    assert wanted.instances == INSTANCES
    assert wanted.timers == ("myproject-timer-tick.timer",)
    assert sorted(wanted.units) == [
        "/etc/systemd/system/myproject-timer-tick.service",
        "/etc/systemd/system/myproject-timer-tick.timer",
        "/etc/systemd/system/myproject-worker-demo@.service",
    ]
    assert sorted(wanted.drop_in_links) == [
        "/etc/systemd/system/myproject-timer-tick.service.d",
        "/etc/systemd/system/myproject-worker-demo@.service.d",
    ]
    timer = wanted.units["/etc/systemd/system/myproject-timer-tick.timer"]
    assert "\nOnCalendar=*:*:0/10\n" in timer
    worker = wanted.units["/etc/systemd/system/myproject-worker-demo@.service"]
    assert "\nTimeoutStopSec=30\n" in worker and "\nRestart=always\n" in worker
    assert exec_start(worker) == (
        f'ExecStart={RELEASE_LAUNCHER} /srv/myproject/current "wsgi:app" "" "sleep 1000"'
    )


def test_a_host_without_workers_or_timers_leaves_them_out():
    s = load_settings({"workers": WORKERS, "timers": TIMERS})
    only_timers, only_workers = processes(s, False, True), processes(s, True, False)
    assert only_timers.instances == () and only_timers.timers == ("myproject-timer-tick.timer",)
    assert not any("worker" in path for path in (*only_timers.units, *only_timers.drop_in_links))
    assert only_workers.timers == () and only_workers.instances == INSTANCES
    assert not any("timer" in path for path in (*only_workers.units, *only_workers.drop_in_links))
    nothing = processes(s, False, False)
    assert (nothing.units, nothing.instances, nothing.timers) == ({}, (), ())


def fingerprint(**settings) -> str:
    return processes(load_settings({"workers": WORKERS, **settings}), True, True).fingerprint


def test_the_workers_fingerprint_follows_their_configuration():
    base = fingerprint()
    assert fingerprint() == base
    demo = WORKERS["demo"]
    assert fingerprint(workers={"demo": {**demo, "command": "sleep 999"}}) != base
    assert fingerprint(workers={"demo": {**demo, "stop_timeout": 60}}) != base
    assert fingerprint(env={"QUEUE": "high"}) != base
    assert fingerprint(workers={**WORKERS, "other": "sleep 5"}) != base


def test_more_instances_keep_the_fingerprint_and_add_an_instance():
    """A new instance is started alone (workers_to_move: it is not active), the running ones
    are left alone."""
    s = load_settings({"workers": {"demo": {**WORKERS["demo"], "instances": 3}}})
    assert processes(s, True, True).fingerprint == fingerprint()
    assert processes(s, True, True).instances == (*INSTANCES, "myproject-worker-demo@3.service")


def test_a_timers_change_does_not_restart_the_workers():
    assert fingerprint(timers=TIMERS) == fingerprint()


# -- facts on captured output -----------------------------------------------------------


def process_units(captured: str) -> dict:
    fact = ProcessUnits()
    fact.command(app="myproject")
    return fact.process(lines(captured))


def test_process_units_of_a_host_without_any():
    assert process_units("process-units-none.txt") == ProcessUnits.default()


def test_process_units_of_a_deployed_host():
    assert process_units("process-units.txt") == {
        "files": [
            "myproject-worker-demo@.service",
            "myproject-timer-tick.service",
            "myproject-timer-tick.timer",
        ],
        "units": {
            "myproject-timer-tick.service": "inactive",
            "myproject-worker-demo@1.service": "active",
            "myproject-worker-demo@2.service": "active",
            "myproject-timer-tick.timer": "active",
        },
        "enabled": [*INSTANCES, "myproject-timer-tick.timer"],
    }


def test_process_units_show_a_failed_timer_run():
    assert process_units("process-units-failed-timer.txt")["units"] == {
        "myproject-timer-tick.service": "failed",
        "myproject-worker-demo@1.service": "active",
        "myproject-worker-demo@2.service": "active",
        "myproject-timer-tick.timer": "active",
    }


def test_process_units_command_covers_the_apps_units_alone():
    command = ProcessUnits().command(app="notes")
    assert "'notes-worker-*' 'notes-timer-*'" in command
    assert "/etc/systemd/system/notes-worker-* /etc/systemd/system/notes-timer-*" in command
    assert "/etc/systemd/system/*.wants/notes-worker-*" in command


def timer_status(captured: str) -> dict:
    fact = TimerStatus()
    fact.command(timer="myproject-timer-tick")
    return fact.process(lines(captured))


def utc(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp())


def test_timer_status_before_its_first_run():
    assert timer_status("timer-status-never-run.txt") == {
        "ActiveState": "active",
        "UnitFileState": "enabled",
        "NextElapse": utc("2026-12-06 03:00:00"),
        "LastTrigger": 0,
        "Running": False,
        "Result": "success",
        "ExecMainStatus": "0",
    }


def test_timer_status_after_a_run():
    status = timer_status("timer-status-ran.txt")
    assert status["LastTrigger"] == utc("2026-12-05 10:02:00")
    assert status["NextElapse"] == status["LastTrigger"] + 10  # *:*:0/10
    assert (status["Result"], status["ExecMainStatus"]) == ("success", "0")


def test_timer_status_after_a_failed_run():
    status = timer_status("timer-status-failed.txt")
    assert (status["Result"], status["ExecMainStatus"]) == ("exit-code", "1")
    assert status["ActiveState"] == "active" and status["NextElapse"] > status["LastTrigger"] > 0


def test_timer_status_takes_no_other_zones_date_for_utc():
    """timer-status-berlin.txt: the same command with TZ=Europe/Berlin (04:00 CET is the
    03:00 UTC of timer-status-never-run.txt): no date is misread by an hour."""
    assert "NextElapseUSecRealtime=Sun 2026-12-06 04:00:00 CET" in lines("timer-status-berlin.txt")
    assert timer_status("timer-status-berlin.txt")["NextElapse"] == 0


def test_timer_status_asks_for_utc_dates():
    command = TimerStatus().command(timer="myproject-timer-tick")
    assert command.startswith("TZ=UTC ")


def test_timer_checks_flag_a_failed_run_with_its_log(fake):
    timer = "myproject-timer-tick"
    fake(
        {
            fact(TimerStatus, timer=timer): timer_status("timer-status-failed.txt"),
            fact(JournalTail, units=[f"{timer}.service"], lines=5): ["exit 1", "\x1b[31mred"],
            fact(SandboxExposure, unit=f"{timer}.service"): 1.2,
        }
    )
    checks = {c.name: c for c in timer_checks(LAYOUT, "tick")}
    assert checks["timer tick next run"].ok
    last = checks["timer tick last run"]
    assert not last.ok
    assert last.observed == "exit-code: \\x1b[31mred | exit 1 (2026-12-05 10:02:50 UTC)"
    assert "\x1b" not in last.observed


def test_timer_checks_pass_a_timer_that_never_ran(fake):
    timer = "myproject-timer-tick"
    fake(
        {
            fact(TimerStatus, timer=timer): timer_status("timer-status-never-run.txt"),
            fact(SandboxExposure, unit=f"{timer}.service"): 1.2,
        }
    )
    assert all(c.ok for c in timer_checks(LAYOUT, "tick"))


# -- what is obsolete -------------------------------------------------------------------


def wanted(instances: int = 2, timers: bool = True):
    workers = {"demo": {**WORKERS["demo"], "instances": instances}}
    return processes(load_settings({"workers": workers, "timers": TIMERS}), True, timers)


def test_nothing_is_obsolete_on_a_host_as_deployed():
    assert obsolete(process_units("process-units.txt"), wanted()) == ([], [])
    assert obsolete(process_units("process-units-none.txt"), wanted()) == ([], [])


def test_a_removed_timer_and_an_instance_beyond_the_count_are_obsolete():
    """Captured with 3 instances and a second timer; the settings now want 2 and one."""
    units, files = obsolete(process_units("process-units-leftovers.txt"), wanted())
    assert units == ["myproject-timer-quoting.timer", "myproject-worker-demo@3.service"]
    assert files == ["myproject-timer-quoting.service", "myproject-timer-quoting.timer"]


def test_an_enabled_but_stopped_instance_is_still_disabled():
    units, _ = obsolete(process_units("process-units-stopped-leftover.txt"), wanted())
    assert "myproject-worker-demo@3.service" in units


def test_a_host_that_no_longer_runs_the_timers_removes_them():
    units, files = obsolete(process_units("process-units.txt"), wanted(timers=False))
    assert units == ["myproject-timer-tick.timer"]
    assert files == ["myproject-timer-tick.service", "myproject-timer-tick.timer"]


def test_a_retired_app_loses_every_worker_and_timer():
    units, files = obsolete(process_units("process-units.txt"), NO_PROCESSES)
    assert units == ["myproject-timer-tick.timer", *INSTANCES]
    assert files == [
        "myproject-timer-tick.service",
        "myproject-timer-tick.timer",
        "myproject-worker-demo@.service",
    ]


def test_processes_removed_stops_then_removes_files_and_links(fake):
    fake({fact(ProcessUnits, app="myproject"): process_units("process-units-leftovers.txt")})
    stop, remove, reload = commands(processes_removed, "myproject", wanted())
    units = "myproject-timer-quoting.timer myproject-worker-demo@3.service"
    assert stop == (
        f"systemctl disable --now {units}; systemctl reset-failed {units} 2>/dev/null; true"
    )
    quoting = "/etc/systemd/system/myproject-timer-quoting"
    assert remove == (
        f"rm -f {quoting}.service {quoting}.timer {quoting}.service.d {quoting}.timer.d"
    )
    assert reload == "systemctl daemon-reload"


def test_processes_removed_does_nothing_when_nothing_is_obsolete(fake):
    host = fake({fact(ProcessUnits, app="myproject"): process_units("process-units.txt")})
    assert commands(processes_removed, "myproject", wanted()) == []
    assert host.noops == ["no worker or timer of myproject to remove"]


# -- the release gate's decisions -------------------------------------------------------

SETTINGS = {"workers": WORKERS}
STAMP = {"config": "c1", "release": RELEASE}
WORKER_ARGS = "--worker-steady=5 --worker-deadline=90"  # stop_timeout 30 + 60


SWITCHED = datetime(2026, 12, 5, 10, 0, 0)  # current's mtime, as pyinfra's Link fact gives it


def gate_facts(
    stamp: dict | None = STAMP,
    inactive: tuple[str, ...] = (),
    serving: bool = True,
    started_before: tuple[str, ...] = (),
) -> dict:
    """The host as release_gated reads it: current at RELEASE, switched at SWITCHED,
    recorded healthy; the service running it (``serving``) or the previous release; the
    workers' stamp; their states and starts (after the switch, but ``started_before``)."""
    loaded = RELEASE if serving else OLD_RELEASE
    switch = int(SWITCHED.replace(tzinfo=UTC).timestamp())
    facts = {
        ("Link", f"path={LAYOUT.current}"): {"link_target": RELEASE, "mtime": SWITCHED},
        ("FileContents", f"path={LAYOUT.history}"): ["d029e2b4043edb11", "eed358cb2531b095"],
        fact(UnitStatus, unit=LAYOUT.unit_name, along=LAYOUT.units_read_together): {
            "ActiveState": "active",
            "InvocationID": "run1",
        },
        ("FileContents", f"path={LAYOUT.service_record}"): [f"run1 {loaded}"],
        ("FileContents", f"path={LAYOUT.workers_stamp}"): [json.dumps(stamp)] if stamp else None,
    }
    for unit in INSTANCES:
        state = "inactive" if unit in inactive else "active"
        started = switch - 1 if unit in started_before else switch
        facts[fact(UnitStatus, unit=unit, along=INSTANCES)] = {
            "ActiveState": state,
            "ExecMainStartTimestamp": started,
        }
    return facts


def gated(config: str | None = "c1", restart: bool = False, **settings) -> list:
    s = load_settings({**SETTINGS, **settings})
    return commands(
        gate.release_gated, LAYOUT, s, restart, workers=INSTANCES, workers_config=config
    )


def stamp_written(command) -> dict:
    assert isinstance(command, FileUploadCommand) and command.dest == LAYOUT.workers_stamp
    return json.loads(command.src.getvalue())


def worker_flags(*units: str) -> str:
    return " ".join(f"--worker={unit}" for unit in units)


def test_nothing_runs_when_web_and_workers_run_the_release_with_their_config(fake):
    host = fake(gate_facts())
    assert gated() == []
    assert host.noops == [f"{RELEASE} is live and recorded healthy, its workers on it"]


def test_only_the_stopped_instances_start_when_the_stamp_matches(fake):
    fake(gate_facts(inactive=(INSTANCES[1],)))
    assert gated() == [f"{GATE} workers {worker_flags(INSTANCES[1])} {WORKER_ARGS}"]


def test_an_instance_started_before_the_last_switch_moves(fake):
    """A worker that restarted on its own while a release that then failed its gate was
    live runs that release: its start is older than the switch back."""
    fake(gate_facts(started_before=(INSTANCES[0],)))
    assert gated() == [f"{GATE} workers {worker_flags(INSTANCES[0])} {WORKER_ARGS}"]


def test_a_new_configuration_restarts_every_instance_and_is_recorded(fake):
    fake(gate_facts(inactive=(INSTANCES[1],)))
    restart, stamp = gated(config="c2")
    assert restart == f"{GATE} workers {worker_flags(*INSTANCES)} {WORKER_ARGS}"
    assert stamp_written(stamp) == {"config": "c2", "release": RELEASE}


def test_workers_on_another_release_all_move_with_a_serving_web(fake):
    fake(gate_facts(stamp={"config": "c1", "release": OLD_RELEASE}))
    restart, stamp = gated()
    assert restart == f"{GATE} workers {worker_flags(*INSTANCES)} {WORKER_ARGS}"
    assert stamp_written(stamp) == STAMP


def test_a_new_release_is_gated_with_every_worker(fake):
    fake(gate_facts(stamp={"config": "c1", "release": OLD_RELEASE}, serving=False))
    command, stamp = gated()
    assert command.startswith(f"{GATE} gate --history={LAYOUT.history} ")
    assert " --service=myproject.service " in command
    assert command.endswith(f" {worker_flags(*INSTANCES)} {WORKER_ARGS}")
    assert stamp_written(stamp) == STAMP


def test_a_first_deploy_records_the_stamp(fake):
    fake(gate_facts(stamp=None, serving=False))
    command, stamp = gated()
    assert command.endswith(f" {worker_flags(*INSTANCES)} {WORKER_ARGS}")
    assert stamp_written(stamp) == STAMP


def test_a_gate_of_the_web_alone_leaves_running_workers_alone(fake):
    """uWSGI does not run the release (a crash), the workers do, with their config."""
    fake(gate_facts(serving=False))
    (command,) = gated()
    assert "--worker" not in command


def test_a_rollback_keeps_the_recorded_configuration(fake):
    """rollback.py (workers_config None): every worker moves with the web, the stamp keeps
    the configuration applied."""
    fake(gate_facts(stamp={"config": "c1", "release": OLD_RELEASE}))
    command, stamp = gated(config=None, restart=True)
    assert command.startswith(f"{GATE} gate --restart ")
    assert command.endswith(f" {worker_flags(*INSTANCES)} {WORKER_ARGS}")
    assert stamp_written(stamp) == {"config": "c1", "release": RELEASE}


def test_a_rollback_on_a_host_without_a_stamp_records_an_empty_config(fake):
    fake(gate_facts(stamp=None))
    command, stamp = gated(config=None, restart=True)
    assert command.endswith(f" {worker_flags(*INSTANCES)} {WORKER_ARGS}")
    assert stamp_written(stamp) == {"config": "", "release": RELEASE}  # the next deploy: all


def test_the_worker_deadline_covers_the_longest_graceful_stop(fake):
    fake(gate_facts(stamp=None))
    slow = {"demo": WORKERS["demo"], "slow": {"command": "x", "stop_timeout": 300}}
    restart, _ = gated(workers=slow, worker_start_seconds=12)
    assert restart.endswith(" --worker-steady=12 --worker-deadline=360")


def test_no_workers_no_stamp(fake):
    host = fake(gate_facts(stamp=None))
    s = load_settings({})
    assert commands(gate.release_gated, LAYOUT, s, workers=(), workers_config="x") == []
    assert host.noops == [f"{RELEASE} is live and recorded healthy"]


# -- host side: the gate's switch-back --------------------------------------------------


class GateRun:
    """hostside.gate.gate() with its uWSGI, health and workers replaced: releases A (healthy
    before) and B (current), what each serve and worker restart saw."""

    def __init__(self, tmp_path: Path, monkeypatch, web: list, workers: list):
        root = tmp_path / "srv"
        for folder in ("releases/A", "releases/B", "venvs", "state"):
            (root / folder).mkdir(parents=True)
        (root / "state/history").write_text("A\n")
        (root / "current").symlink_to(root / "releases/B")
        self.paths = hostside_gate.Paths(
            root / "current", root / "state/history", root / "releases", root / "venvs"
        )
        self.served: list[tuple[str, bool]] = []
        self.moved: list[tuple[tuple[str, ...], str]] = []

        def serve(service, check, release, restart=False):
            self.served.append((Path(release).name, restart))
            return web.pop(0)

        def restart_workers(units, steady, deadline):
            self.moved.append((tuple(units), Path(self.paths.current).resolve().name))
            return workers.pop(0)

        monkeypatch.setattr(hostside_gate, "serve", serve)
        monkeypatch.setattr(hostside_gate, "restart_workers", restart_workers)
        monkeypatch.setattr(hostside_gate, "unit_log", lambda unit: f"  | log of {unit}")

    def __call__(self) -> int:
        service = Service(Instance("a.service", "/s"), Instance("a-h.service", "/h"), "a", 2)
        workers = hostside_gate.Workers(("a-worker-w@1.service",), 5, 90)
        return hostside_gate.gate(self.paths, service, Health(), 5, workers=workers)

    @property
    def live(self) -> str:
        return Path(self.paths.current).resolve().name


def test_a_healthy_release_moves_the_workers_and_is_recorded(tmp_path, monkeypatch, capsys):
    run = GateRun(tmp_path, monkeypatch, web=[None], workers=[None])
    assert run() == 0
    assert run.moved == [(("a-worker-w@1.service",), "B")]
    assert run.paths.history.read_text() == "A\nB\n"


def test_a_worker_that_fails_switches_web_and_workers_back(tmp_path, monkeypatch, capsys):
    problem = "worker a-worker-w@1.service did not stay up for 5 s after its start"
    run = GateRun(tmp_path, monkeypatch, web=[None, None], workers=[problem, None])
    assert run() == 1
    assert run.live == "A"
    assert run.served == [("B", False), ("A", True)]
    assert [release for _, release in run.moved] == ["B", "A"]
    err = capsys.readouterr().err
    assert f"release B failed its health check: {problem}; switched back to A" in err
    assert "log of a.service" not in err  # the web was fine: no uWSGI log
    assert run.paths.history.read_text() == "A\n"


def test_workers_failing_on_the_previous_release_too_are_reported(tmp_path, monkeypatch, capsys):
    run = GateRun(tmp_path, monkeypatch, web=[None, None], workers=["worker x failed", "again"])
    assert run() == 1
    assert "; switched back to A (still failing: again)" in capsys.readouterr().err


def test_a_failing_web_leaves_the_workers_untouched(tmp_path, monkeypatch, capsys):
    run = GateRun(tmp_path, monkeypatch, web=["HTTP 500", None], workers=[])
    assert run() == 1
    assert run.live == "A" and run.moved == []
    assert run.served == [("B", False), ("A", True)]
    err = capsys.readouterr().err
    assert "failed its health check: HTTP 500; switched back to A" in err
    assert "-- its log (journalctl -u a.service):\n  | log of a.service" in err


def test_the_workers_subcommand_restarts_the_named_units(monkeypatch, capsys):
    calls = []

    def restart_workers(units, steady, deadline):
        calls.append((units, steady, deadline))
        return "worker w@2.service did not start: \x1b[2J"

    monkeypatch.setattr(hostside_gate, "restart_workers", restart_workers)
    argv = ["workers", "--worker=w@1.service", "--worker=w@2.service", "--worker-steady=3"]
    assert cli.main([*argv, "--worker-deadline=150"]) == 1
    assert calls == [(["w@1.service", "w@2.service"], 3.0, 150.0)]
    assert capsys.readouterr().err == "worker w@2.service did not start: \\x1b[2J\n"


class FakeSystemd:
    """systemctl for restart_workers: each unit's invocation ids, one per read."""

    def __init__(self, monkeypatch, invocations: dict[str, list[str]], restart_rc: int = 0):
        self.calls: list[list[str]] = []
        self.invocations = invocations

        def run(args, **kwargs):
            self.calls.append(args)
            return subprocess.CompletedProcess(args, restart_rc, "", "Job failed")

        def running_invocation(unit):
            ids = self.invocations[unit]
            return ids.pop(0) if len(ids) > 1 else ids[0]

        monkeypatch.setattr(hostside_workers.subprocess, "run", run)
        monkeypatch.setattr(hostside_workers, "running_invocation", running_invocation)
        monkeypatch.setattr(hostside_workers, "unit_log", lambda unit, lines: f"  | {unit}")


def test_restart_workers_requires_the_same_run_all_along(monkeypatch):
    fake = FakeSystemd(monkeypatch, {"w@1.service": ["i1"], "w@2.service": ["i2", "i2", "i3"]})
    problem = hostside_workers.restart_workers(["w@1.service", "w@2.service"], 0.2, 90)
    assert problem and problem.startswith("worker w@2.service did not stay up for 0.2 s")
    assert fake.calls[1] == ["systemctl", "restart", "w@1.service", "w@2.service"]


def test_restart_workers_passes_steady_workers(monkeypatch):
    FakeSystemd(monkeypatch, {"w@1.service": ["i1"]})
    assert hostside_workers.restart_workers(["w@1.service"], 0.1, 90) is None


def test_restart_workers_names_the_one_that_did_not_start(monkeypatch):
    FakeSystemd(monkeypatch, {"w@1.service": ["i1"], "w@2.service": [""]}, restart_rc=1)
    problem = hostside_workers.restart_workers(["w@1.service", "w@2.service"], 1, 90)
    assert problem == "worker w@2.service did not start: Job failed\n  | w@2.service"


def test_restart_workers_without_units_does_nothing(monkeypatch):
    fake = FakeSystemd(monkeypatch, {})
    assert hostside_workers.restart_workers([], 1, 90) is None and fake.calls == []


def test_a_timer_whose_run_is_in_progress_has_no_next_run_and_passes(fake):
    """systemd schedules the next run once the one in progress ends (a Debian 12 host,
    a run of ``sleep 40`` every 10 s): verify says so instead of failing."""
    reader = TimerStatus()
    reader.command(timer="myproject-timer-slow")
    status = reader.process(lines("timer-status-running.txt"))
    assert (status["NextElapse"], status["Running"]) == (0, True)
    timer = "myproject-timer-slow"
    fake(
        {
            fact(TimerStatus, timer=timer): status,
            fact(SandboxExposure, unit=f"{timer}.service"): 1.3,
        }
    )
    by_name = {c.name: c for c in timer_checks(LAYOUT, "slow")}
    check = by_name["timer slow next run"]
    assert check.ok and check.observed == "a run in progress", check


def test_units_matching_the_patterns_that_this_deploy_did_not_write_are_left_alone():
    """App ``api-timer-sync`` (a name allowed before #28) on the host of app ``api``: its
    units match api's patterns, but their files are not ours, so api's deploy leaves them
    running; so does an instance of a template the admin wrote."""
    found = {
        "files": ["api-worker-mail@.service"],
        "units": {
            "api-timer-sync.service": "active",
            "api-timer-sync.socket": "active",
            "api-worker-hand@1.service": "active",
            "api-worker-mail@1.service": "active",
        },
        "enabled": ["api-timer-sync.service", "api-worker-hand@1.service"],
    }
    assert obsolete(found, NO_PROCESSES) == (
        ["api-worker-mail@1.service"],
        ["api-worker-mail@.service"],
    )


def test_a_command_expanding_a_value_of_env_is_found():
    """What the deploy warns of: the value would land on the command line."""
    command = "rq worker --url $REDIS_URL ${QUEUE} $HOME $$"
    assert expanded_env(command, ["REDIS_URL", "QUEUE", "OTHER"]) == ["QUEUE", "REDIS_URL"]
    assert expanded_env("flask --app notes digest", ["REDIS_URL"]) == []
    # assignments before the command put the value in its environment, not its command line
    moved = "RQ_REDIS_URL=\"$REDIS_URL\" Q='x' rq worker board"
    assert expanded_env(moved, ["REDIS_URL"]) == []
    assert expanded_env(moved + " --url $REDIS_URL", ["REDIS_URL"]) == ["REDIS_URL"]


def test_a_procfile_worker_reads_its_command_from_its_releases_procfile(tmp_path):
    """Its unit names the entry, not the command: a release switched or rolled back to
    runs its own Procfile's command; duplicates and a Procfile of web alone are refused."""
    app = app_with_procfile(tmp_path, "web: x\nworker: rq worker tasks\n")
    s = load_settings({"app_src": app, "workers": "Procfile"})
    (unit,) = processes(s, True, False).units.values()
    assert ' "" --procfile worker\n' in unit and "rq worker" not in unit
    twice = app_with_procfile(tmp_path / "b", "worker: a\nworker: b\n")
    assert "line 2: a second 'worker:' entry" in error_for(app_src=twice, workers="Procfile")
    alone = app_with_procfile(tmp_path / "c", "web: x\n")
    assert "has no entry besides web and release" in error_for(app_src=alone, workers="Procfile")


def test_a_worker_table_cannot_claim_to_come_from_the_procfile():
    message = error_for(workers={"w": {"command": "x", "procfile": True}})
    assert "procfile is not a setting" in message


def test_run_in_release_runs_the_entry_of_the_releases_own_procfile(tmp_path):
    """files/run-in-release, run here with sh: the entry of the Procfile of the release
    ``current`` names (the last of its name, CRLF line ends and spaces allowed), in its app
    folder, with FLASK_APP; a missing entry fails, naming it."""
    release = tmp_path / "releases/r1"
    (release / "app").mkdir(parents=True)
    (release / "venv/bin").mkdir(parents=True)
    (release / "app/Procfile").write_text('web: x\r\n  worker:  echo "$PWD $FLASK_APP"\r\n')
    (tmp_path / "current").symlink_to(release)
    launcher = [str(REPO / "files/run-in-release"), str(tmp_path / "current"), "wsgi:app", ""]
    ran = subprocess.run(["sh", *launcher, "--procfile", "worker"], capture_output=True, text=True)
    assert ran.returncode == 0 and ran.stdout == f"{release.resolve()}/app wsgi:app\n", ran
    missing = subprocess.run(
        ["sh", *launcher, "--procfile", "beat"], capture_output=True, text=True
    )
    assert missing.returncode == 1 and "no 'beat:' entry" in missing.stderr
