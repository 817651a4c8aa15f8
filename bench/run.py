"""Benchmarks, side by side in one run: ``python -m bench.run`` (``make bench``).

Release switch: the slowest response 8 clients see through nginx while the live release
changes (a code redeploy, a rollback) against uWSGI's graceful reload, at the default
processes and with one; a rolling redeploy behind a load balancer of 1, 2 and 4 app servers.
Deploy speed: fresh converge of one host, ours against the guide's steps as a plain shell
script over SSH (bench/guide.sh); no-op re-runs (with the speed layer and without it,
``fast_facts=false``) and verify.py runs for 1, 2, 4 and 8 hosts;
booting 1 and 4 test-bed hosts from the cached image. Serving throughput with wrk inside one
host (loopback only, bounded duration): nginx -> uWSGI socket -> Flask (ours), gunicorn
(sync and gthread, as many workers) behind the same nginx, uWSGI's own HTTP server, nginx
serving a static file, and the app called in-process (the ceiling); a static file served by
nginx against by the app; tuning candidates of our defaults. Prints markdown tables of
medians and ratios and writes them to bench/results.md (``--only switch``, ``rolling``,
``serving`` or ``noop``: that part alone, printed only; ``--sizes 1``: the no-op and
verify runs for those host counts only).
"""

from __future__ import annotations

import argparse
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

import testbed
from testbed.load import Load
from testbed.pyinfra_cli import fleet_pyinfra, pyinfra

BENCH = Path(__file__).resolve().parent
ROLLING_SIZES = [1, 2, 4]  # app servers behind one load balancer
FLEET_SIZES = [1, 2, 4, 8]  # hosts of the no-op and verify runs
TIMING_HEAD = ["what", "median (s)", "runs (s)", "ratio"]
WRK_SECONDS = 8
WRK = f"wrk -t2 -c32 -d{WRK_SECONDS}s --latency"
ROUTER_PORT = 8001
DIRECT_PORT = 8002
STATIC_PORT = 8080
GUNICORN_WORKERS = 5  # our processes default
OURS = "ours: nginx -> uWSGI socket -> Flask"
VENV_PYTHON = "/srv/myproject/current/venv/bin/python3"
GUNICORN = "gunicorn==23.0.0"  # what users pick instead of uWSGI, behind the same nginx
GUNICORN_PORTS = {"sync": (8003, 8004), "gthread": (8005, 8006)}  # nginx port, gunicorn port
GUNICORN_SITE = """server {{
    listen 127.0.0.1:{listen};
    location / {{
        include proxy_params;
        proxy_pass http://127.0.0.1:{port};
    }}
}}
"""
# the app called in-process, no server: requests per second on one core
CEILING = """
import sys, time
sys.path.insert(0, "/srv/myproject/current/app")
from werkzeug.test import create_environ
from wsgi import app
environ = create_environ("/", "http://localhost/")
def start_response(status, headers, exc_info=None):
    pass
calls, started = 0, time.perf_counter()
while time.perf_counter() - started < 5:
    for _ in range(200):
        b"".join(app(dict(environ), start_response))
    calls += 200
print(calls / (time.perf_counter() - started))
"""
STATIC_SITE = f"""server {{
    listen 127.0.0.1:{STATIC_PORT};
    root /var/www/html;
    location / {{ try_files /index.nginx-debian.html =404; }}
}}
"""


def timed(action) -> float:
    started = time.monotonic()
    action()
    return time.monotonic() - started


def median(values: list[float]) -> float:
    return statistics.median(values)


def guide_script(host: testbed.Host) -> None:
    script = (BENCH / "guide.sh").read_text()
    proc = subprocess.run(
        [
            "ssh",
            "-i",
            host.key_file,
            "-p",
            str(host.ssh_port),
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "LogLevel=ERROR",
            "-o",
            "BatchMode=yes",
            f"{host.ssh_user}@127.0.0.1",
            "sh -s",
        ],
        input=script,
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"guide.sh failed: {proc.stderr[-2000:]}")
    status, body = testbed.http_get(host.http_port)
    assert status == 200 and "Hello There!" in body, (status, body)


def deploy(hosts, tmp: Path, *args: str) -> None:
    pyinfra(hosts, tmp, "deploy.py", *args).check()


def fresh_converge(rounds: int, tmp: Path) -> dict:
    ours, guide = [], []
    for _ in range(rounds):
        a, b = testbed.boot(2, prefix="bench-fresh")
        try:
            ours.append(timed(lambda a=a: deploy([a], tmp)))
            guide.append(timed(lambda b=b: guide_script(b)))
        finally:
            testbed.destroy([a, b])
    return {"ours": ours, "guide": guide}


NOOP_ROUNDS = 3  # no-op rounds per round of the other benchmarks
STOCK = ("--data", "fast_facts=false")  # the speed layer off: stock pyinfra


def fleet_runs(sizes: list[int], rounds: int, tmp: Path) -> tuple[dict, int]:
    """No-op deploy and verify times for the first n of max(sizes) converged hosts, and the
    CPU time each host spent per no-op (its container's, beside the runner's own), and the
    no-op with the speed layer off, as ``{"noop": {n: runs}, "host_cpu": ..., "verify":
    ..., "noop_stock": ...}``; and the operations per host."""
    hosts = testbed.boot(max(sizes), prefix="bench-fleet")
    try:
        deploy(hosts, tmp)
        run = pyinfra(hosts[:1], tmp, "deploy.py").check()
        operations = int(re.search(r"Grand total\s+(\d+)", run.output).group(1))
        noop = {n: [] for n in sizes}
        host_cpu = {n: [] for n in sizes}
        verify = {n: [] for n in sizes}
        stock = {n: [] for n in sizes}
        # the sizes side by side in each round (the machine drifts), three times the rounds
        # of the rest: a no-op takes seconds, and a few more medians steady the ratio
        for _ in range(rounds * NOOP_ROUNDS):
            for n in sizes:
                before = sum(h.cpu_seconds() for h in hosts[:n])
                noop[n].append(timed(lambda n=n: deploy(hosts[:n], tmp)))
                host_cpu[n].append((sum(h.cpu_seconds() for h in hosts[:n]) - before) / n)
                verify[n].append(timed(lambda n=n: pyinfra(hosts[:n], tmp, "verify.py").check()))
                stock[n].append(timed(lambda n=n: deploy(hosts[:n], tmp, *STOCK)))
    finally:
        testbed.destroy(hosts)
    figures = {"noop": noop, "host_cpu": host_cpu, "verify": verify, "noop_stock": stock}
    return figures, operations


def fleet_rows(fleet: dict) -> list[list[str]]:
    """The table rows of fleet_runs' figures: each no-op beside the one without the speed
    layer (its ratio: to the fast path on as many hosts)."""
    noop = per_fleet("no-op re-run", fleet["noop"])
    stock = [
        timing_row(f"{row[0]}, fast_facts=false", fleet["noop_stock"][n], median(t), "fast path")
        for row, (n, t) in zip(noop, fleet["noop"].items(), strict=True)
    ]
    return [
        *(row for pair in zip(noop, stock, strict=True) for row in pair),
        *per_fleet("host CPU per host and no-op", fleet["host_cpu"], digits=2),
        *per_fleet("verify.py", fleet["verify"]),
    ]


def under_load(host: testbed.Host, action) -> tuple[float, int, int]:
    """The slowest response (ms), the failed and all requests that 8 clients of ``host``
    (through nginx) saw while ``action`` ran."""
    with Load(host.http_port) as load:
        load.wait_for(50)
        action()
        load.wait_for(len(load.samples) + 100)
    return load.max_latency * 1000, len(load.failed), len(load.samples)


def sample_app(tmp: Path, greeting: str) -> str:
    """A copy of the sample app greeting with ``greeting``: a code change."""
    app = tmp / f"app-{greeting.replace(' ', '-')}"
    shutil.copytree(testbed.REPO / "app", app, dirs_exist_ok=True)
    source = app / "myproject.py"
    source.write_text(source.read_text().replace("Hello There!", greeting))
    return str(app)


def graceful_reload(host: testbed.Host, tmp: Path, settings: list[str], app: str) -> None:
    """uWSGI's graceful reload (SIGHUP): how a release went live before the handover."""
    host.exec("systemctl reload myproject")
    time.sleep(3)  # the reload's pause falls inside the measured window


def code_redeploy(host: testbed.Host, tmp: Path, settings: list[str], app: str) -> None:
    deploy([host], tmp, "--data", f"app_src={app}", *settings)


def rollback(host: testbed.Host, tmp: Path, settings: list[str], app: str) -> None:
    pyinfra([host], tmp, "rollback.py", *settings).check()


SWITCHES_BASE = "graceful reload (before)"
SWITCHES = {
    SWITCHES_BASE: graceful_reload,
    "code redeploy": code_redeploy,
    "rollback": rollback,
}


def release_switches(rounds: int, tmp: Path) -> dict[str, list[tuple]]:
    """What clients see while the live release changes (SWITCHES), at the defaults and with
    processes = 1."""
    (host,) = testbed.boot(1, prefix="bench-switch")
    results: dict[str, list[tuple]] = {}
    try:
        for processes in ("5 (default)", "1"):
            settings = ["--data", f"processes={processes.split()[0]}"]
            code_redeploy(host, tmp, settings, sample_app(tmp, "Hello There!"))
            for i in range(rounds):
                app = sample_app(tmp, f"Release {processes} {i}")
                for what, switch in SWITCHES.items():
                    results.setdefault(f"{what}, processes = {processes}", []).append(
                        under_load(host, partial(switch, host, tmp, settings, app))
                    )
    finally:
        testbed.destroy([host])
    return results


def rolling_releases(sizes: list[int], rounds: int, tmp: Path) -> dict[int, list[tuple]]:
    """A code redeploy behind a load balancer of n app servers (batches of one, the default):
    how long the run takes, and what 8 clients of the load balancer see meanwhile."""
    hosts = testbed.boot(1 + max(sizes), prefix="bench-rolling")
    results: dict[int, list[tuple]] = {}
    try:
        for n in sizes:
            fleet = hosts[: 1 + n]
            fleet_pyinfra(fleet, tmp, "deploy.py").check()  # the app servers join
            for i in range(rounds):
                app = sample_app(tmp, f"Rolling {n} {i}")
                took: list[float] = []

                def release(fleet=fleet, app=app, took=took):
                    run = partial(fleet_pyinfra, fleet, tmp, "deploy.py", f"--data=app_src={app}")
                    took.append(timed(lambda: run().check()))

                worst, failed, requests = under_load(fleet[0], release)
                results.setdefault(n, []).append((took[0], worst, failed, requests))
    finally:
        testbed.destroy(hosts)
    return results


def rolling_report(rolling: dict[int, list[tuple]]) -> str:
    """The rolling release table: run time against one app server, clients' worst wait."""
    one = median([r[0] for r in rolling[min(rolling)]])
    rows = [
        [
            "app servers",
            "rolling redeploy, median (s)",
            "runs (s)",
            "ratio",
            "max latency via the load balancer, median (ms)",
            "failed / requests",
        ]
    ]
    for n, runs in rolling.items():
        took = median([r[0] for r in runs])
        rows.append(
            [
                str(n),
                f"{took:.1f}",
                " ".join(f"{r[0]:.1f}" for r in runs),
                f"{took / one:.2f}x one",
                f"{median([r[1] for r in runs]):.0f}",
                f"{sum(r[2] for r in runs)} / {sum(r[3] for r in runs)}",
            ]
        )
    return "## Rolling release behind a load balancer (batches of one)\n\n" + table(rows) + "\n"


def testbed_boot(sizes: list[int], rounds: int) -> dict:
    """Time to boot n test-bed hosts from the cached image until SSH answers (warm)."""
    testbed.ensure_image()
    times = {}
    for n in sizes:
        times[n] = []
        for _ in range(rounds):
            started = time.monotonic()
            hosts = testbed.boot(n, prefix="bench-boot")
            times[n].append(time.monotonic() - started)
            testbed.destroy(hosts)
    return times


def wrk(host: testbed.Host, url: str, header: str = "") -> dict:
    out = host.exec(f"{WRK} {header} {url}").stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))

    def latency(pct: str) -> float:
        value, unit = re.search(rf"{pct}%\s+([\d.]+)(us|ms|s)", out).groups()
        return float(value) * {"us": 0.001, "ms": 1, "s": 1000}[unit]

    errors = sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", out))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "rps": rps,
        "p50": latency("50"),
        "p99": latency("99"),
        "errors": errors + (int(non2xx.group(1)) if non2xx else 0),
    }


def median_of(runs: list[dict]) -> dict:
    return {key: median([r[key] for r in runs]) for key in runs[0]} | {
        "errors": sum(r["errors"] for r in runs)
    }


def serving(rounds: int, tmp: Path) -> dict:
    (host,) = testbed.boot(1, prefix="bench-serve")
    try:
        deploy([host], tmp)
        host.exec("DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null 2>&1")
        host.exec(
            f"cat > /etc/nginx/sites-enabled/bench-static <<'EOF'\n{STATIC_SITE}EOF\n"
            "nginx -t && systemctl reload nginx"
        )
        # our ini, speaking HTTP on a port instead of uwsgi on the unix socket
        for unit, option in (
            ("bench-router", f"http = 127.0.0.1:{ROUTER_PORT}\nhttp-keepalive = 1"),
            ("bench-direct", f"http-socket = 127.0.0.1:{DIRECT_PORT}"),
        ):
            host.exec(
                "grep -vE '^(socket|stats|chmod-socket|vacuum) ' /etc/myproject/uwsgi.ini"
                f" > /run/{unit}.ini && printf '{option}\\n' >> /run/{unit}.ini"
                f" && systemd-run --quiet --unit={unit} -p User=myproject -p Group=www-data"
                f" -p SupplementaryGroups=myproject /srv/myproject/current/venv/bin/uwsgi"
                f" --ini /run/{unit}.ini"
            )
        start_gunicorn(host)
        time.sleep(3)
        variants = {
            OURS: ("http://127.0.0.1/", ""),
            **{
                f"nginx -> gunicorn {kind} ({GUNICORN_WORKERS}) -> Flask": (
                    f"http://127.0.0.1:{listen}/",
                    "",
                )
                for kind, (listen, _) in GUNICORN_PORTS.items()
            },
            "uWSGI's own HTTP server (`http` router, keep-alive; same ini)": (
                f"http://127.0.0.1:{ROUTER_PORT}/",
                "",
            ),
            "uWSGI `http-socket` in workers (closes each connection: wrk counts read errors)": (
                f"http://127.0.0.1:{DIRECT_PORT}/",
                "",
            ),
            "nginx static file (ceiling)": (f"http://127.0.0.1:{STATIC_PORT}/", ""),
        }
        results = {}
        for _ in range(rounds):  # interleaved, so drift hits every variant alike
            for name, (url, header) in variants.items():
                results.setdefault(name, []).append(wrk(host, url, header))
        results = {name: median_of(runs) for name, runs in results.items()}
        cores = int(host.exec("nproc").stdout)
        one_core = median(
            [
                float(host.exec(f"{VENV_PYTHON} -c {shlex.quote(CEILING)}").stdout)
                for _ in range(rounds)
            ]
        )
        ceiling = {"per_core": one_core, "cores": cores}

        host.exec(
            "systemctl stop bench-direct bench-router bench-gunicorn-sync bench-gunicorn-gthread"
        )
        tuning = {}
        for label, data in [
            ("uWSGI request logging on (before)", ["--data", "request_log=true"]),
            ("processes=2 (= cores)", ["--data", "processes=2"]),
            ("processes=8", ["--data", "processes=8"]),
            ("threads=2", ["--data", "threads=2"]),
            ("listen_backlog=1024", ["--data", "listen_backlog=1024"]),
            ("defaults (after)", []),
        ]:
            deploy([host], tmp, *data)
            time.sleep(2)
            tuning[label] = median_of([wrk(host, "http://127.0.0.1/") for _ in range(rounds)])
        static = static_files(host, tmp, rounds)
    finally:
        testbed.destroy([host])
    return {"serving": results, "tuning": tuning, "ceiling": ceiling, "static": static}


def start_gunicorn(host: testbed.Host) -> None:
    """gunicorn in the app's virtualenv, sync and gthread (2 threads) with our worker count,
    each behind its own nginx server block like ours (proxy_params, as its docs show)."""
    host.exec(f"/srv/myproject/current/venv/bin/pip install -q {GUNICORN}")
    for kind, (listen, port) in GUNICORN_PORTS.items():
        threads = " --threads 2" if kind == "gthread" else ""
        host.exec(
            f"cat > /etc/nginx/sites-enabled/bench-gunicorn-{kind} <<'EOF'\n"
            f"{GUNICORN_SITE.format(listen=listen, port=port)}EOF\n"
            f"systemd-run --quiet --unit=bench-gunicorn-{kind} -p User=myproject"
            f" -p Group=myproject -p WorkingDirectory=/srv/myproject/current/app"
            f" /srv/myproject/current/venv/bin/gunicorn -w {GUNICORN_WORKERS} -k {kind}{threads}"
            f" -b 127.0.0.1:{port} wsgi:app"
        )
    host.exec("nginx -t && systemctl reload nginx")


STATIC_FILE = "static/bench.css"


def static_files(host: testbed.Host, tmp: Path, rounds: int) -> dict:
    """A 10 KB static file of the app: served by nginx from the release (the ``static``
    setting) against served by Flask through uWSGI (without it)."""
    app = Path(sample_app(tmp, "Hello There!"))
    (app / "static").mkdir(exist_ok=True)
    (app / STATIC_FILE).write_text("body { color: blue; }\n" * 455)
    results = {}
    for label, data in [
        ("nginx from the release (`static` setting)", ['--data=static={"/static": "static"}']),
        ("Flask through uWSGI (no `static` setting)", []),
    ]:
        deploy([host], tmp, f"--data=app_src={app}", *data)
        time.sleep(2)
        url = f"http://127.0.0.1/{STATIC_FILE}"
        results[label] = median_of([wrk(host, url) for _ in range(rounds)])
    deploy([host], tmp)  # back to the sample app
    return results


def table(rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(rows[0])]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows[1:]])


def timing_row(
    what: str, times: list[float], base: float, base_name: str, digits: int = 1
) -> list[str]:
    """A table row: the median, every run, and the ratio of the median to ``base``."""
    return [
        what,
        f"{median(times):.{digits}f}",
        " ".join(f"{t:.{digits}f}" for t in times),
        f"{median(times) / base:.2f}x {base_name}",
    ]


def per_fleet(label: str, times: dict[int, list[float]], digits: int = 1) -> list[list[str]]:
    """Rows for 1..n hosts, each against one host."""
    one = median(times[min(times)])
    return [
        timing_row(f"{label}, {n} host{'s' if n > 1 else ''}", t, one, "one host", digits)
        for n, t in times.items()
    ]


def switch_report(switches: dict[str, list[tuple]]) -> str:
    """The release switch table: the median of each round's slowest response, against the
    graceful reload at the same processes."""
    rows = [
        [
            "what (8 clients through nginx)",
            "max latency, median (ms)",
            "runs (ms)",
            "failed / requests",
            "ratio",
        ]
    ]
    for what, runs in switches.items():
        base = median([r[0] for r in switches[f"{SWITCHES_BASE}, {what.split(', ', 1)[1]}"]])
        worst = median([r[0] for r in runs])
        rows.append(
            [
                what,
                f"{worst:.0f}",
                " ".join(f"{r[0]:.0f}" for r in runs),
                f"{sum(r[1] for r in runs)} / {sum(r[2] for r in runs)}",
                f"{worst / base:.2f}x reload",
            ]
        )
    return "## Release switch (max latency clients see)\n\n" + table(rows) + "\n"


def wrk_rows(results: dict, base: str | None = None) -> list[list[str]]:
    """Table rows of wrk results (and each one's requests/s against ``base``'s)."""
    return [
        [
            name,
            f"{r['rps']:.0f}",
            f"{r['p50']:.2f}",
            f"{r['p99']:.2f}",
            str(r["errors"]),
            *([f"{r['rps'] / results[base]['rps']:.2f}x"] if base else []),
        ]
        for name, r in results.items()
    ]


def serving_report(serve: dict) -> str:
    """The serving tables: the stacks side by side, the in-process ceiling, static files and
    the tuning candidates."""
    head = ["stack", "requests/s", "p50 (ms)", "p99 (ms)", "errors"]
    gunicorn = next(name for name in serve["serving"] if "gunicorn sync" in name)
    ceiling = serve["ceiling"]["per_core"] * serve["ceiling"]["cores"]
    ours = serve["serving"][OURS]["rps"]
    return "\n".join(
        [
            "## Serving throughput (wrk -t2 -c32, loopback inside the host)\n",
            table([[*head, "vs gunicorn sync"], *wrk_rows(serve["serving"], gunicorn)]),
            f"\nCeiling: the app called in-process in a tight loop (no server, no HTTP),"
            f" {serve['ceiling']['per_core']:.0f} calls/s on one core x"
            f" {serve['ceiling']['cores']} cores = {ceiling:.0f}/s; ours reaches"
            f" {ours / ceiling:.0%} of it (wrk shares the same cores).\n",
            "## Static files (a 10 KB file of the app, same load)\n",
            table([head, *wrk_rows(serve["static"])]),
            "\n## Tuning our defaults (ours, same load)\n",
            table([["variant", *head[1:]], *wrk_rows(serve["tuning"])]),
        ]
    )


def report(
    fresh: dict,
    fleet: dict,
    operations: int,
    serve: dict,
    switches: dict,
    rolling: dict,
    rounds: int,
) -> str:
    guide = median(fresh["guide"])
    parts = [
        f"# Benchmarks\n\nOne run of `make bench` on this machine ({rounds} rounds each,"
        f" {rounds * NOOP_ROUNDS} of the no-op; medians). Test-bed hosts are Debian 12"
        " containers on the same 2 cores.\n",
        switch_report(switches),
        rolling_report(rolling),
        "## Deploy speed\n",
        table(
            [
                TIMING_HEAD,
                timing_row("fresh converge, ours (deploy.py)", fresh["ours"], guide, "guide"),
                timing_row(
                    "fresh converge, the guide as a shell script (bench/guide.sh)",
                    fresh["guide"],
                    guide,
                    "guide",
                ),
                *fleet_rows(fleet),
                *per_fleet("test bed: boot from the cached image", fleet["boot"]),
            ]
        ),
        f"\n{operations} operations per host.\n",
        serving_report(serve),
    ]
    return "\n".join(parts) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", default=str(BENCH / "results.md"))
    parser.add_argument(
        "--sizes",
        type=int,
        nargs="+",
        default=FLEET_SIZES,
        help=f"host counts of the no-op and verify runs (default: {FLEET_SIZES})",
    )
    parser.add_argument(
        "--only",
        choices=["switch", "rolling", "serving", "noop"],
        help="run one part and print it (results.md untouched)",
    )
    args = parser.parse_args(argv)
    if args.only:
        with tempfile.TemporaryDirectory() as tmp:
            if args.only == "switch":
                print(switch_report(release_switches(args.rounds, Path(tmp))))
            elif args.only == "rolling":
                print(rolling_report(rolling_releases(ROLLING_SIZES, args.rounds, Path(tmp))))
            elif args.only == "noop":
                fleet, _ = fleet_runs(args.sizes, args.rounds, Path(tmp))
                print(table([TIMING_HEAD, *fleet_rows(fleet)]))
            else:
                print(serving_report(serving(args.rounds, Path(tmp))))
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        switches = release_switches(args.rounds, Path(tmp))
        rolling = rolling_releases(ROLLING_SIZES, args.rounds, Path(tmp))
        serve = serving(args.rounds, Path(tmp))
        fresh = fresh_converge(args.rounds, Path(tmp))
        fleet, operations = fleet_runs(args.sizes, args.rounds, Path(tmp))
    fleet["boot"] = testbed_boot([1, 4], args.rounds)
    text = report(fresh, fleet, operations, serve, switches, rolling, args.rounds)
    Path(args.out).write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
