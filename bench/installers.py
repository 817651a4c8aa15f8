"""uv against pip on the hosts, side by side: ``python -m bench.installers``.

Each round boots two fresh test-bed hosts (the packages every deploy installs already there)
and deploys examples/notes to both at once, one with ``installer = "uv"``, the other with
``installer = "pip"``: the fresh converge (uv's own install included); then both at once
again with a requirements change (``python_packages``: requests and its four dependencies, a
new venv on each). The same resolved set on both (the controller resolves it); whole pyinfra
runs, as an operator types them. Prints a markdown table of medians, the worst round and the
ratio uv/pip, and writes it to bench/installers.md.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import testbed
from testbed.pyinfra_cli import pyinfra
from tests.helpers import NOTES

BENCH = Path(__file__).resolve().parent
INSTALLERS = ("uv", "pip")
CHANGE = ["requests==2.34.2"]  # certifi, charset-normalizer, idna, urllib3 beside it


def deploy(host, tmp: Path, installer: str, packages: list[str]) -> float:
    """One whole deploy of notes with ``installer``; its seconds."""
    app = {**NOTES, "installer": installer, "python_packages": packages}
    started = time.monotonic()
    pyinfra([host], tmp / installer, "deploy.py", "--data", f"apps={json.dumps([app])}").check()
    return time.monotonic() - started


def side_by_side(hosts, tmp: Path, packages: list[str]) -> dict[str, float]:
    """Both installers' deploys at once, one host each."""
    with ThreadPoolExecutor(max_workers=len(INSTALLERS)) as pool:
        runs = {
            installer: pool.submit(deploy, host, tmp, installer, packages)
            for installer, host in zip(INSTALLERS, hosts, strict=True)
        }
        return {installer: run.result() for installer, run in runs.items()}


def measure(rounds: int, tmp: Path) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {}
    for installer in INSTALLERS:
        (tmp / installer).mkdir()
    for _ in range(rounds):
        hosts = testbed.boot(len(INSTALLERS), prefix="bench-installers", provisioned=True)
        try:
            for step, packages in (("fresh converge", []), ("requirements change", CHANGE)):
                for installer, took in side_by_side(hosts, tmp, packages).items():
                    times.setdefault(f"{step}: {installer}", []).append(took)
        finally:
            testbed.destroy(hosts)
    return times


def report(times: dict[str, list[float]], rounds: int) -> str:
    rows = ["| what | median (s) | worst (s) | runs (s) | uv / pip |", "|---|---|---|---|---|"]
    for name, runs in times.items():
        step, installer = name.split(": ")
        pip = statistics.median(times[f"{step}: pip"])
        ratio = f"{statistics.median(runs) / pip:.2f}" if installer == "uv" else ""
        listed = " ".join(f"{r:.1f}" for r in runs)
        rows.append(
            f"| {name} | {statistics.median(runs):.1f} | {max(runs):.1f} | {listed} | {ratio} |"
        )
    head = (
        "# uv against pip on the hosts\n\nOne run of `python -m bench.installers` on this"
        f" machine ({rounds} rounds, medians): examples/notes deployed to two fresh hosts at"
        " once, one per installer (uv's own install included in its fresh converge), then a"
        " requirements change (requests and four dependencies) on both at once. Whole"
        " pyinfra runs.\n\n"
    )
    return head + "\n".join(rows) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", default=str(BENCH / "installers.md"))
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        times = measure(args.rounds, Path(tmp))
    text = report(times, args.rounds)
    Path(args.out).write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
