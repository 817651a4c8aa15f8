"""Run the pyinfra CLI against test-bed hosts the way an operator does, and read its summary."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from testbed import REPO, Host, fleet_groups, write_state

DRY_CHANGE_RE = re.compile(r"^\s{4}\S.*?\s{2,}(\d+) \(", re.MULTILINE)
TEST_INVENTORY = "testbed/inventory.py"  # not inventories/local.py: see its docstring
GRAND_TOTAL_RE = re.compile(r"Grand total\s+(\d+)\s+(\S+)\s+(\S+)\s+(\S+)")
SUMMARY_ROW_RE = re.compile(r"^\s{4}(\S.*?)\s{2,}(\d+)\s+(\S+)\s+(\S+)\s+(\S+)\s*$", re.MULTILINE)


@dataclass
class Run:
    """A finished pyinfra run: exit code, combined output and how many operations changed."""

    returncode: int
    output: str
    dry: bool

    @property
    def changed(self) -> int:
        """Operations that changed (or, with --dry, would change) a host, summed over hosts."""
        if self.dry:
            return sum(int(n) for n in DRY_CHANGE_RE.findall(self.output))
        match = GRAND_TOTAL_RE.search(self.output)
        assert match, f"no summary in pyinfra output:\n{self.output[-3000:]}"
        success = match.group(2)
        return 0 if success == "-" else int(success)

    def changed_ops(self) -> list[str]:
        """Names of the operations that changed a host, from the summary table."""
        return [
            name
            for name, _hosts, success, _error, _same in SUMMARY_ROW_RE.findall(self.output)
            if success != "-" and name != "Grand total"
        ]

    def check(self) -> Run:
        assert self.returncode == 0, f"pyinfra failed ({self.returncode}):\n{self.output[-6000:]}"
        return self


def inventory_for(hosts: list[Host], tmp: Path) -> dict[str, str]:
    """Environment that points the test inventory (TEST_INVENTORY) at these hosts."""
    state = tmp / f"hosts-{'-'.join(h.name for h in hosts)}.json"
    write_state(hosts, state)
    return {**os.environ, "TESTBED_STATE": str(state)}


def pyinfra(
    hosts: list[Host],
    tmp: Path,
    entry: str = "deploy.py",
    *args: str,
    dry: bool = False,
    timeout: int = 900,
    env_extra: dict[str, str] | None = None,
    cwd: Path = REPO,
) -> Run:
    """``pyinfra TEST_INVENTORY ENTRY ARGS`` against ``hosts`` (``-y`` unless dry), from
    the checkout ``cwd`` (another version of this repository, say)."""
    env = {**inventory_for(hosts, tmp), **(env_extra or {})}
    return pyinfra_cli(TEST_INVENTORY, entry, *args, env=env, dry=dry, timeout=timeout, cwd=cwd)


def fleet_pyinfra(hosts: list[Host], tmp: Path, entry: str = "deploy.py", *args, **kwargs) -> Run:
    """``pyinfra`` with the first host as the load balancer, the others as app servers."""
    env = {
        "TESTBED_GROUPS": json.dumps(fleet_groups(hosts)),
        **(kwargs.pop("env_extra", None) or {}),
    }
    return pyinfra(hosts, tmp, entry, *args, env_extra=env, **kwargs)


def pyinfra_cli(
    *args: str, env: dict[str, str], dry: bool = False, timeout: int = 900, cwd: Path = REPO
) -> Run:
    """``pyinfra ARGS`` from the repository root (or ``cwd``), no terminal, ``-y`` unless
    dry."""
    cmd = [sys.executable, "-m", "pyinfra", *args, "--dry" if dry else "-y"]
    proc = subprocess.run(
        cmd,
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return Run(proc.returncode, proc.stdout + proc.stderr, dry)
