"""The release checks' command line on a host: /usr/local/lib/flask-deploy/release_gate.py,
with the package it runs beside it in hostside/ (deploys/hostside; its cli module lists the
subcommands). ``live``, read on every deploy, is answered by hostside.live alone (this file
is compiled on each run, the package's modules come from their cached bytecode)."""

import sys

sys.path.insert(0, __file__.rpartition("/")[0] or ".")  # python3 -I leaves this folder out
from hostside.live import live_command_line, print_live  # type: ignore[import-not-found]

if live := live_command_line(sys.argv[1:]):
    sys.exit(print_live(*live))

from hostside.cli import main  # type: ignore[import-not-found]

sys.exit(main())
