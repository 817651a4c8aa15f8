"""Show the app's recent logs from every host, read-only: ``pyinfra INV logs.py``.

For each host: the last ``log_lines`` (default 50; ``--data log_lines=200``) lines of the
journal of the app's service, its socket, its release checks and commands (run.py), then of
nginx's error log for the app's site and, with HTTPS, of certbot's log (renewals).
"""

from pyinfra import host

from deploys.context import prepare_host
from deploys.facts import FileTail, JournalTail
from deploys.https import CERTBOT_LOG
from deploys.layout import Layout
from deploys.output import printable

settings = prepare_host(secrets=False)
layout = Layout.of(settings)
checks = ("import-check", "release-command", "candidate", "command")  # files/release_gate.py
app_units = [layout.unit_name, layout.socket_unit_name]
check_units = [f"{settings.user}-{check}" for check in checks]
sections = {
    f"journal of {', '.join(app_units)}": host.get_fact(
        JournalTail, units=app_units, lines=settings.log_lines
    ),
    "journal of the release checks and commands (run.py)": host.get_fact(
        JournalTail, units=check_units, lines=settings.log_lines
    ),
    f"nginx error log {layout.site_error_log}": host.get_fact(
        FileTail, path=layout.site_error_log, lines=settings.log_lines
    ),
}
if settings.https:  # where a failed renewal shows
    sections[f"certbot's log {CERTBOT_LOG}"] = host.get_fact(
        FileTail, path=CERTBOT_LOG, lines=settings.log_lines
    )
for title, lines in sections.items():
    print(f"--- {host.name}: {title} (last {settings.log_lines} lines) ---")
    print("\n".join(map(printable, lines)) if lines else "(empty)", flush=True)
