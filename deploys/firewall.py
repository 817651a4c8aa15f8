"""UFW: SSH allowed before the firewall is enabled, then 'Nginx Full', deny by default."""

from pyinfra.api import deploy

from deploys import ufw
from deploys.settings import Settings

GUIDE_TEST_RULE = "5000"


def firewall_rules(settings: Settings) -> tuple[list[str], list[str]]:
    """The rules UFW must allow (SSH first) and those it must not have: the guide's port 5000
    rule, unless firewall_allow asks for it. The deploy applies them; the verifier checks them."""
    allow = [settings.ssh_allow, "Nginx Full", *settings.firewall_allow]
    absent = [] if GUIDE_TEST_RULE in settings.firewall_allow else [GUIDE_TEST_RULE]
    return allow, absent


@deploy("Firewall")
def configure_firewall(settings: Settings):
    """Allow SSH first, then HTTP/HTTPS and extra rules; drop the guide's port 5000 rule;
    deny incoming by default; enable."""
    allow, absent = firewall_rules(settings)
    ufw.policy(
        name=f"ufw: allow {', '.join(allow)}"
        + "".join(f"; no {rule} rule" for rule in absent)
        + "; deny incoming; enabled",
        allow=allow,
        absent=absent,
    )
