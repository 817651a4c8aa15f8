"""Show the app's recent logs from every host, read-only: ``pyinfra INV logs.py``.

For each host: the last ``log_lines`` (default 50; ``--data log_lines=200``) lines of the
journal of the app's service, its socket, its release checks and commands (run.py), then of
nginx's error log for the app's site.
"""

from pyinfra import host

from deploys.context import prepare_host
from deploys.facts import FileTail, JournalTail
from deploys.layout import Layout

settings = prepare_host()
layout = Layout.of(settings)
checks = ("import-check", "release-command", "candidate", "command")  # files/release_gate.py
units = [layout.unit_name, layout.socket_unit_name] + [f"{settings.user}-{c}" for c in checks]
sections = {
    f"journal of {', '.join(units)}": host.get_fact(
        JournalTail, units=units, lines=settings.log_lines
    ),
    f"nginx error log {layout.site_error_log}": host.get_fact(
        FileTail, path=layout.site_error_log, lines=settings.log_lines
    ),
}
for title, lines in sections.items():
    print(f"--- {host.name}: {title} (last {settings.log_lines} lines) ---")
    print("\n".join(lines) if lines else "(empty)", flush=True)
