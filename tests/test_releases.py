"""Zero-downtime releases on real hosts under a bounded load through nginx: a changed app
goes live with no failed request; broken releases never go live; rollback is one command;
old releases are pruned."""

from __future__ import annotations

import http.client
import threading
import time

import pytest

from testbed.load import Load
from testbed.pyinfra_cli import pyinfra
from tests.helpers import HELLO, app_saying, body_of

APP = "myproject"


@pytest.fixture(scope="module")
def host(boot, workdir):
    (host,) = boot(1)
    pyinfra([host], workdir).check()
    return host


def deploy(host, workdir, app: str, expect: str, *args: str):
    return pyinfra(
        [host],
        workdir,
        "deploy.py",
        "--data",
        f"app_src={app}",
        "--data",
        f"health_text={expect}",
        *args,
    )


def report(name: str, load: Load) -> None:
    print(f"\n[{name}] {load.summary()}")


def test_changed_app_goes_live_under_load_without_a_failed_request(host, workdir, tmp_path):
    new = app_saying(tmp_path, "Hello Again!")
    with Load(host.http_port) as load:
        load.wait_for(50)
        run = deploy(host, workdir, new, "Hello Again!").check()
        done = time.monotonic()
        load.wait_for(len(load.samples) + 200)
    report("deploy", load)
    assert "Release health gate | Live release is healthy through nginx" in run.changed_ops()
    assert load.failed == [], load.summary()
    assert len(load.samples) > 250
    after = [s for s in load.samples if s.started > done]
    assert after and all("Hello Again!" in s.body for s in after)


BROKEN = {
    "fails to import": ("\nraise RuntimeError('broken at import')\n", "does not load"),
    "answers 500": (
        "\napp.view_functions['hello'] = lambda: ('broken', 500)\n",
        "is unhealthy before going live: GET / gave HTTP 500",
    ),
}


@pytest.mark.parametrize("broken", list(BROKEN))
def test_broken_release_never_goes_live(host, workdir, tmp_path, broken):
    code, message = BROKEN[broken]
    live = body_of(host)
    with Load(host.http_port) as load:
        load.wait_for(50)
        run = deploy(host, workdir, app_saying(tmp_path, "Broken", code), "Broken")
        load.wait_for(len(load.samples) + 100)
    report(f"broken release: {broken}", load)
    assert run.returncode != 0
    assert message in run.output, run.output[-3000:]
    assert load.failed == [], load.summary()
    assert all(s.body == live for s in load.samples)


def test_release_failing_only_behind_nginx_is_switched_back(host, workdir, tmp_path):
    """Healthy on its own socket, 500 behind nginx: the post-switch gate switches back."""
    live = body_of(host)
    code = (
        "\nfrom flask import request\n"
        "@app.before_request\ndef _():\n"
        "    if 'DOCUMENT_ROOT' in request.environ:  # set by nginx's uwsgi_params only\n"
        "        return 'no', 500\n"
    )
    run = deploy(host, workdir, app_saying(tmp_path, "Behind", code), "Behind")
    assert run.returncode != 0
    assert "failed its health check: HTTP 500; switched back to" in run.output
    assert body_of(host) == live


def test_rollback_under_load_without_a_failed_request(host, workdir):
    with Load(host.http_port) as load:
        load.wait_for(50)
        pyinfra([host], workdir, "rollback.py").check()
        done = time.monotonic()
        load.wait_for(len(load.samples) + 200)
    report("rollback", load)
    assert load.failed == [], load.summary()
    after = [s for s in load.samples if s.started > done]
    assert after and all(HELLO in s.body for s in after)
    assert pyinfra([host], workdir, "verify.py").returncode == 0


def test_old_releases_are_pruned_to_keep_releases(host, workdir, tmp_path):
    for n in range(3):
        greeting = f"Release {n}"
        deploy(
            host, workdir, app_saying(tmp_path, greeting), greeting, "--data", "keep_releases=2"
        ).check()
        assert greeting in (body_of(host) or "")
    releases = host.exec(f"ls /srv/{APP}/releases").stdout.split()
    assert len(releases) == 2
    venvs = host.exec(f"find /srv/{APP}/venvs -mindepth 1 -maxdepth 1 -type d").stdout.split()
    assert len(venvs) == 1  # all releases share one requirements set


def test_concurrent_deploys_take_turns(host, workdir, tmp_path):
    """Two deploys of different releases started together: the second waits for the first
    (naming it) and then deploys on what the first left; the host ends consistent."""
    owner = "/run/flask-deploy/host.lock.owner"
    host.exec(f"rm -f {owner}")
    runs, apps = {}, {}

    def start(greeting: str) -> threading.Thread:
        app = apps[greeting] = app_saying(tmp_path, greeting)
        thread = threading.Thread(
            target=lambda: runs.setdefault(greeting, deploy(host, workdir, app, greeting))
        )
        thread.start()
        return thread

    first = start("First!")
    deadline = time.monotonic() + 60
    while host.exec(f"test -s {owner}", check=False).returncode:
        assert time.monotonic() < deadline, "the first deploy never took the lock"
        time.sleep(0.2)
    second = start("Second!")
    first.join()
    second.join()
    assert all(run.returncode == 0 for run in runs.values()), runs
    assert "waiting for deploy.py by" not in runs["First!"].output
    assert "waiting for deploy.py by" in runs["Second!"].output
    assert "Second!" in (body_of(host) or "")
    again = deploy(host, workdir, apps["Second!"], "Second!")
    assert again.check().changed == 0
    assert (
        pyinfra(
            [host],
            workdir,
            "verify.py",
            "--data",
            f"app_src={apps['Second!']}",
            "--data",
            "health_text=Second!",
        ).returncode
        == 0
    )


SLOW_ROUTE = (
    "\nimport time\n"
    "@app.route('/slow')\ndef slow():\n"
    "    time.sleep(20)  # longer than the deploy takes to reach the switch\n"
    "    return hello()\n"
)


def test_a_request_in_flight_at_the_switch_finishes_on_its_release(host, workdir, tmp_path):
    """While the service restarts onto the new release, its handover instance serves, so no
    request waits for the app to load; a long request that started on the old release
    completes there (two workers: one is busy with it)."""
    run = deploy(
        host,
        workdir,
        app_saying(tmp_path, "Slow one", SLOW_ROUTE),
        "Slow one",
        "--data",
        "processes=2",
    ).check()
    answers = []
    slow = threading.Thread(
        target=lambda: answers.append(body_of(host, "/slow", timeout=30)), daemon=True
    )
    with Load(host.http_port) as load:
        load.wait_for(50)
        slow.start()
        time.sleep(1)
        run = deploy(
            host,
            workdir,
            app_saying(tmp_path, "Slow two", SLOW_ROUTE),
            "Slow two",
            "--data",
            "processes=2",
        ).check()
        slow.join(30)
        load.wait_for(len(load.samples) + 100)
    report("deploy with a long request in flight", load)
    assert len(answers) == 1 and "Slow one" in answers[0], answers  # not cut at the switch
    assert load.failed == [], load.summary()
    assert "Release health gate | Live release is healthy through nginx" in run.changed_ops()
    assert "Slow two" in body_of(host)


SCHEME_ROUTE = (
    "\nfrom flask import request\n@app.route('/scheme')\ndef scheme():\n    return request.scheme\n"
)


def test_a_client_cannot_make_the_app_believe_in_https(host, workdir, tmp_path):
    """uWSGI takes the URL scheme from X-Forwarded-Proto: nginx sends its own."""
    deploy(host, workdir, app_saying(tmp_path, "Scheme", SCHEME_ROUTE), "Scheme").check()
    conn = http.client.HTTPConnection("127.0.0.1", host.http_port, timeout=10)
    conn.request("GET", "/scheme", headers={"X-Forwarded-Proto": "https"})
    assert conn.getresponse().read() == b"http"
