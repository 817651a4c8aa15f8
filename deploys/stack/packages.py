"""System packages, in one apt transaction, waiting for a busy apt lock instead of failing."""

from pyinfra.operations import apt

from deploys.config.plan import HostPlan
from deploys.ops.render import put_text
from deploys.ops.typed import deploy
from deploys.stack.postgresql import server_packages
from deploys.stack.redis import mask_shared_redis, stop_shared_redis

BASE_PACKAGES = ["nginx", "python3-venv", "ufw"]
BUILD_PACKAGES = ["build-essential", "python3-dev", "libpcre3-dev"]  # PCRE: uWSGI routing
APT_LOCK_WAIT = "/etc/apt/apt.conf.d/80-lock-timeout"


HTTPS_PACKAGES = ["certbot", "openssl"]
REDIS_PACKAGES = ["redis-server"]
CLIENT_PACKAGES = ["postgresql-client"]  # psql on an app server of a database server
COPY_PACKAGES = ["rsync", "openssh-client"]  # backups pushed to the backup servers


def wanted_packages(plan: HostPlan, role: str = "") -> list[str]:
    """Debian packages the host's apps need; a compiler only to build uWSGI from source,
    certbot only for HTTPS, redis-server for the apps' own Redis (PostgreSQL: see
    postgresql.server_packages), rsync to copy backups off the host, and the apps'
    ``apt_packages``. A database server (``role`` "database") runs no app: UFW and the
    databases only, openssl that seals the apps' passwords (deploys/ops/sealed.py), python3
    for their backups (and rsync to copy them); a backup server (``role`` "backups"): UFW,
    rsync, and python3 for rrsync and the taking in."""
    copying = COPY_PACKAGES if any(a.backup_copy_to for a in plan.apps) else []
    if role == "database":
        backing_up = ["python3", *copying] if any(a.backups for a in plan.apps) else []
        return ["ufw", "openssl", *(REDIS_PACKAGES if plan.redis else []), *backing_up]
    if role == "backups":
        return ["ufw", "rsync", "python3"]
    ours = (
        BASE_PACKAGES
        + (BUILD_PACKAGES if plan.uwsgi_from_source else [])
        + (HTTPS_PACKAGES if plan.https else [])
        + (REDIS_PACKAGES if plan.redis else [])
        + (CLIENT_PACKAGES if any(a.postgresql and a.database_server for a in plan.apps) else [])
        + copying
    )
    return list(dict.fromkeys([*ours, *plan.apt_packages]))


@deploy("System packages")
def install_packages(plan: HostPlan, role: str = ""):
    """Install nginx, python3-venv and ufw, and what the apps ask for; refresh apt's index at
    most every apt_cache_time. The Redis package's own shared instance is masked first and
    never runs."""
    put_text(
        "apt waits up to 10 minutes for a lock held by another process",
        'DPkg::Lock::Timeout "600";\n',
        APT_LOCK_WAIT,
    )
    if plan.redis:
        mask_shared_redis()
    packages = wanted_packages(plan, role) + server_packages(plan)
    apt.packages(
        name="Install " + ", ".join(packages),
        packages=packages,
        update=True,
        cache_time=plan.host.apt_cache_time,
        no_recommends=True,
    )
    if plan.redis:
        stop_shared_redis()
