"""Show the apps' recent logs from every host, read-only: ``pyinfra INV logs.py``.

For each host and app (``--data app=NAME``: one app): the last ``log_lines`` (default 50;
``--data log_lines=200``) lines of the journal of the app's service, its socket, its release
checks and commands (run.py), then of nginx's error log for the app's site and, with HTTPS,
of certbot's log (renewals).
"""

from pyinfra import host

from deploys.context import prepare_host
from deploys.facts import FileTail, JournalTail
from deploys.fleet import fleet
from deploys.https import CERTBOT_LOG
from deploys.layout import Layout
from deploys.output import printable
from deploys.settings import Settings


def app_logs(settings: Settings) -> dict[str, list[str]]:
    """Section title -> the last log_lines lines, for one app."""
    layout = Layout.of(settings)
    checks = ("import-check", "release-command", "candidate", "command")  # release_gate.py
    app_units = [layout.unit_name, layout.socket_unit_name, layout.handover_unit_name]
    check_units = [f"{settings.user}-{check}" for check in checks]
    lines = settings.log_lines
    return {
        f"journal of {', '.join(app_units)}": host.get_fact(
            JournalTail, units=app_units, lines=lines
        ),
        f"journal of {settings.app_name}'s release checks and commands (run.py)": host.get_fact(
            JournalTail, units=check_units, lines=lines
        ),
        f"nginx error log {layout.site_error_log}": host.get_fact(
            FileTail, path=layout.site_error_log, lines=lines
        ),
    }


plan = prepare_host(secrets=False)
apps = [] if fleet().balancing else plan.selected  # a load balancer has nginx's logs only
sections = {title: text for app in apps for title, text in app_logs(app).items()}
if plan.https:  # where a failed renewal shows
    sections[f"certbot's log {CERTBOT_LOG}"] = host.get_fact(
        FileTail, path=CERTBOT_LOG, lines=plan.host.log_lines
    )
for title, lines in sections.items():
    print(f"--- {host.name}: {title} (last {plan.host.log_lines} lines) ---")
    print("\n".join(map(printable, lines)) if lines else "(empty)", flush=True)
