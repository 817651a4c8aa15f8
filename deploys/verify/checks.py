"""The verifier's checks: read-only facts about one host turned into pass/fail lines, the
host-wide ones once, then each app's."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime

from pyinfra import host
from pyinfra.facts.deb import DebPackages
from pyinfra.facts.files import Directory, File, Link, Sha256File, Socket

from deploys.config.layout import NGINX_UNIT, Layout
from deploys.config.plan import HostPlan
from deploys.config.settings import Settings
from deploys.ops import ufw
from deploys.ops.facts import (
    HttpResponse,
    NginxConfigTest,
    SandboxExposure,
    ServiceWritable,
    TlsCertificate,
    UnitStatus,
    UserCanReadWrite,
)
from deploys.ops.fileops import link_target
from deploys.ops.stamps import recorded_stamp
from deploys.release.gate import recorded_release
from deploys.release.live import live_release
from deploys.stack.balancer import upstream_servers
from deploys.stack.firewall import firewall_rules
from deploys.stack.fleet import Fleet
from deploys.stack.nginx import DEFAULT_SITE
from deploys.stack.retire import HostedApps, own_site, unlisted_apps

SANDBOX_TARGET = 2.0  # systemd-analyze security's exposure, 0 (best) to 10
CERT_MIN_DAYS, CERT_WARN_DAYS = 7, 21  # a certificate's remaining validity: fail, warn
UNKNOWN_HOST = "unknown-host.invalid"
LIVE_RELEASE_CHECK = "live release is current"  # compared across hosts by report.py


@dataclass
class Check:
    """One verified property of a host."""

    name: str
    expected: str
    observed: str
    ok: bool
    scope: str = "host"  # or the app's name

    def as_dict(self) -> dict:
        return asdict(self)


def _check(name: str, expected, observed) -> Check:
    return Check(name, str(expected), str(observed), expected == observed)


def _unit_checks(label: str, status: dict) -> list[Check]:
    return [
        _check(f"{label} active", "active", status.get("ActiveState") or "missing"),
        _check(f"{label} enabled", "enabled", status.get("UnitFileState") or "missing"),
    ]


def _applied_check(label: str, status: dict, stamp: str) -> Check:
    """The config files on disk are, byte for byte, the ones the deploy last applied to the
    running service (their hashes, recorded in its stamp after the restart or reload
    succeeded), and systemd runs the current unit files."""
    recorded = recorded_stamp(stamp).get("files") or {}
    newer = [p for p, sha in recorded.items() if host.get_fact(Sha256File, path=p) != sha]
    if status.get("NeedDaemonReload"):
        newer.append("unit not reloaded by systemd")
    applied = bool(recorded) and status.get("ExecMainStartTimestamp", 0) > 0
    return Check(
        f"{label} runs the deployed config",
        "no config change since last (re)load",
        "changed since: " + ", ".join(newer) if newer else "none",
        not newer and applied,
    )


def _socket_check(layout: Layout) -> list[Check]:
    sock = host.get_fact(Socket, path=layout.socket)
    if not sock:
        observed = "missing" if sock is None else "not a socket"
        return [Check("socket", f"{layout.socket} 660 root:www-data", observed, False)]
    return [
        _check("socket mode", "660", f"{sock['mode']:03d}"),
        _check("socket owner", "root:www-data", f"{sock['user']}:{sock['group']}"),
        _check(
            "socket usable by www-data",
            True,
            host.get_fact(UserCanReadWrite, path=layout.socket, user="www-data"),
        ),
    ]


def _data_checks(settings: Settings, layout: Layout) -> list[Check]:
    """The data directory: the app's own, private, writable inside the service's sandbox
    (systemd makes it at start); each shared path linked into the live release from it."""
    info = host.get_fact(Directory, path=layout.data)
    observed = f"{info['user']}:{info['group']} {info['mode']:03d}" if info else "missing"
    writable = host.get_fact(ServiceWritable, unit=layout.unit_name, path=layout.data)
    checks = [
        _check("data directory", f"{settings.user}:{settings.user} 750", observed),
        _check(
            "data directory writable by the service",
            "read-write",
            {True: "read-write", False: "read-only"}.get(writable, "service not running"),
        ),
    ]
    for path in settings.shared_paths:
        link = link_target(f"{layout.current}/app/{path}")
        checks.append(_check(f"shared {path} linked", layout.shared(path), link or "missing"))
    for path in settings.shared_folders:
        found = host.get_fact(Directory, path=layout.shared(path))
        checks.append(_check(f"shared folder {path}", "present", "present" if found else "missing"))
    return checks


def _static_checks(settings: Settings, host_header: str) -> list[Check]:
    """Each static location answers a file of its folder from nginx, with caching headers."""
    checks = []
    shipped = settings.app_files.files()
    for prefix, folder in sorted(settings.static.items()):
        base = settings.app_path / folder
        sample = next(p for p in shipped if p.is_relative_to(base)).relative_to(base).as_posix()
        response = host.get_fact(
            HttpResponse, url=site_url(settings, f"{prefix}/{sample}"), host_header=host_header
        )
        cache_control = response["headers"]["cache-control"]
        cached = settings.static_expires == "off" or "max-age" in cache_control
        checks.append(
            Check(
                f"static {prefix}/ served by nginx",
                f"{prefix}/{sample}: 200 with Cache-Control max-age",
                f"HTTP {response['status']}, Cache-Control: {cache_control or '-'}",
                response["status"] == 200 and cached,
            )
        )
    return checks


def site_url(settings: Settings, path: str) -> str:
    """The URL of ``path`` on the host's own nginx: https once HTTPS is on."""
    return f"{'https' if settings.https else 'http'}://127.0.0.1{path}"


def _certificate_check(name: str, settings: Settings) -> Check:
    """nginx serves ``name`` a certificate a client accepts, valid for CERT_MIN_DAYS more."""
    cert = host.get_fact(TlsCertificate, server_name=name, cafile=settings.acme_ca_bundle or "")
    expected = f"verifies, valid >= {CERT_MIN_DAYS} days"
    if not cert["verified"]:
        return Check(f"TLS certificate for {name}", expected, cert["error"], False)
    days = (cert["not_after"] - time.time()) / 86400
    until = datetime.fromtimestamp(cert["not_after"], UTC).strftime("%Y-%m-%d %H:%M UTC")
    observed = f"verifies, until {until} ({days:.1f} days)"
    if days < CERT_WARN_DAYS:
        observed += f"; WARNING: under {CERT_WARN_DAYS} days, is certbot.timer renewing?"
    return Check(f"TLS certificate for {name}", expected, observed, days >= CERT_MIN_DAYS)


def _https_checks(settings: Settings) -> list[Check]:
    """Per name: the certificate, the redirect from HTTP, HSTS."""
    checks = []
    for name in settings.server_name:
        checks.append(_certificate_check(name, settings))
        plain = host.get_fact(
            HttpResponse, url=f"http://127.0.0.1{settings.health_path}", host_header=name
        )
        location = plain["headers"]["location"]
        checks.append(
            _check(
                f"HTTP {name} redirects",
                f"301 to https://{name}{settings.health_path}",
                f"{plain['status']} to {location or '-'}" if plain["status"] else plain["body"],
            )
        )
    if settings.hsts:
        secure = host.get_fact(
            HttpResponse,
            url=site_url(settings, settings.health_path),
            host_header=settings.server_name[0],
        )
        wanted = f"max-age={settings.hsts_max_age}" + (
            "; includeSubDomains" if settings.hsts_include_subdomains else ""
        )
        observed = secure["headers"]["strict-transport-security"] or "missing"
        checks.append(_check("HSTS header", wanted, observed))
    return checks


def _renewal_checks() -> list[Check]:
    """certbot's renewal timer runs; a TLS handshake for a name no app serves is refused."""
    checks = _unit_checks("certbot.timer", host.get_fact(UnitStatus, unit="certbot.timer"))
    stranger = host.get_fact(TlsCertificate, server_name=UNKNOWN_HOST, cafile="")
    checks.append(
        _check(
            "TLS for an unknown name refused",
            "refused",
            "refused" if "UNRECOGNIZED_NAME" in stranger.get("error", "") else "a certificate",
        )
    )
    return checks


def _sandbox_check(layout: Layout) -> Check:
    score = host.get_fact(SandboxExposure, unit=layout.unit_name)
    return Check(
        "app sandbox exposure",
        f"<= {SANDBOX_TARGET}",
        "not rated" if score is None else str(score),
        score is not None and score <= SANDBOX_TARGET,
    )


def _unknown_host_check() -> Check:
    """With no default app, a request for a name no app serves gets no app: nginx closes
    it (444)."""
    response = host.get_fact(HttpResponse, url="http://127.0.0.1/", host_header=UNKNOWN_HOST)
    return _check(
        "unknown Host header closed",
        "no answer",
        "no answer" if response["status"] == 0 else f"HTTP {response['status']}",
    )


def _firewall_checks(plan: HostPlan, balancers: tuple[str, ...] = ()) -> list[Check]:
    return ufw_checks(*firewall_rules(plan, balancers))


def ufw_checks(allow: list[str], absent: list[str]) -> list[Check]:
    """UFW active, denying by default, with the ``allow`` rules and none on ``absent``."""
    state = ufw.current_state()
    rules = state["rules"]
    checks = [
        _check("ufw active", True, state["active"]),
        _check("ufw default incoming", "deny", state["defaults"].get("incoming", "unknown")),
    ]
    for spec in allow:
        checks.append(_check(f"ufw allows {spec}", True, ufw.rule_key("allow", spec) in rules))
    for port in absent:
        on_port = [r for r in rules if r.split(" ", 1)[-1].split("/")[0] == port]
        checks.append(_check(f"ufw has no {port} rule", "none", ", ".join(on_port) or "none"))
    return checks


def _retired_checks(name: str, hosted: dict) -> list[Check]:
    """A retired app: its service and socket stopped and disabled, its site gone (nothing
    to check for a name that is no app of ours on this host)."""
    if name not in hosted:
        return []
    layout = Layout(name)
    checks = []
    units = {"app unit": layout.unit_name, "app socket unit": layout.socket_unit_name}
    for label, unit in units.items():
        status = host.get_fact(UnitStatus, unit=unit, along=layout.units_read_together)
        state = status.get("UnitFileState") or "missing"
        checks += [
            _check(f"{label} stopped", "inactive", status.get("ActiveState") or "inactive"),
            Check(f"{label} disabled", "disabled", state, state != "enabled"),
        ]
    checks.append(_site_gone_check(layout))
    return [replace(c, scope=name) for c in checks]


def _site_gone_check(layout: Layout) -> Check:
    """A retired app's site is off nginx: no file in sites-available, nothing in
    sites-enabled (its names go to the catch-all, or to the app that took them)."""
    left = [
        path
        for path, fact in ((layout.site_available, File), (layout.site_enabled, Link))
        if host.get_fact(fact, path=path) is not None
    ]
    return _check("site removed", "absent", ", ".join(left) or "absent")


def retired_site_checks(plan: HostPlan) -> list[Check]:
    """On a load balancer, each retired app's site gone; nothing to check for a site this
    deploy did not write (it is left alone)."""
    return [
        replace(_site_gone_check(Layout(name)), scope=name)
        for name in plan.retired
        if own_site(name) is not False
    ]


def _nginx_test_check(config_test: dict) -> Check:
    """``nginx -t`` passes, and no two sites claim one name (nginx only warns, and gives the
    name to the first)."""
    conflicts = [line for line in config_test["message"].splitlines() if "conflicting" in line]
    observed = config_test["message"] if not config_test["ok"] else "; ".join(conflicts)
    return Check("nginx -t", "ok", observed or "ok", config_test["ok"] and not conflicts)


def _running_unlisted(plan: HostPlan) -> str:
    """The apps running on the host that the settings neither list nor retire."""
    running = [name for name, state in unlisted_apps(plan).items() if state == "active"]
    return ", ".join(running) or "none"


def host_checks(plan: HostPlan, balancers: tuple[str, ...] = ()) -> list[Check]:
    """The checks of what the host's apps share: nginx, the firewall, certbot's timer, the
    catch-all; that no app runs the settings do not list, and the retired apps are off."""
    hosted = host.get_fact(HostedApps)
    nginx = host.get_fact(UnitStatus, unit=NGINX_UNIT)
    config_test = host.get_fact(NginxConfigTest) or {"ok": False, "message": "nginx missing"}
    return [
        *_unit_checks("nginx", nginx),
        _nginx_test_check(config_test),
        _check(
            "default site absent",
            "absent",
            "absent" if host.get_fact(File, path=DEFAULT_SITE) is None else "present",
        ),
        *(_firewall_checks(plan, balancers) if plan.host.firewall else []),
        *(_renewal_checks() if plan.https else []),
        *([] if plan.default_server else [_unknown_host_check()]),
        _check("apps not in the settings running", "none", _running_unlisted(plan)),
        *(check for name in plan.retired for check in _retired_checks(name, hosted)),
        *([_apt_packages_check(plan.apt_packages)] if plan.apt_packages else []),
    ]


def _apt_packages_check(wanted: list[str]) -> Check:
    """The apps' ``apt_packages`` installed."""
    installed = host.get_fact(DebPackages)
    missing = [name for name in wanted if name not in installed]
    observed = f"missing: {', '.join(missing)}" if missing else ", ".join(wanted)
    return _check("apt_packages installed", ", ".join(wanted), observed)


def _live_release_check(layout: Layout, current: str, reported: str | None) -> Check:
    """The service's current run loaded the release ``current`` points to, by root's record
    (written by the unit before each start); what the app's stats report (it can
    forge them) is shown beside, and decides nothing."""
    recorded = recorded_release(layout)
    said = f" (the app reports {reported or 'nothing'})" if reported != recorded else ""
    observed = recorded or "no record of its current run (not running, or started by an older unit)"
    return Check(LIVE_RELEASE_CHECK, current, observed + said, recorded == current)


def app_checks(settings: Settings) -> list[Check]:
    """Every check of one app, in a stable order."""
    layout = Layout.of(settings)
    app, socket_unit, handover = (
        host.get_fact(UnitStatus, unit=unit, along=layout.units_read_together)
        for unit in (layout.unit_name, layout.socket_unit_name, layout.handover_unit_name)
    )
    nginx = host.get_fact(UnitStatus, unit=NGINX_UNIT, along=layout.units_read_together)
    live = live_release(layout, settings)
    current = link_target(layout.current) or "missing"
    link = link_target(layout.site_enabled)
    host_header = settings.host_header
    response = host.get_fact(
        HttpResponse, url=site_url(settings, settings.health_path), host_header=host_header
    )
    checks = [
        *_unit_checks("app unit", app),
        *_unit_checks("app socket unit", socket_unit),
        _check("handover instance stopped", "inactive", handover.get("ActiveState") or "inactive"),
        _applied_check("app unit", app, layout.stamp(layout.unit_name)),
        _sandbox_check(layout),
        *_socket_check(layout),
        *_data_checks(settings, layout),
        Check(
            "uWSGI workers",
            str(settings.processes),
            f"{live['workers']}, as the app's stats report",
            live["workers"] == settings.processes,
        ),
        _live_release_check(layout, current, live["release"]),
        _check("site enabled", layout.site_available, link or "missing"),
        _applied_check("nginx", nginx, layout.stamp("nginx")),
        *(_https_checks(settings) if settings.https else []),
        _check(
            f"{'HTTPS' if settings.https else 'HTTP'} {settings.health_path} via nginx",
            200,
            response["status"],
        ),
        *_static_checks(settings, host_header),
    ]
    if settings.expected_text:
        body = response["body"]
        checks.append(
            Check(
                "response content",
                repr(settings.expected_text),
                "found" if settings.expected_text in body else repr(body[:80]),
                settings.expected_text in body,
            )
        )
    return [replace(c, scope=settings.app_name) for c in checks]


def balancer_checks(settings: Settings, fleet: Fleet) -> list[Check]:
    """One app on a load balancer: its site lists exactly the inventory's app servers,
    each answers the health path from here, and the app answers through the balancer."""
    layout = Layout.of(settings)
    link = link_target(layout.site_enabled)
    name = settings.host_header
    checks = [
        _check("site enabled", layout.site_available, link or "missing"),
        _check(
            "upstream is the inventory's app servers, all in rotation",
            ", ".join(fleet.app_servers),
            ", ".join(upstream_servers(settings)) or "none",
        ),
    ]
    for address in fleet.app_servers:
        direct = host.get_fact(
            HttpResponse, url=f"http://{address}{settings.health_path}", host_header=name
        )
        checks.append(
            _check(f"app server {address} answers {settings.health_path}", 200, direct["status"])
        )
    through = host.get_fact(
        HttpResponse, url=site_url(settings, settings.health_path), host_header=name
    )
    scheme = "HTTPS" if settings.https else "HTTP"
    checks.append(
        _check(f"{scheme} {settings.health_path} via the balancer", 200, through["status"])
    )
    checks += _https_checks(settings) if settings.https else []
    return [replace(c, scope=settings.app_name) for c in checks]
