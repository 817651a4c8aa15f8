"""What every entry point does first on each host: validate settings, then decide on sudo."""

from pyinfra import host
from pyinfra.facts.server import User

from deploys.settings import Settings, load_settings


def prepare_host() -> Settings:
    """Validate this host's settings (before anything else touches it) and use sudo unless
    the SSH user is root."""
    settings = load_settings(host.data.dict(), host.name)
    if host.get_fact(User) != "root":
        host.data._sudo = True  # the normal case: a sudo user over SSH
    return settings
