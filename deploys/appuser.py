"""The app's system user and the directories of the host layout."""

from pyinfra import host
from pyinfra.api import deploy
from pyinfra.facts.files import Directory
from pyinfra.facts.server import Users
from pyinfra.operations import files, server

from deploys.layout import Layout
from deploys.settings import Settings, SettingsError


def foreign_claims(settings: Settings) -> list[str]:
    """What on the host already carries the app's names without being this app's: a user
    (ours has its home in /srv/<app>), or /etc/<app> or /var/lib/<app> of another owner
    (a package's, say: the deploy would hand it to the app). Empty when nothing is."""
    layout = Layout.of(settings)
    user = host.get_fact(Users).get(settings.user)
    ours = bool(user) and user.get("home") == layout.root
    problems = []
    if user and not ours:
        problems.append(
            f"app_user: the user {settings.user!r} exists on {host.name} and is not this"
            f" app's (home {user.get('home')}): pick another app_name or app_user"
        )
    for path, field in ((layout.etc, "group"), (layout.data, "user")):
        found = host.get_fact(Directory, path=path)
        if found and (not ours or found[field] != settings.user):
            problems.append(
                f"app_name: {path} exists on {host.name} and belongs to {found[field]}, not"
                f" to this app: pick another app_name (if an earlier install of this app left"
                " it, remove it or hand it to the app's user)"
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
        raise SettingsError(f"{settings.app_name} cannot be deployed:\n  " + "\n  ".join(problems))
    server.user(
        name=f"System user {settings.user}",
        user=settings.user,
        system=True,
        home=layout.root,
        create_home=False,
        ensure_home=False,
        shell="/usr/sbin/nologin",
        groups=[],
    )
    modes = {layout.root: "711", layout.releases: "711", layout.venvs: "750", layout.etc: "750"}
    for path, mode in modes.items():
        files.directory(
            name=f"Directory {path}", path=path, user="root", group=settings.user, mode=mode
        )
    files.directory(
        name=f"Directory {layout.state}", path=layout.state, user="root", group="root", mode="700"
    )
