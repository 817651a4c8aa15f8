"""A real ACME CA inside a test-bed host: Debian's Pebble (Let's Encrypt's test server) and its
fake DNS, which answers 127.0.0.1 for every name, so certbot, Pebble and the HTTP-01 check
through the host's real nginx never leave that host (recipe: ../shared/acme-testbed.md). On a
fleet that host is the load balancer, where TLS ends."""

from __future__ import annotations

import time

from testbed import Host

DIRECTORY = "https://127.0.0.1:14000/dir"
CA_BUNDLE = "/etc/pebble/ca-bundle.pem"  # Pebble's API certificate and its issuing root
CERT_VALIDITY = 25 * 86400  # inside certbot's 30-day renewal window, over verify's 21-day warning

CONFIG = f"""{{"pebble": {{"listenAddress": "127.0.0.1:14000",
  "managementListenAddress": "127.0.0.1:15000",
  "certificate": "/etc/pebble/cert.pem", "privateKey": "/etc/pebble/key.pem",
  "httpPort": 80, "tlsPort": 5001, "ocspResponderURL": "",
  "externalAccountBindingRequired": false, "certificateValidityPeriod": {CERT_VALIDITY}}}}}
"""

SETUP = f"""set -e
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq pebble openssl curl >/dev/null
mkdir -p /etc/pebble
cd /etc/pebble
test -f key.pem || openssl req -x509 -newkey rsa:2048 -nodes -keyout key.pem -out cert.pem \\
  -days 30 -subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1 2>/dev/null
cat > config.json <<'JSON'
{CONFIG}JSON
"""


def start(host: Host) -> None:
    """Install and start Pebble and its DNS on ``host``; write CA_BUNDLE (its API certificate
    for certbot, and the root its certificates chain to, which changes at every start)."""
    host.exec(SETUP)
    if host.exec("systemctl is-active --quiet pebble", check=False).returncode == 0:
        return  # already running (its root, and certbot's account with it, stay as they are)
    host.exec("systemctl reset-failed challtestsrv pebble", check=False)
    host.exec(
        "systemd-run --unit=challtestsrv pebble-challtestsrv -defaultIPv4 127.0.0.1"
        ' -defaultIPv6 "" -dns01 127.0.0.1:8053 -http01 "" -https01 "" -tlsalpn01 ""'
        " -management 127.0.0.1:8055"
    )
    host.exec(
        "systemd-run --unit=pebble -E PEBBLE_VA_NOSLEEP=1 -E PEBBLE_WFE_NONCEREJECT=0"
        " pebble -config /etc/pebble/config.json -dnsserver 127.0.0.1:8053"
    )
    deadline = time.monotonic() + 60
    while host.exec(f"curl -sf --cacert /etc/pebble/cert.pem {DIRECTORY}", check=False).returncode:
        if time.monotonic() > deadline:
            raise RuntimeError("Pebble did not start: " + host.exec("journalctl -u pebble").stdout)
        time.sleep(0.5)
    host.exec(
        "curl -sf --cacert /etc/pebble/cert.pem https://127.0.0.1:15000/roots/0 > /tmp/root.pem"
        f" && cat /etc/pebble/cert.pem /tmp/root.pem > {CA_BUNDLE}"
    )


def stop(host: Host) -> None:
    """Stop Pebble: the CA stops answering."""
    host.exec("systemctl stop pebble")


def main(argv: list[str] | None = None) -> int:
    """``python -m testbed.acme``: start Pebble where the local test bed's certificates live
    (each host of ``make up``; on a fleet, ``up --fleet N``, the load balancer) and say how
    to deploy and reach the site over HTTPS with it."""
    import argparse

    from testbed import LOCAL_STATE, read_groups, read_state

    argparse.ArgumentParser(description=main.__doc__).parse_args(argv)
    hosts = read_state(LOCAL_STATE)
    balancers = read_groups(LOCAL_STATE).get("load_balancers")
    holders = [h for h in hosts if h.name in balancers] if balancers else hosts
    for host in holders:
        start(host)
        print(f"{host.name}: Pebble answers at {DIRECTORY} inside the host")
    if balancers:
        print(
            "A fleet: TLS ends at the load balancer, which runs Pebble and certbot and holds the"
            " certificate;\nthe app servers need no Pebble and hold none (they ignore the HTTPS"
            " settings)."
        )
    print(
        "Put these settings in inventories/group_data/local.py (every command needs them):\n"
        '  https = True\n  server_name = ["app.test"]\n  acme_email = "ops@app.test"\n'
        f'  acme_server = "{DIRECTORY}"\n  acme_ca_bundle = "{CA_BUNDLE}"\n'
        "then: make deploy verify; and from this machine:"
    )
    for host in holders:
        print(
            f"  docker cp {host.name}:{CA_BUNDLE} {host.name}-ca.pem\n"
            f"  curl --resolve app.test:{host.https_port}:127.0.0.1 --cacert {host.name}-ca.pem"
            f" https://app.test:{host.https_port}/"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
