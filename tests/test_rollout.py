"""A rolling release in the order docs/fleets.md describes, proven from the hosts themselves: a
load balancer and three app servers (test-bed hosts, batches of one), each host recording
what happens on it while the rollout runs (tests/timeline.py). A fresh fleet with its own
health path converges in one run, no app server in rotation before its app answers there;
a release switches batch after batch, each checked from the load balancer before the next
switches, and so does a rollback; a release the load balancer finds unhealthy stops the
rollout at its batch. The load balancer's nginx is never reloaded by a rollout that brings
no new app server (a reload closes clients' idle keep-alive connections): keep-alive
clients at full speed (wrk) and new connections (tests' Load) see no failed request."""

from __future__ import annotations

import pytest

import testbed
from testbed.pyinfra_cli import fleet_pyinfra
from tests.helpers import app_saying
from tests.timeline import Timeline, rolled_under_load

HEALTHZ = '\n\n@app.route("/healthz")\ndef _healthz():\n    return "ok"\n'
# a release the load balancer finds unhealthy is asked again for health_timeout: 10 s here
SETTINGS = (
    "--data",
    "health_path=/healthz",
    "--data",
    "health_text=ok",
    "--data",
    "health_timeout=10",
)


def run(hosts, workdir, app, entry="deploy.py", *args):
    return fleet_pyinfra(hosts, workdir, entry, *SETTINGS, "--data", f"app_src={app}", *args)


@pytest.fixture(scope="module")
def fleet(boot, workdir, tmp_path_factory):
    """A fresh load balancer and three app servers, deployed in one run while recorded."""
    hosts = boot(4)
    app = app_saying(tmp_path_factory.mktemp("apps"), "First release", HEALTHZ)
    with Timeline(hosts) as timeline:
        result = run(hosts, workdir, app)
    print(f"\n[rollout] fresh fleet, health path /healthz:\n{timeline.show()}")
    result.check()
    return hosts, app, timeline


def release_of(server) -> str:
    return server.exec("readlink /srv/myproject/current").stdout.strip()


def test_a_fresh_fleet_converges_in_one_run_with_no_server_in_rotation_before_its_app(
    fleet, workdir
):
    hosts, app, timeline = fleet
    balancer, *servers = hosts
    downs = timeline.changes(balancer, "down")
    # the site went live with every app server marked down, and each left the down list
    # only after its app answered the load balancer's check
    first_site = next(e for e in downs if e.value != "-")
    assert set(first_site.value.split(",")) == {s.address for s in servers}
    for server in servers:
        check = timeline.changes(server, "check")[0].at
        joined = next(e.at for e in downs if server.address not in e.value.split(","))
        assert timeline.first_change(server, "current") < check < joined, server.name
    assert run(hosts, workdir, app).check().changed == 0
    assert run(hosts, workdir, app, "verify.py").returncode == 0


def test_a_rolling_release_switches_batch_after_batch(fleet, workdir, tmp_path):
    hosts, _, _ = fleet
    balancer, *servers = hosts
    app = app_saying(tmp_path, "Rolled out!", HEALTHZ)
    title = "rollout: rolling release, 3 app servers"
    result, tl = rolled_under_load(hosts, title, lambda: run(hosts, workdir, app).check())
    tl.assert_rolled(balancer, servers)
    assert "checked from the load balancers" in result.output
    assert "Rolled out!" in testbed.http_get(balancer.http_port)[1]
    assert run(hosts, workdir, app).check().changed == 0


def test_a_rollback_goes_batch_by_batch(fleet, workdir):
    hosts, _, _ = fleet
    balancer, *servers = hosts
    before = {s.name: release_of(s) for s in servers}
    _, tl = rolled_under_load(
        hosts,
        "rollout: rolling rollback, 3 app servers",
        lambda: fleet_pyinfra(hosts, workdir, "rollback.py", *SETTINGS).check(),
    )
    tl.assert_rolled(balancer, servers)
    assert all(release_of(s) != before[s.name] for s in servers)
    assert "First release" in testbed.http_get(balancer.http_port)[1]


def test_a_release_the_balancer_finds_unhealthy_stops_the_rollout_at_its_batch(
    fleet, workdir, tmp_path
):
    hosts, _, _ = fleet
    balancer, first, *later = hosts
    before = {s.name: release_of(s) for s in later}
    unhealthy_there = app_saying(
        tmp_path,
        "Unhealthy from the load balancer",
        HEALTHZ.replace(
            'return "ok"',
            'return ("no", 503) if "flask-deploy-check" in request.user_agent.string else "ok"',
        )
        + "\nfrom flask import request\n",
    )
    title = "rollout: a release unhealthy from the load balancer"
    action = lambda: run(hosts, workdir, unhealthy_there)  # noqa: E731
    result, tl = rolled_under_load(hosts, title, action, reloads=True)
    assert result.returncode != 0
    line = next(line for line in result.output.splitlines() if "answered" in line)
    for part in (balancer.name, first.name, "myproject", f"http://{first.address}/healthz", "503"):
        assert part in line, line
    assert len(tl.changes(first, "current")) == 1
    assert all(tl.changes(server, "current") == [] for server in later)
    assert {s.name: release_of(s) for s in later} == before
    # taken out of rotation: the one reload (no keep-alive client failed: they retry)
    assert [e.value for e in tl.changes(balancer, "down")] == [first.address]
    assert "Rollout of myproject stopped" in result.output


def test_a_rollback_after_a_stopped_rollout_brings_back_only_the_servers_it_switched(
    fleet, workdir
):
    hosts, _, _ = fleet
    _, first, *later = hosts
    others = {release_of(s) for s in later}
    assert len(others) == 1 and release_of(first) not in others  # as the rollout stopped
    _, tl = rolled_under_load(
        hosts,
        "rollout: a rollback after a stopped rollout",
        lambda: fleet_pyinfra(hosts, workdir, "rollback.py", *SETTINGS).check(),
        reloads=True,  # the server taken out comes back in once checked
    )
    assert {release_of(s) for s in hosts[1:]} == others
    assert [e.value for e in tl.changes(hosts[0], "down")] == ["-"]
    assert len(tl.changes(first, "current")) == 1
    assert all(tl.changes(s, what) == [] for s in later for what in ("current", "master"))
    assert fleet_pyinfra(hosts, workdir, "verify.py", *SETTINGS).returncode == 0
