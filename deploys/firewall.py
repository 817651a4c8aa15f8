"""UFW: SSH allowed before the firewall is enabled, then 'Nginx HTTP', deny by default."""

from pyinfra.api import deploy

from deploys import ufw
from deploys.settings import Settings

GUIDE_TEST_RULE = "5000"
WEB_RULE = "Nginx HTTP"  # port 80 only: nothing serves TLS on 443
UNUSED_RULES = (GUIDE_TEST_RULE, "Nginx Full", "Nginx HTTPS")


def firewall_rules(settings: Settings) -> tuple[list[str], list[str]]:
    """The rules UFW must allow (SSH first) and those it must not have: the guide's port 5000
    rule and the profiles that open 443, unless firewall_allow asks for them. The deploy
    applies them; the verifier checks them."""
    allow = [settings.ssh_allow, WEB_RULE, *settings.firewall_allow]
    absent = [rule for rule in UNUSED_RULES if rule not in allow]
    return allow, absent


@deploy("Firewall")
def configure_firewall(settings: Settings):
    """Allow SSH first, then HTTP and extra rules; drop the guide's port 5000 rule and 443;
    deny incoming by default; enable."""
    allow, absent = firewall_rules(settings)
    ufw.policy(
        name=f"ufw: allow {', '.join(allow)}"
        + "".join(f"; no {rule} rule" for rule in absent)
        + "; deny incoming; enabled",
        allow=allow,
        absent=absent,
    )
