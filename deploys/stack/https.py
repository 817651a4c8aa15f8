"""HTTPS: certificates from an ACME CA with Debian's certbot (HTTP-01 through the app's own
nginx site, so nginx never stops), renewed by certbot's timer, nginx reloaded on renewal."""

from __future__ import annotations

import re
import shlex
import time
from collections.abc import Mapping
from datetime import UTC, datetime

from pyinfra import host
from pyinfra.api import FactBase, operation
from pyinfra.api.exceptions import PyinfraError
from pyinfra.facts.files import Directory, File
from pyinfra.operations import files

from deploys.config.layout import Layout
from deploys.config.settings import Settings
from deploys.ops.facts import FileTail
from deploys.ops.render import put_text
from deploys.ops.typed import deploy
from deploys.ops.units import unit_loaded, unit_state

ACME_WEBROOT = "/var/www/flask-deploy-acme"  # certbot writes challenges, nginx serves them
RENEWAL_HOOK = "/etc/letsencrypt/renewal-hooks/deploy/flask-deploy-reload-nginx"
CERTBOT_DROP_IN = "/etc/systemd/system/certbot.service.d/flask-deploy.conf"
CERTBOT_DEFAULT_SERVER = "https://acme-v02.api.letsencrypt.org/directory"  # certbot's own
CERTBOT_LOG = "/var/log/letsencrypt/letsencrypt.log"
RELOAD_NGINX = "nginx -t -q && systemctl reload nginx"
PEM_BEGIN_RE = re.compile(r"-----BEGIN [A-Z0-9 ]*-----")
PEM_END_RE = re.compile(r"-----END [A-Z0-9 ]*-----")
PEM_BLOCK_RE = re.compile(rf"{PEM_BEGIN_RE.pattern}.*?(?:{PEM_END_RE.pattern}|\Z)", re.DOTALL)
PEM_REMOVED = "[certificate or key removed]"
BASE64_LINE_RE = re.compile(r"^[A-Za-z0-9+/=]{40,}$")  # a PEM body's line, markers cut off


def without_pem(lines: list[str]) -> list[str]:
    """``lines`` with each PEM block (certificates, keys: certbot's debug log dumps them),
    from its BEGIN marker to its END marker, on one line or across many, replaced by
    PEM_REMOVED; also what comes before an END whose BEGIN is not among the lines (a tail
    that starts inside a block) and after a BEGIN that has no END; and any line that is
    base64 alone (a tail that starts and ends inside one block has no marker at all)."""
    text = "\n".join(lines)
    first_end, first_begin = PEM_END_RE.search(text), PEM_BEGIN_RE.search(text)
    if first_end and (not first_begin or first_end.start() < first_begin.start()):
        text = PEM_REMOVED + text[first_end.end() :]
    kept = PEM_BLOCK_RE.sub(PEM_REMOVED, text).split("\n") if lines else []
    return [PEM_REMOVED if BASE64_LINE_RE.match(line.strip()) else line for line in kept]


class CertbotLogTail(FactBase):
    """The last ``lines`` lines of certbot's log (CERTBOT_LOG) with no certificate or key in
    them (without_pem); ``[]`` when there is none. Filtered as they arrive: pyinfra prints
    a fact's raw output only with -vvv."""

    def command(self, lines: int) -> str:
        """FileTail's command on CERTBOT_LOG."""
        return FileTail().command(CERTBOT_LOG, lines)

    default = list

    def process(self, output):
        return without_pem(list(output))


class Certificate(FactBase):
    """The certificate at ``path`` and the CA its certbot ``renewal`` file names:
    ``{"names": [DNS names], "not_after": epoch seconds, "server": URL or None}``, or None
    when there is none (or no openssl to read it)."""

    def requires_command(self, *args, **kwargs) -> str:
        """The command this fact needs on the host (without it: its default)."""
        return "openssl"

    def command(self, path: str, renewal: str) -> str:
        quoted = shlex.quote(path)
        return (
            f"test -f {quoted} || exit 0;"
            f" openssl x509 -in {quoted} -noout -enddate -ext subjectAltName;"
            f" grep -m1 '^server = ' {shlex.quote(renewal)} 2>/dev/null || true"
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
        server = next(
            (line.split("=", 1)[1].strip() for line in lines if line.startswith("server =")), None
        )
        return {"names": names, "not_after": int(not_after.timestamp()), "server": server}


def covers(cert: dict | None, settings: Settings) -> bool:
    """Whether a certificate (the Certificate fact) covers every server_name, unexpired,
    from the CA the settings name."""
    return bool(
        cert
        and set(settings.server_name) <= set(cert["names"])
        and cert["not_after"] > time.time()
        and cert["server"] == (settings.acme_server or CERTBOT_DEFAULT_SERVER)
    )


def certificate(settings: Settings) -> dict | None:
    """The Certificate fact of this app."""
    layout = Layout.of(settings)
    return host.get_fact(Certificate, path=layout.certificate, renewal=layout.renewal)


def certbot_command(settings: Settings, new_ca: bool = False) -> str:
    """certbot's certonly for the app's names over the webroot, never interactive;
    ``new_ca``: the certificate on the host came from another CA, replace it now."""
    layout = Layout.of(settings)
    args = [
        "certbot",
        "certonly",
        "--webroot",
        f"--webroot-path={ACME_WEBROOT}",
        f"--cert-name={layout.app}",
        *(f"--domain={name}" for name in settings.server_name),
        "--non-interactive",
        "--agree-tos",
        f"--email={settings.acme_email}",
        *([f"--server={settings.acme_server}"] if settings.acme_server else []),
        *(["--force-renewal"] if new_ca else []),
    ]
    return " ".join(shlex.quote(arg) for arg in args)


@operation()
def certificate_issued(settings: Settings):
    """
    Ask the ACME CA for a certificate covering every ``server_name`` (one per app, expanded
    when a name is added, replaced when acme_server names another CA) and reload nginx with
    it, unless the certificate on the host already covers them, from that CA, and has not
    expired: a valid certificate costs the CA nothing.
    Renewing before expiry is certbot.timer's job. Never deletes a certificate.

    + settings: the names, acme_email, acme_server (and acme_ca_bundle, passed as _env)
    """
    cert = certificate(settings)
    if covers(cert, settings):
        host.noop(f"the certificate covers {', '.join(settings.server_name)}")
        return
    new_ca = bool(cert and cert["server"] != (settings.acme_server or CERTBOT_DEFAULT_SERVER))
    advice = (
        f"certbot got no certificate for {' '.join(settings.server_name)}: its reason is"
        " above. When the CA answered, check that each name's DNS points at this host and"
        " that port 80 is open from the internet (the CA connects to it); when it did not,"
        " check acme_server and the host's way out. The site keeps serving as before and the"
        " next run tries again."
    )
    yield f"{certbot_command(settings, new_ca)} || {{ echo {shlex.quote(advice)} >&2; exit 1; }}"
    yield RELOAD_NGINX


def writable_by_others(info: Mapping[str, object]) -> bool:
    """Whether a File/Directory fact shows a path someone other than root may change."""
    return info["user"] != "root" or bool(int(str(info["mode"]), 8) & 0o022)


def trusted_bundle(bundle: str) -> None:
    """Refuse an acme_ca_bundle that is missing, or that anyone but root could change (the
    app could then make certbot, running as root, trust a CA of its own)."""
    info = host.get_fact(File, path=bundle)
    folder = host.get_fact(Directory, path=bundle.rsplit("/", 1)[0] or "/")
    if not info:
        problem = "is not a file"
    elif writable_by_others(info) or not folder or writable_by_others(folder):
        problem = "or its folder is not root's alone (owned by root, writable by no one else)"
    else:
        return
    raise PyinfraError(
        f"acme_ca_bundle: {bundle} {problem} on {host.name}: put the private CA's"
        " certificates in a root-owned file first (nothing was changed)"
    )


@deploy("HTTPS certificates")
def prepare_certificates(ca_bundle: str | None):
    """Host-wide, for every app's certificate: the challenge folder, the renewal hook that
    reloads nginx, certbot's trust for a private CA (``ca_bundle``, the acme_ca_bundle
    setting; renewals too) and certbot.timer enabled and running. A missing bundle stops
    the run before anything changes."""
    if ca_bundle:
        trusted_bundle(ca_bundle)
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
    if ca_bundle:
        files.directory(
            name="certbot.service drop-ins", path=CERTBOT_DROP_IN.rsplit("/", 1)[0], mode="755"
        )
        put_text(
            f"certbot.service trusts {ca_bundle} (renewals)",
            "# Managed by pyinfra (deploys/https.py).\n[Service]\n"
            f"Environment=REQUESTS_CA_BUNDLE={ca_bundle}\n",
            CERTBOT_DROP_IN,
        )
    else:
        files.file(name=f"No {CERTBOT_DROP_IN}", path=CERTBOT_DROP_IN, present=False)
    unit_loaded(
        name="systemd knows the current certbot.service",
        unit="certbot.service",
        drop_ins=(CERTBOT_DROP_IN,) if ca_bundle else (),
    )
    unit_state(
        name="certbot.timer enabled and running (renewals)",
        unit="certbot.timer",
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
