"""The verifier's output: tables per host (host-wide, then one per app) as each finishes,
then one verdict for the run.

pyinfra runs verify.py once per host (concurrently); results gather here, and the run fails
only after every host has reported, so one failing host hides nothing about the others.
"""

from __future__ import annotations

import json
from pathlib import Path

from pyinfra import host, state
from pyinfra.api.exceptions import PyinfraError

from deploys.ops.output import printable
from deploys.verify.checks import LIVE_RELEASE_CHECK, Check

RESULTS: dict[str, list[Check]] = {}


def format_tables(host_name: str, checks: list[Check]) -> str:
    """One table for the host-wide checks, then one per app."""
    scopes = list(dict.fromkeys(c.scope for c in checks))
    return "".join(
        format_table(host_name if scope == "host" else f"{host_name} / app {scope}", group)
        for scope in scopes
        if (group := [c for c in checks if c.scope == scope])
    )


def format_table(name: str, checks: list[Check]) -> str:
    """A plain-text table of one host's checks; what the host or the app answered is shown
    with its control characters escaped (an app can forge its stats)."""
    rows = [("check", "expected", "observed", "result")] + [
        (
            printable(c.name),
            printable(c.expected),
            printable(c.observed.replace("\n", " "))[:100],
            "PASS" if c.ok else "FAIL",
        )
        for c in checks
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    failed = sum(not c.ok for c in checks)
    verdict = "all checks pass" if not failed else f"{failed} of {len(checks)} checks FAIL"
    return f"\n== {name}: {verdict}\n" + "\n".join(lines)


def mixed_releases(results: dict[str, list[Check]]) -> dict[str, dict[str, str]]:
    """Per app whose hosts run different releases: host -> the release it runs (a host
    whose app does not answer fails its own check, and runs no release here)."""
    by_app: dict[str, dict[str, str]] = {}
    for name, checks in results.items():
        for check in checks:
            if check.name == LIVE_RELEASE_CHECK and check.observed.startswith("/"):
                release = check.observed.split()[0]  # what the app reports may follow
                by_app.setdefault(check.scope, {})[name] = release.rsplit("/", 1)[-1]
    return {app: hosts for app, hosts in by_app.items() if len(set(hosts.values())) > 1}


def report(results: dict[str, list[Check]]) -> dict:
    """The JSON report of all hosts."""
    mixed = mixed_releases(results)
    return {
        "ok": all(c.ok for checks in results.values() for c in checks) and not mixed,
        "mixed_releases": mixed,
        "hosts": {
            name: {"ok": all(c.ok for c in checks), "checks": [c.as_dict() for c in checks]}
            for name, checks in sorted(results.items())
        },
    }


def _failed_apps(checks: list[Check]) -> str:
    """`` (apps a, b)``: the apps with a failed check, or ``""``."""
    apps = list(dict.fromkeys(c.scope for c in checks if not c.ok and c.scope != "host"))
    return f" (app {', '.join(apps)})" if apps else ""


def record_host(checks: list[Check], json_path: str | None = None) -> None:
    """Print this host's table; once every host has reported, print the verdict, write the
    JSON report and fail the run if anything failed."""
    RESULTS[host.name] = checks
    print(format_tables(host.name, checks), flush=True)
    if len(RESULTS) < len(state.inventory.get_active_hosts()):
        return
    summary = report(RESULTS)
    if json_path:
        Path(json_path).write_text(json.dumps(summary, indent=2) + "\n")
    bad = [
        name + _failed_apps(RESULTS[name])
        for name, result in summary["hosts"].items()
        if not result["ok"]
    ]
    for app, hosts in summary["mixed_releases"].items():
        runs = ", ".join(f"{release} on {name}" for name, release in sorted(hosts.items()))
        print(f"\nmixed fleet: app {app} runs {printable(runs)}", flush=True)
        bad.append(f"app {app} mixed")
    if bad:
        raise PyinfraError(f"verify: FAIL on {len(bad)} of {len(RESULTS)} hosts: {', '.join(bad)}")
    print(f"\nverify: PASS on all {len(RESULTS)} hosts", flush=True)
