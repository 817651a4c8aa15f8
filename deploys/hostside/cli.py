"""Release checks run on the host by the deploy (shipped to /usr/local/lib/flask-deploy/).

    release_gate.py check --release DIR --module wsgi:app --user U --sandbox DROP_IN
                          [--source-root src] [--command CMD ...] [HEALTH]
        Before a release goes live: build its app the way uWSGI will (import the module, call
        a ``factory()``) with its own venv, as the app user with the app's environment and the
        service's sandbox (a transient systemd unit taking every setting of the service's
        DROP_IN) and make sure it is a WSGI app; run each release command in the same sandbox;
        then serve it from a throw-away uWSGI on its own socket, in the same sandbox, and
        require a healthy answer.

    release_gate.py run --release DIR --module wsgi:app --user U --sandbox DROP_IN
                        [--source-root src] [--workdir DIR] -- CMD
        Run the shell command CMD in the release DIR (default working directory: its app
        folder) exactly like a release command: app user, environment, sandbox, the release's
        venv first on PATH, FLASK_APP set to the app. Exits with CMD's status.

    release_gate.py gate --history FILE --releases DIR --venvs DIR [--keep K] SERVICE [HEALTH]
        Make the running uWSGI serve the release ``current`` points to (restarted without a
        pause if it does not yet, see ``restart``), then health-check it through nginx. On
        success record it in the history and prune old releases and venvs; on failure switch
        ``current`` back to the previous healthy release, serve it again, and exit 1 with
        the reason. With WORKERS, the workers move onto the release once it is healthy, and
        back with it when one of them does not stay up.

    release_gate.py workers WORKERS
        Restart the worker units onto the release ``current`` points to (each stop is graceful:
        SIGTERM, and the job in hand finishes within the unit's TimeoutStopSec) and require
        each to stay up; exit 1 with the failing worker's log.

    release_gate.py restart [--timeout S] SERVICE
        Restart the service onto the release ``current`` points to and the configuration on
        disk without a request waiting: its handover instance starts on the new release and
        takes requests from the same socket, the service is paused (each worker finishes its
        request, then stops accepting) and restarted, then the handover is paused and
        stopped. A graceful reload (SIGHUP) would hold every request while the app loads,
        and may drop a connection a worker had just accepted.

    release_gate.py backup --app A --user U --root DIR --keep N
                           [--sandbox DROP_IN --data DIR --current LINK] [--database DB]
                           [--redis-socket SOCK --redis-data DIR]
                           [--redis-socket SOCK --redis-password FILE --redis-limit BYTES
                            --redis-data DIR]
                           [--copy-to USER@HOST ... --copy-key KEY --known-hosts FILE]
        Take one backup of the app into a new folder of ROOT (its data directory and Redis
        snapshot read as the app in its sandbox; on a database server, no data directory
        and its Redis asked for a snapshot as its user U, whose password FILE holds, the
        snapshot at most BYTES; its
        database dumped by PostgreSQL's superuser), with a manifest; then keep the newest
        N, and push it to each backup server (rsync over SSH with KEY, their host keys in
        FILE) (hostside/backup.py).

    release_gate.py restore --app A --user U --root DIR --backup NAME|latest
                            [--sandbox DROP_IN --data DIR HEALTH] [--unit UNIT ...]
                            [--database DB [--database-password FILE]] [--redis-data DIR]
        Put a backup of ROOT back: its parts checked against its manifest, the UNITs
        stopped, the data directory, Redis snapshot and database replaced (what they
        replace kept until the restore succeeded), the UNITs started in reverse order and
        the site checked through nginx. Without --data (a database server): the database
        (restored by the role U with the password in FILE) and the Redis snapshot in DIR
        alone (hostside/restore.py).

    release_gate.py accept --incoming DIR --store DIR --quarantine DIR --pushed SERVER/APP ...
        On a backup server: take in the backups each app server pushed of each app into
        INCOMING/SERVER/APP (parts checked against their manifest, copied into
        STORE/SERVER/APP/NAME, root only, never replacing one), and remove them from there
        (what cannot be removed moved into QUARANTINE) (hostside/accept.py).

    release_gate.py live --stats STATS_SOCKET --user U
        Print the release dir uWSGI runs and how many workers are up (nothing if it does not
        answer), read as the app user; the deploy's LiveRelease fact reads this.

    SERVICE: --current LINK --service APP.service --stats STATS_SOCKET
             --handover APP-handover.service --handover-stats STATS_SOCKET --user U --processes N
    WORKERS: [--worker UNIT ...] [--worker-steady S] [--worker-deadline S]
    HEALTH: [--path /] [--host-header H] [--expect TEXT] [--timeout S] [--https]

Standard library only: it runs with the host's python3, as root (files/release_gate.py, the
package deploys/hostside beside it in hostside/). It follows no path in a
folder the app can write (its runtime folder: the stats and candidate sockets) as root: it
reads those as the app user (``as_user``).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

from .accept import Receiver, accept
from .backup import BackupJob, take_backup
from .candidate import check_candidate
from .gate import Paths, Workers, gate
from .handover import Instance, Service, restart_without_pause
from .health import Health
from .live import print_live
from .restore import RestoreJob, restore_backup
from .rules import TRANSIENT_KINDS, transient_unit
from .sandbox import AppRun, check_import, release_commands, run_command
from .units import escaped
from .watch import die_with_run


def main(argv=None) -> int:
    """Parse the command line (see the module's docstring) and carry it out; the exit status."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="subcommand", required=True)
    check = sub.add_parser("check")
    run = sub.add_parser("run")
    restore = sub.add_parser("restore")
    for flag in ("--release", "--module", "--sandbox"):
        for each in (check, run):
            each.add_argument(flag, required=True)
    check.add_argument("--command", action="append", default=[])
    for each in (check, run):
        each.add_argument("--user", required=True)
        each.add_argument("--source-root", default="")
    run.add_argument("--workdir")
    run.add_argument("shell_command")
    g = sub.add_parser("gate")
    for flag in ("--history", "--releases", "--venvs"):
        g.add_argument(flag, required=True)
    g.add_argument("--keep", type=int, default=5)
    g.add_argument("--restart", action="store_true", help="restart whatever the service runs")
    restart = sub.add_parser("restart")
    restart.add_argument("--timeout", type=float, default=30)
    for each in (g, restart):
        for flag in ("--current", "--service", "--stats", "--handover", "--handover-stats"):
            each.add_argument(flag, required=True)
        each.add_argument("--user", required=True)
        each.add_argument("--processes", type=int, required=True)
        each.add_argument("--record", help="root's record of what the service's run loaded")
    for each in (check, g, restore):
        each.add_argument("--path", default="/")
        each.add_argument("--host-header", default="localhost")
        each.add_argument("--expect", default="")
        each.add_argument("--timeout", type=float, default=30)
        each.add_argument("--https", action="store_true")
    workers = sub.add_parser("workers")
    for each in (g, workers):
        each.add_argument("--worker", action="append", default=[])
        each.add_argument("--worker-steady", type=float, default=5)
        each.add_argument("--worker-deadline", type=float, default=90)
    for each in (check, run, g, restart, workers):
        each.add_argument("--lock", help="the run's deploy lock: end with the run")
    backup = sub.add_parser("backup")
    for flag in ("--app", "--user", "--root"):
        backup.add_argument(flag, required=True)
    backup.add_argument("--keep", type=int, required=True)
    for flag in ("--sandbox", "--data", "--current", "--database", "--redis-socket"):
        backup.add_argument(flag, default="")
    for flag in ("--redis-data", "--redis-password"):
        backup.add_argument(flag, default="")
    backup.add_argument("--redis-limit", type=int, default=0)
    for flag in ("--copy-key", "--known-hosts"):
        backup.add_argument(flag, default="")
    backup.add_argument("--copy-to", action="append", default=[])
    receive = sub.add_parser("accept")
    for flag in ("--incoming", "--store", "--quarantine"):
        receive.add_argument(flag, required=True)
    receive.add_argument("--pushed", action="append", default=[])
    for flag in ("--app", "--user", "--root", "--backup"):
        restore.add_argument(flag, required=True)
    restore.add_argument("--unit", action="append", default=[])
    for flag in ("--sandbox", "--data", "--database", "--redis-data", "--database-password"):
        restore.add_argument(flag, default="")
    live = sub.add_parser("live")
    live.add_argument("--stats", required=True)
    live.add_argument("--user", required=True)
    args = parser.parse_args(argv)
    if args.subcommand == "live":
        return print_live(args.stats, args.user)
    if args.subcommand == "accept":
        pairs = [tuple(pair.split("/", 1)) for pair in args.pushed]
        paths = (Path(args.incoming), Path(args.store), Path(args.quarantine))
        return accept(Receiver(*paths), pairs)
    if args.subcommand in ("backup", "restore"):
        return backup_or_restore(args)
    if args.lock:
        user = getattr(args, "user", None)  # none for ``workers``: it starts no transient unit
        die_with_run(args.lock, [transient_unit(user, kind) for kind in TRANSIENT_KINDS if user])
    try:
        return act(args)
    except (RuntimeError, TimeoutError, subprocess.TimeoutExpired) as err:  # the app's delay
        print(f"release_gate: {escaped(str(err))}", file=sys.stderr)
        return 1


def backup_or_restore(args) -> int:
    """Take a backup, or put one back (their exit status)."""
    if args.subcommand == "backup":
        taking = BackupJob(args.app, args.user, Path(args.root), args.keep, args.sandbox)
        paths = {"data": args.data, "current": args.current}
        paths = {key: Path(value) for key, value in paths.items() if value}
        words = ("database", "redis_socket", "redis_data", "redis_password", "redis_limit")
        copy = {"copy_to": tuple(args.copy_to), "copy_key": args.copy_key}
        copy["known_hosts"] = args.known_hosts
        taking = replace(taking, **paths, **{word: getattr(args, word) for word in words})
        return take_backup(replace(taking, **copy))
    job = RestoreJob(args.app, args.user, Path(args.root), args.backup, tuple(args.unit))
    if args.data:  # an app server's: its files, its site
        check = Health(args.path, args.host_header, args.expect, args.timeout, args.https)
        job = replace(job, sandbox=args.sandbox, data=Path(args.data), check=check)
    given = ("database", "redis_data", "database_password")
    return restore_backup(replace(job, **{word: getattr(args, word) for word in given}))


def act(args) -> int:
    """Carry out the parsed subcommand (but ``live``)."""
    if args.subcommand in ("gate", "workers"):
        workers = Workers(tuple(args.worker), args.worker_steady, args.worker_deadline)
    if args.subcommand == "workers":
        problem = workers.restart()
        if problem:
            print(escaped(problem), file=sys.stderr)
        return 1 if problem else 0
    if args.subcommand in ("check", "gate"):
        check = Health(args.path, args.host_header, args.expect, args.timeout, args.https)
    if args.subcommand in ("gate", "restart"):
        service = Service(
            Instance(args.service, args.stats),
            Instance(args.handover, args.handover_stats),
            args.user,
            args.processes,
            Path(args.record) if args.record else None,
        )
    if args.subcommand == "restart":
        problem = restart_without_pause(service, os.path.realpath(args.current), args.timeout)
        if problem:
            print(f"{args.service} did not restart: {escaped(problem)}", file=sys.stderr)
        return 1 if problem else 0
    if args.subcommand == "gate":
        paths = Paths(*(Path(p) for p in (args.current, args.history, args.releases, args.venvs)))
        return gate(paths, service, check, args.keep, args.restart, workers)
    app = AppRun(Path(args.release), args.module, args.user, args.sandbox, args.source_root)
    if args.subcommand == "run":
        workdir = Path(args.workdir) if args.workdir else None
        status = run_command(app, transient_unit(app.user, "command"), args.shell_command, workdir)
        if status:
            print(f"the command failed (exit {status})", file=sys.stderr)
        return status
    return check_import(app) or release_commands(app, args.command) or check_candidate(app, check)
