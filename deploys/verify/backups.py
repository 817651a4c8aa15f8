"""The verifier's checks of an app's backups: its timer enabled and active, its last run
(and its copies to the backup servers) succeeded, its newest backup younger than twice the
timer's period; and of a backup server."""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import UTC, datetime

from pyinfra import host

from deploys.config.layout import Layout
from deploys.config.plan import HostPlan
from deploys.config.settings import Settings
from deploys.ops.facts import TimerStatus, UnitStatus
from deploys.stack.appuser import Account
from deploys.stack.backup_server import (
    ACCEPT,
    HOME,
    RECEIVER,
    backup_firewall_rules,
    copy_targets,
    kept_on,
)
from deploys.stack.backups import backups_here
from deploys.verify.checks import Check, _unit_checks, ufw_checks

COPY_GRACE = 120  # seconds: a backup younger than this may still be on its way to a copy


def taken_at(manifest: dict) -> int:
    """When a backup was taken (unix seconds)."""
    when = datetime.strptime(manifest["taken_at"], "%Y-%m-%dT%H:%M:%SZ")
    return int(when.replace(tzinfo=UTC).timestamp())


def backup_checks(settings: Settings) -> list[Check]:
    """The app's backups, when it takes them."""
    if not settings.backups:
        return []
    timer = Layout.of(settings).backup_unit
    status = host.get_fact(TimerStatus, timer=timer)
    checks = _unit_checks(f"backup timer {timer}.timer", status)
    last, result = status.get("LastTrigger", 0), status.get("Result") or "success"
    checks.append(Check("last backup run", "succeeded (or none yet)", result, result == "success"))
    found = backups_here(settings)
    period = status.get("NextElapse", 0) - last if last else 0
    if found:
        age = int(time.time()) - taken_at(found[-1])
        observed = f"{found[-1]['backup']}, {age // 3600} h {age % 3600 // 60} min old"
        ok = not period or age <= 2 * period
        if ok and period and age > period:
            observed += "; WARNING: older than one period, did the last one run?"
    else:
        observed, ok = "none", not last
    checks.append(Check("newest backup", "younger than twice the timer's period", observed, ok))
    if found:
        checks += [copy_check(found[-1], member.name) for member in copy_targets(settings)]
    return [replace(c, scope=settings.app_name) for c in checks]


def copy_check(newest: dict, receiver: str) -> Check:
    """The newest backup here is kept by the backup server ``receiver`` (one taken in the
    last COPY_GRACE seconds may still be on its way)."""
    name = newest["backup"]
    kept = {m["backup"] for m in kept_on(receiver, host.name, newest["app"])}
    age = int(time.time()) - taken_at(newest)
    ok = name in kept or age < COPY_GRACE
    observed = "kept" if name in kept else f"missing ({age} s after it was taken)"
    return Check(f"newest backup copied to {receiver}", f"{name} kept there", observed, ok)


def backup_server_checks(plan: HostPlan) -> list[Check]:
    """A backup server: UFW admitting SSH alone, its receiving user, the units that take
    pushed backups in (active, enabled, their last run succeeded: a refused backup fails
    it)."""
    account = host.get_fact(Account, user=RECEIVER) or {}
    status = host.get_fact(TimerStatus, timer=ACCEPT)
    path = host.get_fact(UnitStatus, unit=f"{ACCEPT}.path")
    result = status.get("Result") or "success"
    firewall = ufw_checks(*backup_firewall_rules(plan)) if plan.host.firewall else []
    return [
        *firewall,
        Check(f"user {RECEIVER}", f"home {HOME}", account.get("home", "missing"), bool(account)),
        *_unit_checks(f"{ACCEPT}.timer", status),
        *_unit_checks(f"{ACCEPT}.path", path),
        Check("last taking in", "succeeded (or none yet)", result, result == "success"),
    ]
