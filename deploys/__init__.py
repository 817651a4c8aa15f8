"""Deploys for a Flask app served by uWSGI behind Nginx, in layers; a layer imports only the
layers below it (``make lint`` checks it, see ``[tool.importlinter]`` in pyproject.toml):

- ``verify``: the verifier's checks and its report (verify.py)
- ``stack``: one module per part of a host: packages, app user, virtualenv, app service,
  nginx, HTTPS, firewall, load balancer, fleet, retiring apps
- ``release``: a release's life: upload, pre-flight, switch, health gate, the deploy lock
- ``ops``: our generic pyinfra operations and facts, knowing nothing of apps
- ``config``: settings, the plan of a host, where things go on it: plain Python, no pyinfra
- ``speed``: the one place that reaches into pyinfra's internals, to make runs faster;
  one switch (``fast_facts``), applied only on the pyinfra versions it was tested against
- ``hostside``: the release checks that run on the hosts (shipped with files/release_gate.py),
  standard library only; the deploy imports the rules it shares with them (hostside.rules)

The entry points (deploy.py, verify.py, rollback.py, run.py, logs.py) sit on top.
"""
