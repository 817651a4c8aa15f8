"""Show the apps' recent logs from every host, read-only: ``pyinfra INV logs.py``.

For each host and app (``--data app=NAME``: one app): the last ``log_lines`` (default 50;
``--data log_lines=200``) lines of the journal of the app's service, its socket, its release
checks and commands (run.py), its workers and timers, then of nginx's error log for the
app's site; ``--data process=NAME``: one worker's or timer's journal alone. On a load
balancer, per app: its site's access log (each request with the app server that answered,
that server's status and time) and error log. With HTTPS, certbot's log (renewals), without
the certificates and keys it may hold.
"""

from pyinfra import host

from deploys.config.layout import Layout
from deploys.config.settings import Settings
from deploys.hostside.rules import TRANSIENT_KINDS, transient_unit
from deploys.ops.context import SettingsRefused, prepare_host
from deploys.ops.facts import FileTail, JournalTail
from deploys.ops.output import printable
from deploys.stack.fleet import as_served, fleet
from deploys.stack.https import CERTBOT_LOG, CertbotLogTail


def site_logs(settings: Settings, balancing: bool) -> dict[str, list[str]]:
    """Section title -> the last log_lines lines of nginx's logs of the app's site: its
    error log; on a load balancer (``balancing``), its access log first."""
    layout = Layout.of(settings)
    paths = {"access log": layout.site_access_log} if balancing else {}
    paths["error log"] = layout.site_error_log
    return {
        f"nginx {kind} {path}": host.get_fact(FileTail, path=path, lines=settings.log_lines)
        for kind, path in paths.items()
    }


def process_logs(settings: Settings) -> dict[str, list[str]]:
    """Section title -> the last log_lines lines of the app's workers and timers (with
    ``process``: of that one alone); none when the app has neither."""
    layout = Layout.of(settings)
    known = [*settings.workers, *settings.timers]
    if settings.process and settings.process not in known:
        raise SettingsRefused(
            f"process: {settings.process!r} is none of {settings.app_name}'s workers and timers"
            f" ({', '.join(known) or 'it has none'})"
        )
    names = [settings.process] if settings.process else known
    units = [
        pattern
        for name in names
        for pattern in (f"{layout.app}-worker-{name}@*", f"{layout.timer(name)}.*")
    ]
    if not units:
        return {}
    title = f"journal of {settings.app_name}'s " + (
        f"process {settings.process}" if settings.process else "workers and timers"
    )
    return {title: host.get_fact(JournalTail, units=units, lines=settings.log_lines)}


def app_logs(settings: Settings) -> dict[str, list[str]]:
    """Section title -> the last log_lines lines, for one app on an app server (with
    ``process``: that worker's or timer's alone)."""
    if settings.process:
        return process_logs(settings)
    layout = Layout.of(settings)
    app_units = [layout.unit_name, layout.socket_unit_name, layout.handover_unit_name]
    check_units = [transient_unit(settings.user, kind) for kind in TRANSIENT_KINDS]
    lines = settings.log_lines
    return {
        f"journal of {', '.join(app_units)}": host.get_fact(
            JournalTail, units=app_units, lines=lines
        ),
        f"journal of {settings.app_name}'s release checks and commands (run.py)": host.get_fact(
            JournalTail, units=check_units, lines=lines
        ),
        **process_logs(settings),
        **site_logs(settings, balancing=False),
    }


def data_logs(settings: Settings) -> dict[str, list[str]]:
    """Section title -> the last log_lines lines of the app's Redis and PostgreSQL, where
    they run (this host, or the database server), and of its backups."""
    layout = Layout.of(settings)
    units = [layout.redis_unit_name] if settings.local_redis else []
    units += ["postgresql@*"] if settings.local_postgresql else []
    units += [f"{layout.backup_unit}.service"] if settings.backups else []
    if not units:
        return {}
    title = f"journal of {settings.app_name}'s " + " and ".join(units)
    return {title: host.get_fact(JournalTail, units=units, lines=settings.log_lines)}


def host_logs(settings: Settings) -> dict[str, list[str]]:
    """The sections of one app's logs on this host: a load balancer's are its site's, the
    database server's its database's and Redis', an app server's all of its own."""
    if roles.balancing:
        return site_logs(settings, True)
    if roles.serving_data:
        return data_logs(settings)
    return {**app_logs(settings), **data_logs(settings)}


roles = fleet()
plan = as_served(prepare_host(secrets=False), roles)  # behind load balancers: no certbot
sections = {title: text for app in plan.selected for title, text in host_logs(app).items()}
if plan.https:  # where a failed renewal shows
    sections[f"certbot's log {CERTBOT_LOG}"] = host.get_fact(
        CertbotLogTail, lines=plan.host.log_lines
    )
for title, lines in sections.items():
    print(f"--- {host.name}: {title} (last {plan.host.log_lines} lines) ---")
    print("\n".join(map(printable, lines)) if lines else "(empty)", flush=True)
