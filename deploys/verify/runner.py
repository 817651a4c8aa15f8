"""Every check of the current host, in order: the host-wide ones, then each app's (its
web stack, then its workers and timers)."""

from __future__ import annotations

from deploys.config.plan import HostPlan
from deploys.stack.database_server import served
from deploys.stack.fleet import Fleet, processes_here
from deploys.verify.backups import backup_checks, backup_server_checks
from deploys.verify.checks import (
    Check,
    app_checks,
    balancer_checks,
    host_checks,
    retired_site_checks,
)
from deploys.verify.datastores import database_server_checks, datastore_checks
from deploys.verify.processes import process_checks


def run_checks(plan: HostPlan, fleet: Fleet) -> list[Check]:
    """Every check for the current host: the host-wide ones, then each selected app's (on a
    load balancer: the retired apps' sites gone, then each app's proxying; on the database
    server: its firewall, PostgreSQL and each app's database, Redis and backups; on a backup server:
    what receives the backups)."""
    if fleet.serving_data:
        backups = [c for app in served(plan) for c in backup_checks(app)]
        return [*database_server_checks(plan, fleet), *backups]
    if fleet.receiving_backups:
        return backup_server_checks(plan)
    if fleet.balancing:
        return [
            *host_checks(plan),
            *retired_site_checks(plan),
            *(c for app in plan.selected for c in balancer_checks(app, fleet)),
        ]
    return [
        *host_checks(plan, fleet.load_balancers),
        *(
            c
            for app in plan.selected
            for c in (
                *app_checks(app),
                *process_checks(app, *processes_here(app, fleet)),
                *datastore_checks(app),
                *backup_checks(app),
            )
        ),
    ]
