"""UFW support for pyinfra, which has none: a fact for the firewall's state and an idempotent
operation that brings it to a whole policy (rules, default policy, enabled)."""

from __future__ import annotations

import shlex

from pyinfra import host
from pyinfra.api import FactBase, operation
from pyinfra.api.exceptions import OperationValueError

SECTION = "--- pyinfra-ufw "
POLICY_WORDS = {"DROP": "deny", "ACCEPT": "allow", "REJECT": "reject"}
DEFAULT_KEYS = {"INPUT": "incoming", "OUTPUT": "outgoing", "FORWARD": "routed"}


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

    active = [line.strip() for line in sections.get("loaded", [])] == ["yes"]
    return {"active": active, "rules": added, "defaults": defaults}


class UfwState(FactBase):
    """UFW's state: ``active`` (bool: its chains are loaded in the kernel, which is what
    ``ufw status`` tests, without its Python start-up), ``rules`` (added rules as ``"allow
    Nginx Full"``, even while inactive) and ``defaults`` (``{"incoming": "deny", ...}`` from
    /etc/default/ufw). ``None`` when ufw is not installed."""

    requires_command = "ufw"

    def command(self) -> str:
        return (
            f"echo '{SECTION}loaded'; iptables -n -L ufw-user-input >/dev/null 2>&1"
            " && echo yes || echo no; "
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


def rule_args(spec: str) -> str:
    """A rule as ufw's arguments: an app profile or port is one word (``'Nginx Full'``), a
    ``from ADDRESS to any port N proto tcp`` rule is several."""
    words = spec.split() if spec.startswith("from ") else [spec]
    return " ".join(shlex.quote(word) for word in words)


def current_state() -> dict:
    """The host's UFW state; before ufw is installed (a dry run on a fresh host), an empty one."""
    return host.get_fact(UfwState) or parse_ufw("")


@operation()
def policy(
    allow: list[str],
    absent: list[str] | None = None,
    incoming: str = "deny",
    active: bool = True,
):
    """
    Bring UFW to a whole policy from one read of its state (each read runs the ufw CLI once,
    about 0.05 s of the host's CPU): add the missing ``allow`` rules in their order, delete the
    ``absent`` ones, set the default for incoming traffic, then enable or disable UFW. Put
    the SSH rule first in ``allow``: it is added before UFW is enabled in the same run.

    + allow: rules to allow, e.g. ``OpenSSH``, ``Nginx Full``, ``8080/tcp``, ``6000:6007/udp``
    + absent: allow rules that must not exist, e.g. ``5000``
    + incoming: default incoming policy: ``allow``, ``deny`` or ``reject``
    + active: whether UFW should be active
    """
    if incoming not in POLICY_WORDS.values():
        raise OperationValueError(f"ufw default incoming {incoming!r} is not allow, deny or reject")
    state = current_state()
    rules = state["rules"]
    commands = [f"ufw allow {rule_args(s)}" for s in allow if rule_key("allow", s) not in rules]
    commands += [
        f"ufw delete allow {rule_args(s)}" for s in absent or [] if rule_key("allow", s) in rules
    ]
    if state["defaults"].get("incoming") != incoming:
        commands.append(f"ufw default {incoming} incoming")
    if active and not state["active"]:
        commands.append("ufw --force enable")
    elif not active and state["active"]:
        commands.append("ufw disable")
    if not commands:
        host.noop("ufw has its policy")
    yield from commands
