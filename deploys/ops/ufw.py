"""UFW support for pyinfra, which has none: a fact for the firewall's state and an idempotent
operation that brings it to a whole policy (rules, default policy, enabled)."""

from __future__ import annotations

import re
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

    if "added" in sections:  # ufw's own listing (there are route rules)
        listed = [line[4:] for line in sections["added"] if line.startswith("ufw ")]
    else:
        ipv6 = sections.get("ipv6", [])  # as ufw reads it: the last setting, and the kernel's
        v6 = bool(ipv6) and ipv6[-1].partition("=")[2].strip().strip("'\"").lower() == "yes"
        tuples = sections.get("tuples", []) + (sections.get("tuples6", []) if v6 else [])
        listed = added_rules(tuples)
    added = [" ".join(shlex.split(command)) for command in dict.fromkeys(listed)]

    defaults = {}
    for line in sections.get("defaults", []):
        key, _, value = line.partition("=")
        chain = key.removeprefix("DEFAULT_").removesuffix("_POLICY")
        if chain in DEFAULT_KEYS:
            defaults[DEFAULT_KEYS[chain]] = POLICY_WORDS.get(value.strip('"'), value.strip('"'))

    active = [line.strip() for line in sections.get("loaded", [])] == ["yes"]
    return {"active": active, "rules": added, "defaults": defaults}


def added_rules(tuples: list[str]) -> list[str]:
    """The rules ufw lists in ``ufw show added`` (``allow 'Nginx Full'``...), from the
    ``### tuple ###`` lines of its user.rules and user6.rules, as its own parser writes them
    (ufw/parser.py, UFWCommandRule.get_command). Route rules are not written here: for them
    UfwState runs ufw itself."""
    return [command for line in tuples if (command := _tuple_command(line))]


def _tuple_command(line: str) -> str | None:
    """One ``### tuple ###`` line as a ufw command, None if ufw would skip it as malformed."""
    comment = ""
    if " comment=" in line:
        line, _, comment = line.partition(" comment=")
        comment = bytes.fromhex(comment.strip()[: len(comment.strip()) // 2 * 2]).decode(
            "utf-8", "backslashreplace"
        )
    fields = line.removeprefix("### tuple ###").split()
    if not 6 <= len(fields) <= 9:
        return None
    direction, iface_in, iface_out = "in", "", ""
    if len(fields) in (7, 9):
        last = fields[-1]
        direction = last.split("_")[0]
        if "!" in last and re.search(r"in_\w+", last) and re.search(r"out_\w+", last):
            iface_in, iface_out = (part.partition("_")[2] for part in last.split("!")[:2])
        elif last.startswith("in_"):
            iface_in = last.partition("_")[2]
        elif last.startswith("out_"):
            iface_out = last.partition("_")[2]
        elif "_" in last:
            return None
    if direction not in ("in", "out"):
        return None
    action, _, logtype = fields[0].lower().partition("_")
    action = action if action in ("allow", "reject", "limit") else "deny"
    proto, dport, dst, sport, src = fields[1:6]
    dapp, sapp = (
        (app.replace("%20", " ") if app != "-" else "" for app in fields[6:8])
        if len(fields) >= 8
        else ("", "")
    )
    words = [action]
    anywhere = ("0.0.0.0/0", "::/0")
    short = dst in anywhere and src in anywhere and sport == "any" and not sapp
    if short and not iface_in and not iface_out and dport != "any":
        words += ["out"] if direction == "out" else []
        words += [logtype] if logtype else []
        if dapp:
            words.append(f"'{dapp}'" if " " in dapp else dapp)
        else:
            words.append(dport + (f"/{proto}" if proto != "any" else ""))
    else:
        if iface_in:
            words += ["in", "on", iface_in]
        if iface_out:
            words += ["out", "on", iface_out]
        elif direction == "out":
            words.append("out")
        words += [logtype] if logtype else []
        for word, loc, port, app in (("from", src, sport, sapp), ("to", dst, dport, dapp)):
            loc = "any" if loc in anywhere else loc
            if loc != "any" or port != "any" or app:
                words += [word, loc]
                if app:
                    words += ["app", f"'{app}'" if " " in app else app]
                elif port != "any":
                    words += ["port", port]
        if not {"from", "to"} & set(words) and not iface_in and not iface_out:
            words += ["to", "any"]
        if proto != "any" and not dapp and not sapp:
            words += ["proto", proto]
    if comment:
        words += ["comment", f"'{comment}'"]
    return " ".join(words)


class UfwState(FactBase):
    """UFW's state: ``active`` (bool: its chains are loaded in the kernel, which is what
    ``ufw status`` tests), ``rules`` (added rules as ``"allow Nginx Full"``, even while
    inactive, from its rule files as ``ufw show added`` lists them) and ``defaults``
    (``{"incoming": "deny", ...}`` from /etc/default/ufw). ``None`` when ufw is not
    installed. The ufw CLI itself (a Python start-up, 50 ms of the host's CPU) runs only
    when there are route rules."""

    def requires_command(self, *args, **kwargs) -> str:
        """The command this fact needs on the host (without it: its default)."""
        return "ufw"

    def command(self) -> str:
        return (
            f"echo '{SECTION}loaded'; iptables -n -L ufw-user-input >/dev/null 2>&1"
            " && echo yes || echo no; "
            f"echo '{SECTION}tuples'; grep '^### tuple ###' /etc/ufw/user.rules; "
            f"echo '{SECTION}tuples6'; grep '^### tuple ###' /etc/ufw/user6.rules; "
            f"echo '{SECTION}ipv6'; test -d /proc/sys/net/ipv6"
            " && grep -i '^IPV6=' /etc/default/ufw; "
            "if grep -q '^### tuple ### route:' /etc/ufw/user.rules /etc/ufw/user6.rules; then"
            f" echo '{SECTION}added'; LANG=C ufw show added; fi; "
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
    Bring UFW to a whole policy from one read of its state (see UfwState): add the missing
    ``allow`` rules in their order, delete the ``absent`` ones, set the default for incoming
    traffic, then enable or disable UFW. Put the SSH rule first in ``allow``: it is added
    before UFW is enabled in the same run.

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
