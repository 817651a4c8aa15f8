"""The release checks that run on each host, as root, with the host's python3: standard
library only, importing nothing else of ``deploys``. deploy.py ships these modules to
/usr/local/lib/flask-deploy/hostside/ beside files/release_gate.py, the command line the
deploy runs (deploys/release/gate.py). One module a job:

- ``live``: what uWSGI runs, read on every deploy; it imports no other module of these
- ``sandbox``: the app's code in the service's sandbox (import check, release commands, run)
- ``candidate``: the release served from a throw-away uWSGI before it goes live
- ``handover``: the restart without a pause, through the handover instance
- ``gate``: the health gate, the history, pruning and the switch back
- ``rules``: what the deploy decides by the same rules (imported by deploys/ too)
- ``units``, ``health``, ``watch``, ``cli``: systemd, health checks, ending with the run,
  the subcommands
"""
