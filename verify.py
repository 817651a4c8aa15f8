"""Read-only, facts-based proof that the stack works: ``pyinfra INV verify.py``.

Prints tables per host (the host-wide checks, then each app's; ``--data app=NAME`` checks
one app; on a load balancer, its proxying to every app server) and a verdict; exits
non-zero when any check on any host fails, or when app servers run different releases.
Set VERIFY_JSON=path to also write a JSON report (for monitoring).
"""

import os

from deploys.ops.context import prepare_host
from deploys.stack.fleet import as_served, fleet
from deploys.verify.report import record_host
from deploys.verify.runner import run_checks

roles = fleet()
plan = as_served(prepare_host(secrets=False), roles)
record_host(run_checks(plan, roles), json_path=os.environ.get("VERIFY_JSON"))
