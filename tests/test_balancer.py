"""Load balancers: their site from the inventory's app servers, the app servers' trust in
them, and a fleet running mixed releases found by the verifier's report."""

import pytest

from deploys.balancer import balancer_site, upstream_servers
from deploys.checks import LIVE_RELEASE_CHECK, Check
from deploys.fleet import Fleet, as_served, batch_size
from deploys.nginx import nginx_site
from deploys.plan import load_plan
from deploys.report import mixed_releases
from deploys.settings import SettingsError, load_settings

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
            ("FileContents", "/etc/nginx/sites-available/myproject"): balancer_site(
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
    site = balancer_site(load_settings({}), SERVERS, drained=SERVERS[:1])
    assert "server 10.0.0.11:80 max_fails=3 fail_timeout=10s down;" in site
    assert "server 10.0.0.12:80 max_fails=3 fail_timeout=10s;" in site
