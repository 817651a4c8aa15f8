"""Load balancers: their site from the inventory's app servers, the app servers' trust in
them, and a fleet running mixed releases found by the verifier's report."""

import subprocess
import sys

import pytest
from pyinfra.api import Config, Inventory, State
from pyinfra.api.exceptions import PyinfraError

from deploys.config.plan import load_plan
from deploys.config.settings import SettingsError, load_settings
from deploys.stack import balancer
from deploys.stack.balancer import balancer_site, health_probe, upstream_servers
from deploys.stack.fleet import Fleet, as_served, batch_size, fleet
from deploys.stack.nginx import nginx_site
from deploys.stack.retire import SITE_HEADER, retired_sites
from deploys.verify.checks import LIVE_RELEASE_CHECK, Check, retired_site_checks
from deploys.verify.report import mixed_releases
from tests.fakehost import current

SERVERS = ("10.0.0.11", "10.0.0.12")


def test_the_balancer_site_lists_every_app_server():
    site = balancer_site(load_settings({"server_name": "shop.example"}), SERVERS)
    assert "    server 10.0.0.11:80 max_fails=3 fail_timeout=10s;" in site
    assert "    server 10.0.0.12:80 max_fails=3 fail_timeout=10s;" in site
    assert "server_name shop.example;" in site and "default_server" not in site
    assert "proxy_set_header X-Forwarded-For $remote_addr;" in site  # not the client's own


def test_the_upstream_is_read_back_from_the_site(fake):
    settings = load_settings({})
    fake(
        {
            ("FileContents", "path=/etc/nginx/sites-available/myproject"): balancer_site(
                settings, SERVERS
            ).splitlines()
        }
    )
    assert upstream_servers(settings) == list(SERVERS)


def test_app_servers_trust_only_the_balancers_for_the_client_address():
    settings = load_settings({})
    behind = nginx_site(settings, proxies=SERVERS[:1])
    assert "set_real_ip_from 10.0.0.11;" in behind and "real_ip_header X-Forwarded-For;" in behind
    alone = nginx_site(settings)
    assert "real_ip" not in alone  # without balancers the site is as it always was


def test_a_mixed_fleet_is_found():
    def live(host_release: str) -> list[Check]:
        return [Check(LIVE_RELEASE_CHECK, "x", f"/srv/a/releases/{host_release}", True, "a")]

    assert mixed_releases({"web1": live("r1"), "web2": live("r1")}) == {}
    down = [Check(LIVE_RELEASE_CHECK, "x", "not answering", False, "a")]
    assert mixed_releases({"web1": live("r1"), "web2": down}) == {}  # failed on its own
    assert mixed_releases({"web1": live("r1"), "web2": live("r2")}) == {
        "a": {"web1": "r1", "web2": "r2"}
    }


TLS = {"server_name": "shop.example", "https": True, "acme_email": "a@b.example"}


def test_https_ends_at_the_balancers():
    plan = load_plan(TLS)
    behind = as_served(plan, Fleet(("10.0.0.2",), SERVERS, balancing=False))
    assert not behind.https  # an app server: plain HTTP to the balancers, no certificate
    assert as_served(plan, Fleet(("10.0.0.2",), SERVERS, balancing=True)).https
    assert as_served(plan, Fleet((), SERVERS, balancing=False)) is plan  # no balancers
    site = balancer_site(plan.apps[0], SERVERS, (), ["shop.example"])
    assert "listen 443 ssl http2;" in site and "return 301 https://$host$request_uri;" in site
    assert "ssl_certificate /etc/letsencrypt/live/myproject/fullchain.pem;" in site
    assert "proxy_set_header X-Forwarded-Proto $scheme;" in site
    challenge_only = balancer_site(plan.apps[0], SERVERS)  # before the certificate
    assert "location ^~ /.well-known/acme-challenge/" in challenge_only
    assert "443" not in challenge_only


def test_app_servers_take_the_scheme_from_the_balancers_alone():
    site = nginx_site(load_settings({}), proxies=SERVERS)
    assert '    "10.0.0.11 https" https;' in site and '    "10.0.0.12 https" https;' in site
    assert "    default $scheme;" in site
    assert 'map "$realip_remote_addr $http_x_forwarded_proto"' in site  # the peer, not XFF
    assert "uwsgi_param HTTP_X_FORWARDED_PROTO $flask_deploy_scheme_myproject;" in site
    alone = nginx_site(load_settings({}))  # without balancers: nginx's own scheme
    assert "uwsgi_param HTTP_X_FORWARDED_PROTO $scheme;" in alone and "map" not in alone


@pytest.mark.parametrize(
    ("rolling_batch", "servers", "size"),
    [(1, 4, 1), (2, 4, 2), (9, 4, 4), ("25%", 4, 1), ("50%", 4, 2), ("10%", 4, 1), ("100%", 3, 3)],
)
def test_batches_are_a_count_or_a_share_of_the_app_servers(rolling_batch, servers, size):
    assert batch_size(rolling_batch, servers) == size


@pytest.mark.parametrize("value", [0, "0%", "150%", "half"])
def test_a_bad_rolling_batch_is_refused(value):
    with pytest.raises(SettingsError, match="rolling_batch: a number of app servers"):
        load_settings({"rolling_batch": value})


def test_a_drained_server_is_marked_down_and_the_others_stay():
    site = balancer_site(load_settings({}), SERVERS, down=SERVERS[:1])
    assert "server 10.0.0.11:80 max_fails=3 fail_timeout=10s down;" in site
    assert "server 10.0.0.12:80 max_fails=3 fail_timeout=10s;" in site


def test_verify_reads_which_servers_are_down(fake):
    settings = load_settings({})
    site = balancer_site(settings, SERVERS, down=SERVERS[:1])
    fake({("FileContents", "path=/etc/nginx/sites-available/myproject"): site.splitlines()})
    assert upstream_servers(settings) == [f"{SERVERS[0]} (down)", SERVERS[1]]


def test_the_balancer_site_logs_each_request_with_the_app_server_that_answered():
    site = balancer_site(load_settings({"app_name": "shop"}), SERVERS)
    assert 'log_format flask_deploy_shop \'$remote_addr [$time_local] "$request" $status' in site
    for logged in ("$upstream_addr", "$upstream_status", "$upstream_response_time"):
        assert logged in site
    assert "    access_log /var/log/nginx/shop.access.log flask_deploy_shop;" in site
    assert "    error_log /var/log/nginx/shop.error.log;" in site
    server = nginx_site(load_settings({"app_name": "shop"}))  # an app server: nginx's own
    assert "log_format" not in server and "access_log" not in server
    assert site.splitlines()[0] == server.splitlines()[0] == SITE_HEADER


OUR_OLD_SITE = ("FileContents", "path=/etc/nginx/sites-available/old")
FOREIGN_SITE = ("FileContents", "path=/etc/nginx/sites-available/theirs")
GONE_SITE = ("FileContents", "path=/etc/nginx/sites-available/gone")  # not there


def test_a_balancer_takes_off_the_retired_sites_it_wrote_and_no_other(fake):
    ours = balancer_site(load_settings({"app_name": "old"}), SERVERS).splitlines()
    host = fake({OUR_OLD_SITE: ours, FOREIGN_SITE: ["server {"], GONE_SITE: None})
    assert retired_sites(load_plan({"retired_apps": ["old", "theirs", "gone"]})) == ("old",)
    assert host.logs == [
        "retired_apps: the nginx site /etc/nginx/sites-available/theirs was not written by"
        " this deploy: left as it is"
    ]


def test_verify_on_a_balancer_fails_while_a_retired_site_is_there(fake):
    ours = balancer_site(load_settings({"app_name": "old"}), SERVERS).splitlines()
    fake(
        {
            OUR_OLD_SITE: ours,
            ("File", "path=/etc/nginx/sites-available/old"): {"mode": 644},
            FOREIGN_SITE: ["server {"],
            ("Link", "path=/etc/nginx/sites-enabled/old"): None,
            GONE_SITE: None,
            ("File", "path=/etc/nginx/sites-available/gone"): None,
            ("Link", "path=/etc/nginx/sites-enabled/gone"): {"link_target": "x"},
            ("FileContents", "path=/etc/nginx/sites-available/done"): None,
            ("File", "path=/etc/nginx/sites-available/done"): None,
            ("Link", "path=/etc/nginx/sites-enabled/done"): None,
        }
    )
    checks = retired_site_checks(load_plan({"retired_apps": ["old", "theirs", "gone", "done"]}))
    assert [(c.scope, c.name, c.observed, c.ok) for c in checks] == [
        ("old", "site removed", "/etc/nginx/sites-available/old", False),
        ("gone", "site removed", "/etc/nginx/sites-enabled/gone", False),  # a link left
        ("done", "site removed", "absent", True),
    ]


ANSWERS = r"""
import http.server, sys, time

class Answers(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        status, reason, body, headers = {
            "/healthz": (200, "OK", "ok", {}),
            "/missing": (404, "Not Found", "", {}),
            "/elsewhere": (302, "Found", "", {"Location": "http://127.0.0.1:9/healthz"}),
            "/other": (200, "OK", "hello", {}),
            "/forged": (503, "\x1b[2J\rload balancer passed", "", {}),
            "/trickle": (200, "OK", "", {}),
        }[self.path]
        self.send_response(status, reason)
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body.encode())
        while self.path == "/trickle":  # a byte every second: never a whole answer
            self.wfile.write(b"o")
            self.wfile.flush()
            time.sleep(1)

    def log_message(self, *args):
        pass

server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Answers)
print(server.server_address[1], flush=True)
server.serve_forever()
"""


@pytest.fixture(scope="module")
def app_server():
    """An app server's answers to the load balancer's health check, good and bad (a process
    of its own: the tests' process may have gevent's threads)."""
    process = subprocess.Popen([sys.executable, "-c", ANSWERS], stdout=subprocess.PIPE, text=True)
    yield f"127.0.0.1:{process.stdout.readline().strip()}"
    process.kill()
    process.wait()


@pytest.mark.parametrize(
    ("path", "came"),
    [
        ("/healthz", None),
        ("/missing", "answered 404 Not Found"),
        ("/elsewhere", "answered 302 Found"),  # never followed
        ("/other", "answered 200 OK without 'ok'"),
        ("/forged", "answered 503 \\x1b[2J\\rload balancer passed"),
        ("/trickle", "answered no whole answer within 3 s"),  # health_timeout + grace
    ],
)
def test_the_balancers_check_of_an_app_server_is_one_line_naming_all(
    fake, monkeypatch, app_server, path, came
):
    fake({})
    monkeypatch.setattr(balancer, "PROBE_GRACE", 2)  # not 10: the trickle is given up sooner
    given = {"health_path": path, "health_text": "ok", "server_name": "a.test", "health_timeout": 1}
    settings = load_settings(given)
    probe = subprocess.run(
        health_probe(settings, "app1", app_server), shell=True, capture_output=True, text=True
    )
    assert (probe.returncode == 0) == (came is None), probe.stderr
    if came:
        assert probe.stderr == (
            f"load balancer web1: app myproject on app server app1:"
            f" GET http://{app_server}{path} (Host: a.test) {came}\n"
        )


def fleet_of(hosts, **groups):
    """deploys.stack.fleet.fleet() over a real pyinfra inventory of ``hosts`` and ``groups``
    (its state and first host made pyinfra's current ones)."""
    inventory = Inventory((hosts, {}), **{name: members for name, members in groups.items()})
    with current(inventory.get_host(hosts[0][0]), State(inventory, Config())):
        return fleet()


def test_a_host_both_load_balancer_and_app_server_is_refused():
    with pytest.raises(PyinfraError, match="lb in both load_balancers and app_servers"):
        fleet_of(
            [("lb", {}), ("app1", {})],
            load_balancers=(["lb"], {}),
            app_servers=(["lb", "app1"], {}),
        )


def test_rolling_batch_differing_between_hosts_is_refused():
    hosts = [("lb", {}), ("app1", {"rolling_batch": 2}), ("app2", {"rolling_batch": 2})]
    with pytest.raises(
        PyinfraError, match=r"rolling_batch: the hosts of the fleet differ \(2, None\)"
    ):
        fleet_of(hosts, load_balancers=(["lb"], {}))
    same = [("lb", {}), ("app1", {}), ("app2", {})]
    assert fleet_of(same, load_balancers=(["lb"], {})).batches == (
        ("app1",),
        ("app2",),
    )
