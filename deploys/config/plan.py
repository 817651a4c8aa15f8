"""The apps a host carries: one (the top-level settings, as always) or several (``apps``),
the apps retired from it, and which of them this run acts on (``--data app=NAME``).

Each entry of ``apps`` is a dict of per-app settings; what it does not set it inherits
from the top level (a value it sets replaces the top-level one, ``env`` as a whole). The
host-wide settings (the firewall, apt, the CA bundle certbot trusts, the speed layer) and
the run's own (``command``, ``release``, ``log_lines``) are set once, at the top level.
"""

from __future__ import annotations

from dataclasses import dataclass

from deploys.config.datastores import redis_port
from deploys.config.settings import Settings, SettingsError, our_keys, settings_problems
from deploys.config.validation import NAME_RE

HOST_WIDE = (
    "firewall",
    "ssh_allow",
    "firewall_allow",
    "apt_cache_time",
    "acme_ca_bundle",
    "private_address",
    "rolling_batch",
    "fast_facts",
)
PER_RUN = ("command", "release", "log_lines", "process", "backup", "from_host")
PLAN_KEYS = ("apps", "retired_apps", "app")
MAX_APPS = 100


@dataclass(frozen=True)
class HostPlan:
    """The apps of one host and what this run does with them."""

    apps: tuple[Settings, ...]  # every app the host carries, in the order deployed
    retired: tuple[str, ...] = ()  # apps to stop and take offline (data kept)
    only: str | None = None  # --data app=NAME: the one app this run acts on

    @property
    def selected(self) -> tuple[Settings, ...]:
        """The apps this run deploys, verifies or rolls back."""
        return tuple(a for a in self.apps if self.only in (None, a.app_name))

    @property
    def host(self) -> Settings:
        """Where the host-wide settings are read: they are the top level's, in every app."""
        return self.apps[0]

    @property
    def https(self) -> bool:
        """Whether any app serves HTTPS (port 443 open, certbot installed)."""
        return any(a.https for a in self.apps)

    @property
    def default_server(self) -> bool:
        """Whether an app answers any host name; otherwise a catch-all closes unknown ones."""
        return any(a.default_server for a in self.apps)

    @property
    def uwsgi_from_source(self) -> bool:
        """Whether any app builds uWSGI (a compiler on the host)."""
        return any(a.uwsgi_from_source for a in self.apps)

    @property
    def apt_packages(self) -> list[str]:
        """The Debian packages the apps ask for (``apt_packages``), each once, in order."""
        return list(dict.fromkeys(p for a in self.apps for p in a.apt_packages))

    @property
    def postgresql(self) -> bool:
        """Whether any app has its database on this host."""
        return any(a.local_postgresql for a in self.apps)

    @property
    def redis(self) -> bool:
        """Whether any app has its Redis on this host (Debian's redis-server installed)."""
        return any(a.local_redis for a in self.apps)

    def single(self, entry_point: str) -> Settings:
        """The one app an entry point that acts on a single app works on."""
        if len(self.selected) != 1:
            names = ", ".join(a.app_name for a in self.apps)
            raise SettingsError(
                f"app: this host carries several apps ({names}): {entry_point} acts on one,"
                " pick it with --data app=NAME"
            )
        return self.selected[0]


def load_plan(data: dict, host_name: str = "", secrets: bool = True) -> HostPlan:
    """Validate a host's data into its HostPlan, or raise SettingsError naming every bad key
    (of an app: ``apps[i] (name): key: ...``) and every clash between apps."""
    top = our_keys(data)
    entries, retired = top.pop("apps", None), top.pop("retired_apps", [])
    only = top.pop("app", None)
    problems = []
    if entries is None:
        entries = [{}]
    elif not isinstance(entries, list) or not entries or len(entries) > MAX_APPS:
        problems.append(
            f"apps: a list of 1 to {MAX_APPS} apps, each a dict of its settings, e.g."
            " apps = [{'app_name': 'blog', 'app_src': 'blog', 'server_name': 'blog.example'}]"
        )
        entries = []
    apps = []
    for index, entry in enumerate(entries):
        label = f"apps[{index}]" + (f" ({entry['app_name']})" if "app_name" in entry else "")
        if not isinstance(entry, dict):
            problems.append(f"{label}: an app is a dict of its settings, not {entry!r}")
            continue
        misplaced = [k for k in entry if k in HOST_WIDE + PER_RUN + PLAN_KEYS]
        problems += [
            f"{label}: {key} is set for the whole host or run, not per app: set it at the top level"
            for key in misplaced
        ]
        own = {k: v for k, v in entry.items() if k not in misplaced}
        settings, found = settings_problems({**top, **own}, secrets)
        prefix = f"{label}: " if len(entries) > 1 or "apps" in data else ""
        problems += [prefix + problem for problem in found]
        if settings:
            apps.append(settings)
    if not isinstance(retired, list) or not all(
        isinstance(n, str) and NAME_RE.fullmatch(n) for n in retired
    ):
        problems.append(f"retired_apps: a list of app names, e.g. ['oldapp'] (given {retired!r})")
        retired = []
    if not problems:
        problems = _clashes(apps, retired, only, labelled="apps" in data)
    if problems:
        where = f" for host {host_name}" if host_name else ""
        raise SettingsError(f"invalid settings{where}:\n  " + "\n  ".join(problems))
    return HostPlan(tuple(apps), tuple(retired), only)


def _clashes(
    apps: list[Settings], retired: list[str], only: str | None, labelled: bool
) -> list[str]:
    """What two apps of one host may not share, and a retired or selected app that is not
    (or still is) among them."""
    labels = [f"apps[{i}] ({a.app_name})" if labelled else a.app_name for i, a in enumerate(apps)]
    problems = []
    for key, of in (("app_name", lambda a: [a.app_name]), ("app_user", lambda a: [a.user])):
        problems += _claimed_twice(apps, labels, key, of)
    problems += _claimed_twice(
        apps, labels, "server_name", lambda a: [n for n in a.server_name if n != "_"]
    )
    defaults = [a.app_name for a in apps if a.default_server]
    if len(defaults) > 1:
        problems.append(
            f"server_name: {', '.join(defaults)} are each the default server ('_'); at most"
            " one app may answer any host name: give the others their names"
        )
    names = [a.app_name for a in apps]
    for name in retired:
        if name in names:
            problems.append(
                f"retired_apps: {name} is also in apps: deploy it or retire it, not both"
            )
    ports: dict[int, str] = {}
    for app in (a for a in apps if a.redis):
        other = ports.setdefault(redis_port(app.app_name), app.app_name)
        if other != app.app_name:
            problems.append(
                f"app_name: {other} and {app.app_name} would share a Redis port on a database"
                " server: rename one"
            )
    if only is not None and only not in names:
        problems.append(f"app: {only!r} is not an app of this host ({', '.join(names)})")
    return problems


def _claimed_twice(apps: list[Settings], labels: list[str], key: str, values) -> list[str]:
    """A problem for each value of ``key`` that two apps claim."""
    owners: dict[str, list[str]] = {}
    for app, label in zip(apps, labels, strict=True):
        for value in values(app):
            owners.setdefault(value, []).append(label)
    return [
        f"{key}: {value!r} is claimed by {' and '.join(who)}; each app needs its own"
        for value, who in owners.items()
        if len(who) > 1
    ]
