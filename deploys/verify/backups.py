"""The verifier's checks of an app's backups: its timer enabled and active, its last run
succeeded, its newest backup younger than twice the timer's period."""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import UTC, datetime

from pyinfra import host

from deploys.config.layout import Layout
from deploys.config.settings import Settings
from deploys.ops.facts import TimerStatus
from deploys.stack.backups import backups_here
from deploys.verify.checks import Check, _unit_checks


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
    else:
        observed, ok = "none", not last
    checks.append(Check("newest backup", "younger than twice the timer's period", observed, ok))
    return [replace(c, scope=settings.app_name) for c in checks]
