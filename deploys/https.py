"""HTTPS: certificates from an ACME CA with Debian's certbot (HTTP-01 through the app's own
nginx site, so nginx never stops), renewed by certbot's timer, nginx reloaded on renewal."""

from __future__ import annotations

import shlex
import time
from datetime import UTC, datetime

from pyinfra import host
from pyinfra.api import FactBase, deploy, operation
from pyinfra.operations import files, systemd

from deploys.converge import daemon_reload_if_needed
from deploys.layout import Layout
from deploys.render import put_text
from deploys.settings import Settings

ACME_WEBROOT = "/var/www/flask-deploy-acme"  # certbot writes challenges, nginx serves them
RENEWAL_HOOK = "/etc/letsencrypt/renewal-hooks/deploy/flask-deploy-reload-nginx"
CERTBOT_DROP_IN = "/etc/systemd/system/certbot.service.d/flask-deploy.conf"
RELOAD_NGINX = "nginx -t -q && systemctl reload nginx"


class Certificate(FactBase):
    """The certificate at ``path``: ``{"names": [DNS names], "not_after": epoch seconds}``,
    or None when there is none (or no openssl to read it)."""

    requires_command = "openssl"

    def command(self, path: str) -> str:
        quoted = shlex.quote(path)
        return (
            f"test -f {quoted} || exit 0;"
            f" openssl x509 -in {quoted} -noout -enddate -ext subjectAltName"
        )

    @staticmethod
    def default():
        return None

    def process(self, output):
        lines = [line.strip() for line in output]
        end = next((line for line in lines if line.startswith("notAfter=")), None)
        if end is None:
            return None
        stamp = " ".join(end.removeprefix("notAfter=").split())
        not_after = datetime.strptime(stamp, "%b %d %H:%M:%S %Y %Z").replace(tzinfo=UTC)
        names = [
            part.strip().removeprefix("DNS:")
            for line in lines
            if "DNS:" in line
            for part in line.split(",")
            if part.strip().startswith("DNS:")
        ]
        return {"names": names, "not_after": int(not_after.timestamp())}


def certbot_command(settings: Settings) -> str:
    """certbot's certonly for the app's names over the webroot, never interactive."""
    layout = Layout.of(settings)
    args = [
        "certbot",
        "certonly",
        "--webroot",
        "-w",
        ACME_WEBROOT,
        "--cert-name",
        layout.app,
        *(arg for name in settings.server_name for arg in ("-d", name)),
        "--non-interactive",
        "--agree-tos",
        "-m",
        settings.acme_email,
        *(["--server", settings.acme_server] if settings.acme_server else []),
    ]
    return " ".join(shlex.quote(arg) for arg in args)


@operation()
def certificate_issued(settings: Settings):
    """
    Ask the ACME CA for a certificate covering every ``server_name`` (one per app, expanded
    when a name is added) and reload nginx with it, unless the certificate on the host
    already covers them and has not expired: a valid certificate costs the CA nothing.
    Renewing before expiry is certbot.timer's job. Never deletes a certificate.

    + settings: the names, acme_email, acme_server (and acme_ca_bundle, passed as _env)
    """
    layout = Layout.of(settings)
    cert = host.get_fact(Certificate, path=layout.certificate)
    wanted = set(settings.server_name)
    if cert and wanted <= set(cert["names"]) and cert["not_after"] > time.time():
        host.noop(f"the certificate covers {', '.join(sorted(wanted))}")
        return
    advice = (
        f"certbot got no certificate for {' '.join(settings.server_name)}: its reason is"
        " above. Check that each name's DNS points at this host and that port 80 is open"
        " from the internet (the CA connects to it); the site keeps serving as before and the"
        " next run tries again."
    )
    yield f"{certbot_command(settings)} || {{ echo {shlex.quote(advice)} >&2; exit 1; }}"
    yield RELOAD_NGINX


@deploy("HTTPS certificates")
def prepare_certificates(settings: Settings):
    """The challenge folder, the renewal hook that reloads nginx, certbot's trust for a
    private CA (acme_ca_bundle, renewals too) and certbot.timer enabled and running."""
    files.directory(
        name=f"ACME challenge folder {ACME_WEBROOT}", path=ACME_WEBROOT, user="root", mode="755"
    )
    files.directory(
        name="certbot's deploy hooks folder",
        path=RENEWAL_HOOK.rsplit("/", 1)[0],
        user="root",
        mode="755",
    )
    put_text(
        f"Renewal hook {RENEWAL_HOOK}: nginx serves a renewed certificate",
        f"#!/bin/sh\n# Managed by pyinfra (deploys/https.py).\n{RELOAD_NGINX}\n",
        RENEWAL_HOOK,
        mode="755",
    )
    if settings.acme_ca_bundle:
        files.directory(
            name="certbot.service drop-ins", path=CERTBOT_DROP_IN.rsplit("/", 1)[0], mode="755"
        )
        put_text(
            f"certbot.service trusts {settings.acme_ca_bundle} (renewals)",
            "# Managed by pyinfra (deploys/https.py).\n[Service]\n"
            f"Environment=REQUESTS_CA_BUNDLE={settings.acme_ca_bundle}\n",
            CERTBOT_DROP_IN,
        )
    else:
        files.file(name=f"No {CERTBOT_DROP_IN}", path=CERTBOT_DROP_IN, present=False)
    daemon_reload_if_needed(
        name="systemd knows the current certbot.service",
        unit="certbot.service",
        drop_ins=(CERTBOT_DROP_IN,) if settings.acme_ca_bundle else (),
    )
    systemd.service(
        name="certbot.timer enabled and running (renewals)",
        service="certbot.timer",
        running=True,
        enabled=True,
    )


def request_certificate(settings: Settings):
    """The certificate_issued operation for this app. Returns it."""
    bundle = {"REQUESTS_CA_BUNDLE": settings.acme_ca_bundle} if settings.acme_ca_bundle else {}
    return certificate_issued(
        name=f"Certificate for {', '.join(settings.server_name)}",
        settings=settings,
        _env=bundle,
    )
