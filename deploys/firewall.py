"""UFW: SSH allowed before the firewall is enabled, then 'Nginx Full', deny by default."""

from pyinfra.api import deploy

from deploys import ufw
from deploys.settings import Settings

GUIDE_TEST_RULE = "5000"


@deploy("Firewall")
def configure_firewall(settings: Settings):
    """Allow SSH first, then HTTP/HTTPS and extra rules; drop the guide's port 5000 rule;
    deny incoming by default; enable."""
    ufw.rule(name=f"ufw allows {settings.ssh_allow} (before enabling)", spec=settings.ssh_allow)
    for spec in ["Nginx Full", *settings.firewall_allow]:
        ufw.rule(name=f"ufw allows {spec}", spec=spec)
    if GUIDE_TEST_RULE not in settings.firewall_allow:
        ufw.rule(name="ufw has no port 5000 rule", spec=GUIDE_TEST_RULE, present=False)
    ufw.default(name="ufw denies incoming by default", direction="incoming", policy="deny")
    ufw.enabled(name="ufw is enabled", active=True)
