"""What the integration tests share: the sample app's greeting, the example app's settings,
reading a host's state, copies of the sample app, verify.py's JSON report, HTTPS requests
with SNI."""

from __future__ import annotations

import hashlib
import http.client
import json
import shutil
import socket
import ssl

import testbed
from testbed import (
    acme,
    wait_for,  # noqa: F401 - the one polling helper, for the tests
)
from testbed.pyinfra_cli import pyinfra

APP = "myproject"
HELLO = "Hello There!"
NOTES = {  # the example app (examples/notes) as an operator sets it up
    "app_name": "notes",
    "app_src": str(testbed.REPO / "examples/notes"),
    "app_module": "notes:create_app()",
    "server_name": "notes.test",
    "shared_paths": ["instance"],
    "static": {"/static": "notes/static"},
    "release_command": ["flask --app notes migrate"],
    "health_path": "/health",
    "health_text": "ok",
    "env": {"FLASK_SECRET_KEY": "not-a-real-secret-but-not-dev-either"},
}


def body_of(host, path: str = "/", timeout: float = 5) -> str | None:
    status, body = testbed.http_get(host.http_port, path, timeout=timeout)
    return body if status == 200 else None


def pids(host, pattern: str) -> set[str]:
    return set(host.exec(f"pgrep -f '{pattern}' || true").stdout.split())


def uwsgi_workers(host) -> set[str]:
    return set(host.exec(f"pgrep -P {main_pid(host, APP)} || true").stdout.split())


def nginx_workers(host) -> set[str]:
    return pids(host, "^nginx: worker")


def main_pid(host, unit: str) -> str:
    return host.exec(f"systemctl show -p MainPID --value {unit}").stdout.strip()


def app_saying(tmp_path, greeting: str, extra: str = "") -> str:
    """A copy of the sample app that greets with ``greeting`` (plus code ``extra``)."""
    app = tmp_path / f"app-{abs(hash((greeting, extra)))}"
    shutil.copytree(testbed.REPO / "app", app)
    source = app / "myproject.py"
    source.write_text(source.read_text().replace(HELLO, greeting) + extra)
    return str(app)


def verify(hosts, workdir, tmp_path):
    report_file = tmp_path / "report.json"
    run = pyinfra(hosts, workdir, "verify.py", env_extra={"VERIFY_JSON": str(report_file)})
    return run, json.loads(report_file.read_text())


def failing(report: dict, host) -> set[str]:
    return {c["name"] for c in report["hosts"][host.name]["checks"] if not c["ok"]}


class Served:
    """One HTTPS request to the host's published 443 port with ``name`` as SNI and Host,
    verified against the host's CA bundle: status, headers, body and the certificate."""

    def __init__(self, host, name: str, path: str = "/", ca: str = ""):
        context = ssl.create_default_context(cadata=ca or host.exec(f"cat {acme.CA_BUNDLE}").stdout)
        with socket.create_connection(("127.0.0.1", host.https_port), timeout=10) as raw:
            with context.wrap_socket(raw, server_hostname=name) as tls:
                self.cert = tls.getpeercert()
                self.fingerprint = hashlib.sha256(tls.getpeercert(binary_form=True)).hexdigest()
                conn = http.client.HTTPConnection(name)
                conn.sock = tls
                conn.request("GET", path, headers={"Host": name})
                resp = conn.getresponse()
                self.status, self.headers = resp.status, dict(resp.getheaders())
                self.body = resp.read().decode()

    @property
    def names(self) -> list[str]:
        return sorted(v for k, v in self.cert["subjectAltName"] if k == "DNS")


def plain(host, name: str, path: str = "/"):
    conn = http.client.HTTPConnection("127.0.0.1", host.http_port, timeout=10)
    try:
        conn.request("GET", path, headers={"Host": name})
        resp = conn.getresponse()
        return resp.status, resp.getheader("Location")
    finally:
        conn.close()
