"""UFW, host-wide: SSH allowed before the firewall is enabled, then 'Nginx HTTP' (or 'Nginx
Full' when any app serves HTTPS), deny by default."""

from deploys.config.plan import HostPlan
from deploys.ops import ufw
from deploys.ops.typed import deploy

GUIDE_TEST_RULE = "5000"
HTTP_RULE, HTTPS_RULE = "Nginx HTTP", "Nginx Full"  # port 80; ports 80 and 443
WEB_RULES = (HTTP_RULE, HTTPS_RULE, "Nginx HTTPS")


def from_balancer(address: str) -> str:
    """The UFW rule that lets one load balancer reach this app server's nginx."""
    return f"from {address} to any port 80 proto tcp"


def firewall_rules(plan: HostPlan, balancers: tuple[str, ...] = ()) -> tuple[list[str], list[str]]:
    """The rules UFW must allow (SSH first) and those it must not have: the guide's port 5000
    rule and the other nginx profiles (443 stays closed unless an app serves HTTPS), unless
    firewall_allow asks for them. Behind load balancers (``balancers``: their addresses)
    port 80 is open to them alone. The deploy applies them; the verifier checks them."""
    web = [HTTPS_RULE if plan.https else HTTP_RULE] if not balancers else []
    allow = [plan.host.ssh_allow, *web, *map(from_balancer, balancers), *plan.host.firewall_allow]
    unused = (GUIDE_TEST_RULE, *(rule for rule in WEB_RULES if rule not in web))
    absent = [rule for rule in unused if rule not in allow]
    return allow, absent


@deploy("Firewall")
def configure_firewall(plan: HostPlan, balancers: tuple[str, ...] = ()):
    """Allow SSH first, then HTTP and extra rules; drop the guide's port 5000 rule and 443;
    deny incoming by default; enable."""
    allow, absent = firewall_rules(plan, balancers)
    ufw.policy(
        name=f"ufw: allow {', '.join(allow)}"
        + "".join(f"; no {rule} rule" for rule in absent)
        + "; deny incoming; enabled",
        allow=allow,
        absent=absent,
    )
