"""System packages, in one apt transaction, waiting for a busy apt lock instead of failing."""

from pyinfra.api import deploy
from pyinfra.operations import apt

from deploys.render import put_text
from deploys.settings import Settings

BASE_PACKAGES = ["nginx", "python3-venv", "ufw"]
BUILD_PACKAGES = ["build-essential", "python3-dev", "libpcre3-dev"]  # PCRE: uWSGI routing
APT_LOCK_WAIT = "/etc/apt/apt.conf.d/80-lock-timeout"


HTTPS_PACKAGES = ["certbot", "openssl"]


def wanted_packages(settings: Settings) -> list[str]:
    """Debian packages the stack needs; a compiler only to build uWSGI from source, certbot
    only for HTTPS."""
    return (
        BASE_PACKAGES
        + (BUILD_PACKAGES if settings.uwsgi_from_source else [])
        + (HTTPS_PACKAGES if settings.https else [])
    )


@deploy("System packages")
def install_packages(settings: Settings):
    """Install nginx, python3-venv and ufw; refresh apt's index at most every apt_cache_time."""
    put_text(
        "apt waits up to 10 minutes for a lock held by another process",
        'DPkg::Lock::Timeout "600";\n',
        APT_LOCK_WAIT,
    )
    apt.packages(
        name="Install " + ", ".join(wanted_packages(settings)),
        packages=wanted_packages(settings),
        update=True,
        cache_time=settings.apt_cache_time,
        no_recommends=True,
    )
