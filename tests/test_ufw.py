"""The UFW fact parses what real hosts print (captured from a Debian 12 test-bed host)."""

import shlex
from pathlib import Path

from deploys.config.plan import load_plan
from deploys.ops.ufw import parse_ufw, rule_key
from deploys.stack.firewall import firewall_rules

CAPTURED = Path(__file__).parent / "captured"


def parsed(name: str) -> dict:
    return parse_ufw((CAPTURED / name).read_text())


def test_fresh_install_is_inactive_with_no_rules():
    state = parsed("ufw-fresh-inactive.txt")
    assert state["active"] is False
    assert state["rules"] == []
    assert state["defaults"] == {"incoming": "deny", "outgoing": "allow", "routed": "deny"}


def test_rules_are_seen_while_inactive():
    state = parsed("ufw-inactive-ssh-only.txt")
    assert state["active"] is False
    assert state["rules"] == [rule_key("allow", "OpenSSH")]


def test_active_firewall_with_rules():
    state = parsed("ufw-active-rules.txt")
    assert state["active"] is True
    assert state["rules"] == [
        "allow OpenSSH",
        "allow 5000",
        "allow Nginx Full",
        "allow 8080/tcp",
        "allow 6000:6007/udp",
    ]
    assert state["defaults"] == {"incoming": "deny", "outgoing": "allow", "routed": "deny"}


def test_empty_output_parses_to_an_empty_state():
    assert parse_ufw("") == {"active": False, "rules": [], "defaults": {}}


def test_firewall_rules_put_ssh_first_and_open_only_port_80():
    unused = ["5000", "Nginx Full", "Nginx HTTPS"]
    assert firewall_rules(load_plan({})) == (["OpenSSH", "Nginx HTTP"], unused)
    allow, absent = firewall_rules(load_plan({"firewall_allow": ["5000", "8080/tcp"]}))
    assert (allow, absent) == (["OpenSSH", "Nginx HTTP", "5000", "8080/tcp"], unused[1:])


def test_firewall_opens_443_when_any_app_serves_https():
    apps = [
        {"app_name": "plain", "server_name": "plain.test"},
        {"app_name": "secure", "server_name": "secure.test", "https": True},
    ]
    plan = load_plan({"apps": apps, "acme_email": "ops@example.com"})
    assert firewall_rules(plan) == (
        ["OpenSSH", "Nginx Full"],
        ["5000", "Nginx HTTP", "Nginx HTTPS"],
    )


def policy_commands(fake, captured: str | None, *args, **kwargs) -> list[str]:
    """What ufw.policy runs from the state a real host printed (None: ufw not installed)."""
    from deploys.ops import ufw
    from tests.fakehost import commands

    fake({("UfwState", ""): parsed(captured) if captured else None})
    return commands(ufw.policy, *args, **kwargs)


def test_policy_on_a_fresh_host_allows_ssh_before_enabling(fake):
    assert policy_commands(fake, "ufw-fresh-inactive.txt", ["OpenSSH", "Nginx HTTP"], ["5000"]) == [
        "ufw allow OpenSSH",
        "ufw allow 'Nginx HTTP'",
        "ufw --force enable",
    ]


def test_policy_before_ufw_is_installed_plans_everything(fake):
    assert policy_commands(fake, None, ["OpenSSH"]) == [
        "ufw allow OpenSSH",
        "ufw default deny incoming",
        "ufw --force enable",
    ]


def test_policy_on_an_active_host_deletes_what_must_go_and_keeps_the_rest(fake):
    allow, absent = ["OpenSSH", "Nginx HTTP", "8080/tcp"], ["5000", "Nginx Full", "Nginx HTTPS"]
    assert policy_commands(fake, "ufw-active-rules.txt", allow, absent) == [
        "ufw allow 'Nginx HTTP'",
        "ufw delete allow 5000",
        "ufw delete allow 'Nginx Full'",
    ]


def test_policy_already_in_place_runs_nothing(fake):
    allow = ["OpenSSH", "5000", "Nginx Full", "8080/tcp", "6000:6007/udp"]
    assert policy_commands(fake, "ufw-active-rules.txt", allow) == []


def test_policy_refuses_an_unknown_default(fake):
    import pytest
    from pyinfra.api.exceptions import OperationValueError

    with pytest.raises(OperationValueError, match="is not allow, deny or reject"):
        policy_commands(fake, None, ["OpenSSH"], incoming="drop")


def test_behind_load_balancers_port_80_is_theirs_alone():
    allow, absent = firewall_rules(load_plan({}), ("10.0.0.2", "10.0.0.3"))
    assert allow == [
        "OpenSSH",
        "from 10.0.0.2 to any port 80 proto tcp",
        "from 10.0.0.3 to any port 80 proto tcp",
    ]
    assert "Nginx HTTP" in absent and "Nginx Full" in absent


def test_a_from_rule_is_several_words_a_profile_one(fake):
    from deploys.ops import ufw
    from tests.fakehost import commands

    fake({("UfwState", ""): parsed("ufw-active-rules.txt")})
    assert commands(
        ufw.policy, ["OpenSSH", "from 10.0.0.2 to any port 80 proto tcp"], ["Nginx Full"]
    ) == [
        "ufw allow from 10.0.0.2 to any port 80 proto tcp",
        "ufw delete allow 'Nginx Full'",
    ]


def test_rules_read_from_the_files_are_listed_as_ufw_show_added_lists_them():
    """Captured on one host: the fact's output and ``ufw show added`` after adding rules of
    every shape (apps, ports, ranges, addresses, IPv6, interfaces, out, log, comments,
    deny/limit/reject). The fact runs no ufw CLI for them."""
    listed = (CAPTURED / "ufw-many-rules-show-added.txt").read_text().splitlines()
    expected = [" ".join(shlex.split(line)[1:]) for line in listed if line.startswith("ufw ")]
    state = parsed("ufw-many-rules.txt")
    assert "added" not in (CAPTURED / "ufw-many-rules.txt").read_text()
    assert state["rules"] == expected
    assert len(expected) == 17


def test_with_route_rules_ufw_lists_the_rules_itself():
    state = parsed("ufw-route-rules.txt")
    assert "route allow in on eth0 out on eth1" in state["rules"]
    assert len(state["rules"]) == 18


def test_with_ipv6_off_the_ipv6_rules_are_not_listed():
    listed = (CAPTURED / "ufw-ipv6-off-show-added.txt").read_text().splitlines()
    expected = [" ".join(shlex.split(line)[1:]) for line in listed if line.startswith("ufw ")]
    state = parsed("ufw-ipv6-off.txt")
    assert state["rules"] == expected
    assert not any("2001:db8" in rule for rule in expected)
