"""UFW support for pyinfra, which has none: a fact for the firewall's state and idempotent
operations for rules, default policies and enabling."""

from __future__ import annotations

import re
import shlex

from pyinfra import host
from pyinfra.api import FactBase, operation

SECTION = "--- pyinfra-ufw "
POLICY_WORDS = {"DROP": "deny", "ACCEPT": "allow", "REJECT": "reject"}
DEFAULT_KEYS = {"INPUT": "incoming", "OUTPUT": "outgoing", "FORWARD": "routed"}
STATUS_RULE_RE = re.compile(
    r"^(?P<to>.+?)\s+(?P<action>ALLOW|DENY|REJECT|LIMIT)(?: (?P<direction>IN|OUT|FWD))?"
    r"\s+(?P<source>.+?)\s*$"
)


def parse_ufw(output: str) -> dict:
    """Parse the three sections of UfwState's command into a dict (see UfwState)."""
    sections: dict[str, list[str]] = {}
    current = None
    for line in output.splitlines():
        if line.startswith(SECTION):
            current = line[len(SECTION) :].strip()
            sections[current] = []
        elif current:
            sections[current].append(line)

    status = sections.get("status", [])
    active = any(line.strip() == "Status: active" for line in status)
    in_table = False
    status_rules = []
    for line in status:
        if line.startswith("--"):
            in_table = True
        elif in_table and (match := STATUS_RULE_RE.match(line)):
            status_rules.append({k: (v or "").strip() for k, v in match.groupdict().items()})

    added = []
    for line in sections.get("added", []):
        if line.startswith("ufw "):
            added.append(" ".join(shlex.split(line)[1:]))

    defaults = {}
    for line in sections.get("defaults", []):
        key, _, value = line.partition("=")
        chain = key.removeprefix("DEFAULT_").removesuffix("_POLICY")
        if chain in DEFAULT_KEYS:
            defaults[DEFAULT_KEYS[chain]] = POLICY_WORDS.get(value.strip('"'), value.strip('"'))

    return {"active": active, "rules": added, "defaults": defaults, "status_rules": status_rules}


class UfwState(FactBase):
    """UFW's state: ``active`` (bool), ``rules`` (added rules as ``"allow Nginx Full"``, even
    while inactive), ``defaults`` (``{"incoming": "deny", ...}`` from /etc/default/ufw) and
    ``status_rules`` (the live table when active). ``None`` when ufw is not installed."""

    requires_command = "ufw"

    def command(self) -> str:
        return (
            f"echo '{SECTION}status'; LANG=C ufw status verbose; "
            f"echo '{SECTION}added'; LANG=C ufw show added; "
            f"echo '{SECTION}defaults'; grep '^DEFAULT_' /etc/default/ufw"
        )

    @staticmethod
    def default():
        return None

    def process(self, output):
        return parse_ufw("\n".join(output))


def rule_key(action: str, spec: str) -> str:
    """How a rule appears in UfwState's ``rules``: ``"allow Nginx Full"``."""
    return f"{action} {spec}"


def _state() -> dict:
    """The host's UFW state; before ufw is installed (a dry run on a fresh host), an empty one."""
    return host.get_fact(UfwState) or parse_ufw("")


@operation()
def rule(spec: str, action: str = "allow", present: bool = True):
    """
    Add or delete a UFW rule such as ``OpenSSH``, ``Nginx Full`` or ``8080/tcp``.

    + spec: a port (``8080/tcp``), a range (``6000:6007/udp``) or an app profile name
    + action: ``allow``, ``deny``, ``reject`` or ``limit``
    + present: whether the rule should exist
    """
    if action not in ("allow", "deny", "reject", "limit"):
        raise ValueError(f"ufw action {action!r} is not allow, deny, reject or limit")
    exists = rule_key(action, spec) in _state()["rules"]
    if present and not exists:
        yield f"ufw {action} {shlex.quote(spec)}"
    elif not present and exists:
        yield f"ufw delete {action} {shlex.quote(spec)}"
    else:
        host.noop(f"ufw rule {action} {spec} is {'present' if present else 'absent'}")


@operation()
def default(direction: str, policy: str):
    """
    Set UFW's default policy for a direction.

    + direction: ``incoming``, ``outgoing`` or ``routed``
    + policy: ``allow``, ``deny`` or ``reject``
    """
    if direction not in DEFAULT_KEYS.values() or policy not in POLICY_WORDS.values():
        raise ValueError(f"bad ufw default: {policy!r} {direction!r}")
    if _state()["defaults"].get(direction) != policy:
        yield f"ufw default {policy} {direction}"
    else:
        host.noop(f"ufw default {direction} is {policy}")


@operation()
def enabled(active: bool = True):
    """
    Enable UFW (now and at boot) or disable it. Allow SSH before enabling it.

    + active: whether UFW should be active
    """
    is_active = _state()["active"]
    if active and not is_active:
        yield "ufw --force enable"
    elif not active and is_active:
        yield "ufw disable"
    else:
        host.noop(f"ufw is {'active' if active else 'inactive'}")
