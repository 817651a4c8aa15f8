"""Every change of settings an operator makes over a server's life converges in one run or is
refused before the host is touched, naming the fix; nginx's configuration on disk passes
``nginx -t`` after every run. A seeded walk through realistic settings states of one host
(the sample app as the default server, your own app replacing it, renamed, given names,
HTTPS on and off against Pebble, a second app, the default moving between apps, one app
retired, a retired app listed again), where the operator now and then forgets to retire
what they no longer list."""

from __future__ import annotations

import json
import os
import random
import re
import time

import pytest

import testbed
from testbed import acme
from testbed.pyinfra_cli import pyinfra
from tests.helpers import HELLO, NOTES, Served

STEPS = int(os.environ.get("TRANSITION_STEPS", "45"))
SEED = int(os.environ.get("TRANSITION_SEED", "25"))
ACME = {
    "acme_email": "ops@app.test",
    "acme_server": acme.DIRECTORY,
    "acme_ca_bundle": acme.CA_BUNDLE,
}
SAMPLE = {"app_name": "myproject"}  # the sample app with every default: server_name "_"
OWN = {**NOTES, "server_name": "_"}  # your own app (the notes example) in its place
RENAMED = {**OWN, "app_name": "journal"}
NAMED = {**NOTES, "server_name": ["notes.test", "www.notes.test"]}
SECURE = {**NAMED, "https": True}
HELLO_NAMED = {"app_name": "hello", "server_name": ["hello.test"]}
HELLO_DEFAULT = {"app_name": "hello"}

# name -> the apps the settings list (each a dict of its settings)
STATES: dict[str, list[dict]] = {
    "sample": [SAMPLE],
    "own app": [OWN],
    "renamed": [RENAMED],
    "named": [NAMED],
    "https": [SECURE],
    "second app": [NAMED, HELLO_NAMED],
    "second app, https": [SECURE, HELLO_NAMED],
    "default: hello": [HELLO_DEFAULT, NAMED],
    "default: notes": [HELLO_NAMED, OWN],
    "hello alone": [HELLO_DEFAULT],
}
FIX_RE = re.compile(r"add (\S+) to retired_apps")  # a refusal's fix
LEFT_RUNNING_RE = re.compile(r"app (\S+) is on this host \(active\) but not in apps")  # a warning's


def data(apps: list[dict], retired: list[str]) -> list[str]:
    """The --data arguments of a state: its apps, the apps retired, Pebble for HTTPS."""
    values = {"apps": apps, "retired_apps": retired, **ACME}
    return [arg for k, v in values.items() for arg in ("--data", f"{k}={json.dumps(v)}")]


def host_fingerprint(host) -> str:
    """Every path, link and size of what a deploy writes: equal before and after a refusal."""
    return host.exec(
        "find /etc/nginx /etc/systemd/system /srv /etc/letsencrypt -printf '%p %l %s %T@\\n'"
        " 2>/dev/null | sort | sha256sum"
    ).stdout


def answers(host, app: dict) -> list[str]:
    """What is wrong with how ``app`` answers its names (its health path through nginx)."""
    path, text = app.get("health_path", "/"), app.get("health_text", HELLO)
    names = app.get("server_name", "_")
    problems = []
    for name in [names] if isinstance(names, str) else names:
        asked = "any-name.test" if name == "_" else name
        if app.get("https"):
            served = Served(host, asked, path)
            status, body = served.status, served.body
        else:
            status, body = testbed.http_get(host.http_port, path, host_header=asked)
        if status != 200 or text not in body:
            problems.append(f"{app['app_name']} for {asked}: {status} {body[:200]!r}")
    return problems


class Walk:
    """The host and what the walk has deployed on it, and the table of its steps."""

    def __init__(self, host, workdir, tmp_path_factory):
        self.host, self.workdir = host, workdir
        self.reports = tmp_path_factory.mktemp("transitions")
        self.deployed: set[str] = set()  # app names ever deployed on the host
        self.current = "fresh host"
        self.runs = 0  # each run's output is kept in reports/run-NNN.log
        self.rows: list[tuple[str, str, str, float]] = []

    def run(self, apps: list[dict], retired: list[str], entry: str = "deploy.py"):
        self.last = pyinfra([self.host], self.workdir, entry, *data(apps, retired))
        self.runs += 1
        (self.reports / f"run-{self.runs:03d}.log").write_text(self.last.output)
        return self.last

    def step(self, after: str, forgot: bool = False) -> str:
        """Go from the current state to ``after``, retiring every app no longer listed
        unless the operator ``forgot``: then the run must be refused before touching the
        host (``--dry`` refused the same way), or succeed and warn, and the fix it names
        must converge. Returns the step's outcome."""
        before, apps = self.current, STATES[after]
        listed = {a["app_name"] for a in apps}
        retired = [] if forgot else sorted(self.deployed - listed)
        started = time.monotonic()
        outcome = []
        for _attempt in range(3):
            print_before = host_fingerprint(self.host)
            run = self.run(apps, retired)
            if run.returncode != 0:
                self.refused(before, after, run, print_before, data(apps, retired))
                fixes, said = FIX_RE.findall(run.output), "refused"
            else:
                fixes, said = LEFT_RUNNING_RE.findall(run.output), "warned"
            if not fixes:
                break
            retired = sorted({*retired, *fixes})  # the fix the run named
            outcome.append(f"{said}: retire {', '.join(sorted(set(fixes)))}")
        assert run.returncode == 0, f"{before} -> {after}:\n{run.output[-6000:]}"
        assert not fixes, f"{before} -> {after}: the fixes named did not converge"
        outcome = ", ".join(outcome) or "converged"
        self.deployed |= listed
        self.check(after, apps, retired)
        self.rows.append((before, after, outcome, time.monotonic() - started))
        self.current = after
        return outcome

    def refused(self, before: str, after: str, run, print_before: str, args: list[str]) -> None:
        """A failed run was refused before it touched the host, naming the fix; --dry
        refuses the same way."""
        assert "invalid settings" in run.output and "Starting operation" not in run.output, (
            f"{before} -> {after}: the run failed after touching the host:\n{run.output[-5000:]}"
        )
        assert host_fingerprint(self.host) == print_before, "a refused run changed the host"
        assert FIX_RE.search(run.output), f"{before} -> {after}: no fix named:\n{run.output}"
        dry = pyinfra([self.host], self.workdir, "deploy.py", *args, dry=True)
        reason = run.output[run.output.index("invalid settings") :].strip()
        assert dry.returncode != 0 and reason in dry.output, dry.output[-3000:]

    def check(self, state: str, apps: list[dict], retired: list[str]) -> None:
        """nginx -t passes on disk, every listed app answers its names, verify passes."""
        test = self.host.exec("nginx -t", check=False)
        assert test.returncode == 0, f"{state}: nginx -t fails on disk: {test.stderr}"
        problems = [p for app in apps for p in answers(self.host, app)]
        assert not problems, f"{state}: {problems}"
        verified, checks = self.verify(apps, retired)
        failed = [
            f"{c['scope']}: {c['name']} (expected {c['expected']}, observed {c['observed']})"
            for c in checks
            if not c["ok"]
        ]
        assert verified.returncode == 0 and not failed, (
            f"{state}: verify failed: {failed}\nafter the run:\n{self.last.output[-6000:]}"
        )

    def verify(self, apps: list[dict], retired: list[str]) -> tuple:
        """verify.py's run and the checks of its JSON report."""
        report = self.reports / "report.json"
        verified = pyinfra(
            [self.host],
            self.workdir,
            "verify.py",
            *data(apps, retired),
            env_extra={"VERIFY_JSON": str(report)},
        )
        return verified, json.loads(report.read_text())["hosts"][self.host.name]["checks"]

    def table(self) -> str:
        lines = [f"{'from':<20} {'to':<20} {'outcome':<40} seconds"]
        lines += [f"{a:<20} {b:<20} {o:<40} {s:6.1f}" for a, b, o, s in self.rows]
        return "\n".join(lines)


@pytest.fixture(scope="module")
def walk(boot, workdir, tmp_path_factory):
    (host,) = boot(1)
    acme.start(host)
    return Walk(host, workdir, tmp_path_factory)


def test_your_own_app_replaces_the_sample_app_in_one_run(walk):
    """The sample app is the default server; your own app, default server too, with the
    sample app in retired_apps: its site goes in the same reload as yours."""
    walk.step("sample")
    assert walk.step("own app") == "converged"


def test_an_unlisted_default_server_is_refused_before_anything_changes(walk):
    """One named app while the sample app, not retired, is still the default server: the
    catch-all cannot be enabled beside it. Refused by the run and by --dry, naming the fix,
    nothing on the host changed; the fix converges."""
    walk.step("sample")
    assert walk.step("named", forgot=True) == "refused: retire myproject"


def test_a_seeded_walk_through_settings_states_always_converges_or_is_refused(walk):
    """``STEPS`` steps to states drawn at random (seeded), each a transition the module has
    not taken yet while the current state has one left (45 steps: 45 of the 90 transitions;
    60 steps drawn without that rule took 44); a quarter of them without retiring what is
    no longer listed. Every state is visited, and steps both converge and are refused."""
    rng = random.Random(SEED)
    start = len(walk.rows)
    try:
        for _ in range(STEPS):
            taken = {(before, after) for before, after, _o, _s in walk.rows}
            others = [s for s in STATES if s != walk.current]
            fresh = [s for s in others if (walk.current, s) not in taken]
            walk.step(rng.choice(fresh or others), rng.random() < 0.25)
    finally:
        print(f"\n[transitions] seed {SEED}, {len(walk.rows)} steps\n{walk.table()}")
    walked = walk.rows[start:]
    assert len({(before, after) for before, after, _o, _s in walked}) == STEPS
    assert {after for _before, after, _o, _s in walked} == set(STATES)
    outcomes = {o.split(":")[0] for _b, _a, o, _s in walked}
    assert {"converged", "refused"} <= outcomes, outcomes


def test_verify_names_a_broken_config_on_disk_and_a_deploy_repairs_it(walk):
    """nginx keeps serving from memory what it loaded, so only ``nginx -t`` on the files
    shows a site edited into a broken state; the next deploy writes it back."""
    apps = STATES[walk.current]
    site = f"/etc/nginx/sites-available/{apps[0]['app_name']}"
    walk.host.exec(f"echo 'no_such_directive on;' >> {site}")
    verified, checks = walk.verify(apps, [])
    (nginx_test,) = [c for c in checks if c["name"] == "nginx -t"]
    assert verified.returncode != 0 and not nginx_test["ok"]
    assert 'unknown directive "no_such_directive"' in nginx_test["observed"]
    walk.step(walk.current)  # the same settings again: the site is written back
    assert "no_such_directive" not in walk.host.exec(f"cat {site}").stdout


def test_a_new_default_app_that_fails_leaves_unknown_names_closed(walk):
    """The apps before it in ``apps`` go live with the catch-all still on: when the new
    default app then fails (its release command), a forged Host reaches no app."""
    broken = {**OWN, "app_name": "broken", "release_command": ["false"]}
    apps = [HELLO_NAMED, broken]
    failed = walk.run(apps, sorted(walk.deployed - {"hello"}))
    walk.deployed.add("broken")  # its user and units exist: later runs retire it
    assert failed.returncode != 0 and "release_command 'false' failed" in failed.output
    assert walk.host.exec("nginx -t", check=False).returncode == 0
    assert answers(walk.host, HELLO_NAMED) == []
    status, _ = testbed.http_get(walk.host.http_port, "/", host_header="forged.example")
    assert status is None  # closed (444): no app answered
