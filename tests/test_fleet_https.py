"""HTTPS behind a load balancer, and a fleet that grows: TLS ends at the load balancer (a real
ACME CA, Pebble, runs inside it), the app servers hold no certificate and open no 443, the app
learns the scheme from the load balancer alone, and an app server added to the inventory
serves through the load balancer after one run, after which a re-run changes nothing."""

from __future__ import annotations

import json
import time

import pytest

from testbed import acme
from testbed.load import Load
from testbed.pyinfra_cli import fleet_pyinfra as run
from tests.helpers import Served, app_saying, plain

NAME = "shop.test"
SETTINGS = {
    "server_name": NAME,
    "https": True,
    "acme_email": "ops@shop.test",
    "acme_server": acme.DIRECTORY,
    "acme_ca_bundle": acme.CA_BUNDLE,
}
SCHEME_ROUTE = (
    "\nfrom flask import request\n"
    "@app.route('/scheme')\ndef scheme():\n"
    "    return f'{request.scheme} {request.remote_addr}'\n"
)


def data(app: str) -> list[str]:
    return [f"--data={key}={value}" for key, value in {**SETTINGS, "app_src": app}.items()]


@pytest.fixture(scope="module")
def fleet(boot, workdir, tmp_path_factory):
    """A load balancer and three app servers, the last one not yet in the inventory."""
    hosts = boot(4)
    acme.start(hosts[0])
    app = app_saying(tmp_path_factory.mktemp("app"), "Hello Shop", SCHEME_ROUTE)
    started = time.monotonic()
    run(hosts[:3], workdir, "deploy.py", *data(app)).check()
    print(f"\n[fleet https] fresh balancer + 2 app servers: {time.monotonic() - started:.1f} s")
    return hosts, app


def test_tls_ends_at_the_balancer_and_the_app_sees_https(fleet):
    (balancer, first, second, _), _ = fleet
    served = Served(balancer, NAME, "/scheme")
    scheme, client = served.body.split()
    assert served.status == 200 and scheme == "https"
    assert client not in (balancer.address, "127.0.0.1")  # the client's, passed on
    assert plain(balancer, NAME) == (301, f"https://{NAME}/")
    for server in (first, second):
        assert server.exec("test -e /etc/letsencrypt/live", check=False).returncode != 0
        assert "443" not in server.exec("ufw status").stdout


def test_only_the_balancer_can_say_a_request_came_over_https(fleet):
    """A local user on an app server (not a load balancer) forging X-Forwarded-Proto."""
    (_, first, *_), _ = fleet
    forged = first.exec(
        f"curl -s -H 'Host: {NAME}' -H 'X-Forwarded-Proto: https' http://127.0.0.1/scheme"
    ).stdout
    assert forged.split()[0] == "http", forged


def test_a_rolling_release_over_https_resets_no_keep_alive_connection(fleet, workdir, tmp_path):
    hosts, _ = fleet
    balancer = hosts[0]
    app = app_saying(tmp_path, "Rolled out over HTTPS", SCHEME_ROUTE)
    ca = balancer.exec(f"cat {acme.CA_BUNDLE}").stdout
    with Load(balancer.https_port, tls_name=NAME, ca=ca) as load:
        load.wait_for(50)
        run(hosts[:3], workdir, "deploy.py", *data(app)).check()
        load.wait_for(len(load.samples) + 100)
    print(f"\n[fleet https] rolling release, HTTPS keep-alive clients: {load.summary()}")
    assert load.failed == [] and load.resets == 0, load.summary()
    assert "Rolled out over HTTPS" in Served(balancer, NAME).body


def test_an_added_app_server_serves_after_one_run_and_nothing_changes_after(
    fleet, workdir, tmp_path
):
    hosts, app = fleet
    balancer, *_, added = hosts
    started = time.monotonic()
    run(hosts, workdir, "deploy.py", *data(app)).check()
    print(f"\n[fleet https] a third app server added: {time.monotonic() - started:.1f} s")
    before = int(added.exec("wc -l < /var/log/nginx/access.log").stdout)
    for _ in range(12):
        assert Served(balancer, NAME).status == 200
    assert int(added.exec("wc -l < /var/log/nginx/access.log").stdout) > before
    again = run(hosts, workdir, "deploy.py", *data(app)).check()
    assert again.changed == 0, again.changed_ops()
    report = tmp_path / "report.json"
    result = run(hosts, workdir, "verify.py", *data(app), env_extra={"VERIFY_JSON": str(report)})
    assert result.returncode == 0, result.output[-3000:]
    checks = json.loads(report.read_text())["hosts"][balancer.name]["checks"]
    assert {c["name"] for c in checks} >= {
        f"TLS certificate for {NAME}",
        "HTTPS / via the balancer",
    }
