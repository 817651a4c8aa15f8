"""HTTPS against a real ACME CA (Pebble inside the test host): first certificate, redirect,
HSTS, a re-run that asks the CA nothing, renewal by certbot's own timer unit, expansion to a
new name, other apps on the host, a CA that stops answering, a reboot, and the verifier's
HTTPS checks."""

from __future__ import annotations

import http.client
import json
import ssl
import time

import pytest

import testbed
from testbed import acme
from testbed.pyinfra_cli import pyinfra
from tests.helpers import HELLO, Served, plain

NAMES = ["app.test", "www.app.test"]
SETTINGS = {
    "server_name": NAMES[:1],
    "https": True,
    "acme_email": "ops@app.test",
    "acme_server": acme.DIRECTORY,
    "acme_ca_bundle": acme.CA_BUNDLE,
}
LETSENCRYPT_LOG = "/var/log/letsencrypt/letsencrypt.log"


def deploy(host, workdir, entry: str = "deploy.py", env_extra=None, **overrides):
    args = []
    for key, value in {**SETTINGS, **overrides}.items():
        args += ["--data", f"{key}={value if isinstance(value, str) else json.dumps(value)}"]
    return pyinfra([host], workdir, entry, *args, env_extra=env_extra)


@pytest.fixture(scope="module")
def host(boot, workdir):
    (host,) = boot(1)
    acme.start(host)
    started = time.monotonic()
    deploy(host, workdir).check()
    print(f"\n[https] fresh host to a served certificate: {time.monotonic() - started:.1f} s")
    return host


def test_a_fresh_host_serves_the_app_over_https_with_the_cas_certificate(host):
    served = Served(host, "app.test")
    assert served.status == 200 and HELLO in served.body
    assert served.names == ["app.test"]
    assert "Pebble Intermediate CA" in str(served.cert["issuer"])
    assert served.headers["Strict-Transport-Security"] == "max-age=63072000"
    assert plain(host, "app.test", "/x?y=1") == (301, "https://app.test/x?y=1")
    status = host.exec(
        "curl -s -o /dev/null -w '%{http_code}' -H 'Host: app.test'"
        " http://127.0.0.1/.well-known/acme-challenge/none",
        check=False,
    ).stdout
    assert status == "404"  # the challenge folder is served, never redirected


def test_a_rerun_changes_nothing_and_asks_the_ca_nothing(host, workdir):
    before = host.exec(f"stat -c '%s %Y' {LETSENCRYPT_LOG}").stdout
    run = deploy(host, workdir).check()
    assert run.changed == 0, run.changed_ops()
    assert host.exec(f"stat -c '%s %Y' {LETSENCRYPT_LOG}").stdout == before


def test_certbots_timer_unit_renews_and_nginx_serves_the_new_certificate(host):
    old = Served(host, "app.test")
    assert host.exec("systemctl is-enabled certbot.timer; systemctl is-active certbot.timer")
    host.exec("systemctl start certbot.service")  # what certbot.timer runs, no deploy
    new = Served(host, "app.test")
    assert new.fingerprint != old.fingerprint, "the certificate was not renewed"
    assert (
        new.cert["notAfter"] != old.cert["notAfter"]
        or new.cert["serialNumber"] != (old.cert["serialNumber"])
    )


def test_a_new_name_expands_the_certificate(host, workdir):
    deploy(host, workdir, server_name=NAMES).check()
    for name in NAMES:
        served = Served(host, name)
        assert served.names == NAMES[::-1] or served.names == sorted(NAMES)
        assert HELLO in served.body


def test_apps_sharing_the_host_keep_https_and_get_their_own_certificates(host, workdir, tmp_path):
    """An HTTP-only app joins the HTTPS app: 443 stays open and served (the host-wide parts
    follow every app); a second HTTPS app gets a certificate of its own."""
    first = {"server_name": NAMES}  # the app of the tests above, inheriting the HTTPS settings
    plain_app = {"app_name": "plainapp", "server_name": "plain.test", "https": False}
    secure = {"app_name": "second", "server_name": "second.test"}
    before = Served(host, "app.test").fingerprint
    deploy(host, workdir, apps=[first, plain_app]).check()
    assert plain(host, "plain.test") == (200, None)
    assert Served(host, "app.test").fingerprint == before
    assert "Nginx Full" in host.exec("ufw status").stdout
    apps = [first, plain_app, secure]
    deploy(host, workdir, apps=apps).check()
    served = Served(host, "second.test")
    assert served.names == ["second.test"] and HELLO in served.body
    assert Served(host, "www.app.test").fingerprint == before
    assert plain(host, "second.test") == (301, "https://second.test/")
    report = tmp_path / "report.json"
    run = deploy(host, workdir, "verify.py", {"VERIFY_JSON": str(report)}, apps=apps)
    assert run.returncode == 0, run.output[-3000:]
    assert deploy(host, workdir, apps=apps).check().changed == 0
    retired = deploy(host, workdir, apps=[first], retired_apps=["plainapp", "second"]).check()
    assert retired.changed > 0 and host.exec("test -f /etc/letsencrypt/live/second/cert.pem")
    with pytest.raises(ssl.SSLError, match="UNRECOGNIZED_NAME"):  # its site is gone
        Served(host, "second.test")


def test_when_the_ca_stops_answering_the_run_fails_and_the_site_keeps_serving(host, workdir):
    acme.stop(host)
    before = Served(host, "app.test").fingerprint
    run = deploy(host, workdir, server_name=[*NAMES, "api.app.test"])
    assert run.returncode != 0
    assert "certbot got no certificate for app.test www.app.test api.app.test" in run.output
    assert "check that each name's DNS points at this host" in run.output
    served = Served(host, "app.test")
    assert served.fingerprint == before and HELLO in served.body
    with pytest.raises(http.client.RemoteDisconnected):  # the new name: no redirect into a
        plain(host, "api.app.test")  # certificate error, only the challenge (444 otherwise)
    back = deploy(host, workdir, server_name=NAMES).check()  # no new name: no CA needed
    assert "Certificate for" not in " ".join(back.changed_ops())


def test_https_survives_a_reboot(host):
    testbed.reboot(host)
    deadline = time.monotonic() + 30
    while True:
        try:
            served = Served(host, "www.app.test")
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)
    assert served.status == 200 and HELLO in served.body


FAULTS = {
    "wrong-name certificate": (
        "cd /etc/letsencrypt/live/myproject && mv fullchain.pem fullchain.keep"
        " && mv privkey.pem privkey.keep && openssl req -x509 -newkey rsa:2048 -nodes"
        " -keyout privkey.pem -out fullchain.pem -days 30 -subj /CN=wrong.test"
        " -addext subjectAltName=DNS:wrong.test 2>/dev/null && systemctl reload nginx",
        "cd /etc/letsencrypt/live/myproject && mv fullchain.keep fullchain.pem"
        " && mv privkey.keep privkey.pem && systemctl reload nginx",
        {"TLS certificate for app.test", "TLS certificate for www.app.test"},
    ),
    "timer disabled": (
        "systemctl disable --now certbot.timer",
        "systemctl enable --now certbot.timer",
        {"certbot.timer active", "certbot.timer enabled"},
    ),
    "redirect removed": (
        "sed -i 's|return 301 https://$host$request_uri;|proxy_pass http://127.0.0.1:9;|'"
        " /etc/nginx/sites-available/myproject && systemctl reload nginx",
        None,  # the next deploy repairs it
        {
            "HTTP app.test redirects",
            "HTTP www.app.test redirects",
            "nginx runs the deployed config",
        },
    ),
}


def verify(host, workdir, tmp_path):
    """verify.py's run and the names of the checks that failed (from its JSON report)."""
    report = tmp_path / "report.json"
    run = deploy(host, workdir, "verify.py", {"VERIFY_JSON": str(report)}, server_name=NAMES)
    checks = json.loads(report.read_text())["hosts"][host.name]["checks"]
    return run, {check["name"] for check in checks if not check["ok"]}


def test_verify_passes_with_https(host, workdir, tmp_path):
    run, failed = verify(host, workdir, tmp_path)
    assert run.returncode == 0 and failed == set(), run.output[-3000:]
    assert "TLS certificate for www.app.test" in run.output
    assert "HTTPS / via nginx" in run.output


@pytest.mark.parametrize("fault", list(FAULTS))
def test_verify_names_each_https_fault(host, workdir, tmp_path, fault):
    inject, restore, expected = FAULTS[fault]
    host.exec(inject)
    try:
        run, failed = verify(host, workdir, tmp_path)
        assert run.returncode != 0
        assert failed == expected, run.output[-3000:]
    finally:
        if restore:
            host.exec(restore)
        else:
            deploy(host, workdir, server_name=NAMES).check()
    assert verify(host, workdir, tmp_path)[1] == set()
