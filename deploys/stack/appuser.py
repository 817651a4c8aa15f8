"""The app's system user and the directories of the host layout."""

import shlex

from pyinfra import host
from pyinfra.api import FactBase
from pyinfra.facts.files import Directory
from pyinfra.facts.server import Groups
from pyinfra.operations import files, server

from deploys.config.layout import Layout
from deploys.config.settings import Settings
from deploys.ops.context import SettingsRefused
from deploys.ops.facts import UnitStatus
from deploys.ops.typed import deploy
from deploys.speed import read_together

NO_LOGIN = "/usr/sbin/nologin"


class PathsPresent(FactBase):
    """Which of ``paths`` exist on the host, of any type (a dangling link too)."""

    def command(self, paths: tuple[str, ...]) -> str:
        quoted = " ".join(shlex.quote(p) for p in paths)
        return f'for p in {quoted}; do if [ -e "$p" ] || [ -L "$p" ]; then echo "$p"; fi; done'

    default = list

    def process(self, output):
        return [line.strip() for line in output if line.strip()]


class Account(FactBase):
    """A user's entry in the user database: ``{"uid": 998, "home": "/srv/app", "shell":
    "/usr/sbin/nologin"}``, None when there is no such user. (pyinfra's Users reads every
    user's groups and last login: a fifth of a second on every run.)"""

    def command(self, user: str) -> str:
        return f"getent passwd {shlex.quote(user)} || true"

    @staticmethod
    def default():
        return None

    def process(self, output):
        for line in output:
            fields = line.split(":")
            if len(fields) == 7 and fields[2].isdigit():
                return {"uid": int(fields[2]), "home": fields[5], "shell": fields[6]}
        return None


def foreign_claims(settings: Settings) -> list[str]:
    """What on the host already carries the app's names without being this app's (ours:
    its user, with its home in /srv/<app>): a user or group of that name, a path the app's
    folders or units would take (/etc, /srv, /var/lib, /run, a unit of a package). The
    deploy would hand them to the app. Empty when nothing is."""
    layout = Layout.of(settings)
    user, etc, data = read_together(  # the usual case, a host it was deployed to, in one go
        host,
        (Account, {"user": settings.user}),
        (Directory, {"path": layout.etc}),
        (Directory, {"path": layout.data}),
    )
    if user:
        if user.get("home") != layout.root:
            return [
                f"app_user: the user {settings.user!r} exists on {host.name} and is not this"
                f" app's (home {user.get('home')}): pick another app_name or app_user"
            ]
        return [
            f"app_name: {path} exists on {host.name} and belongs to {found[field]}, not to"
            " this app: remove it or hand it to the app's user"
            for path, field, found in ((layout.etc, "group", etc), (layout.data, "user", data))
            if found and found[field] != settings.user
        ]
    taken = [layout.etc, layout.root, layout.data, layout.run_dir, layout.unit, layout.socket_unit]
    problems = [
        f"app_name: {path} exists on {host.name} and is not this app's: pick another app_name"
        for path in host.get_fact(PathsPresent, paths=tuple(taken))
    ]
    problems += [
        f"app_name: systemd has a unit {unit} on {host.name} (a package's?): pick another app_name"
        for unit in layout.unit_names
        if host.get_fact(UnitStatus, unit=unit, along=layout.units_read_together).get(
            "LoadState", "not-found"
        )
        != "not-found"
    ]
    if settings.user in host.get_fact(Groups):
        problems.append(
            f"app_user: the group {settings.user!r} exists on {host.name}: the app would run"
            " with its rights; pick another app_name or app_user"
        )
    return problems


@deploy("App user and directories")
def create_app_user(settings: Settings):
    """A system user with no login shell and no other groups (refused when the user or the
    app's folders exist for something else); root-owned directories that only
    the app's group may read (code, virtualenvs) and a root-only state folder. The root and
    releases folders are 711: nginx's user passes through to a release's static copy, no
    one else lists them."""
    layout = Layout.of(settings)
    problems = foreign_claims(settings)
    if problems:
        raise SettingsRefused(
            f"{settings.app_name} cannot be deployed:\n  " + "\n  ".join(problems)
        )
    account = host.get_fact(Account, user=settings.user) or {}
    if (account.get("home"), account.get("shell")) != (layout.root, NO_LOGIN):
        _system_user(settings, layout)  # what server.user compares for an existing user
    modes = {layout.root: "711", layout.releases: "711", layout.venvs: "750", layout.etc: "750"}
    for path, mode in modes.items():
        files.directory(
            name=f"Directory {path}", path=path, user="root", group=settings.user, mode=mode
        )
    files.directory(
        name=f"Directory {layout.state}", path=layout.state, user="root", group="root", mode="700"
    )


def _system_user(settings: Settings, layout: Layout) -> None:
    """Create the app's user, or put back its home and shell (server.user reads every
    account on the host: only called when the app's is missing or wrong)."""
    server.user(
        name=f"System user {settings.user}",
        user=settings.user,
        system=True,
        home=layout.root,
        create_home=False,
        ensure_home=False,
        shell=NO_LOGIN,
        groups=[],
    )
