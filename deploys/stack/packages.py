"""System packages, in one apt transaction, waiting for a busy apt lock instead of failing."""

from pyinfra.operations import apt

from deploys.config.plan import HostPlan
from deploys.ops.render import put_text
from deploys.ops.typed import deploy

BASE_PACKAGES = ["nginx", "python3-venv", "ufw"]
BUILD_PACKAGES = ["build-essential", "python3-dev", "libpcre3-dev"]  # PCRE: uWSGI routing
APT_LOCK_WAIT = "/etc/apt/apt.conf.d/80-lock-timeout"


HTTPS_PACKAGES = ["certbot", "openssl"]


def wanted_packages(plan: HostPlan) -> list[str]:
    """Debian packages the host's apps need; a compiler only to build uWSGI from source,
    certbot only for HTTPS."""
    return (
        BASE_PACKAGES
        + (BUILD_PACKAGES if plan.uwsgi_from_source else [])
        + (HTTPS_PACKAGES if plan.https else [])
    )


@deploy("System packages")
def install_packages(plan: HostPlan):
    """Install nginx, python3-venv and ufw; refresh apt's index at most every apt_cache_time."""
    put_text(
        "apt waits up to 10 minutes for a lock held by another process",
        'DPkg::Lock::Timeout "600";\n',
        APT_LOCK_WAIT,
    )
    apt.packages(
        name="Install " + ", ".join(wanted_packages(plan)),
        packages=wanted_packages(plan),
        update=True,
        cache_time=plan.host.apt_cache_time,
        no_recommends=True,
    )
