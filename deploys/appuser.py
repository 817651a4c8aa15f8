"""The app's system user and the directories of the host layout."""

from pyinfra.api import deploy
from pyinfra.operations import files, server

from deploys.layout import Layout
from deploys.settings import Settings


@deploy("App user and directories")
def create_app_user(settings: Settings):
    """A system user with no login shell and no other groups; root-owned directories that only
    the app's group may read (code, virtualenvs) and a root-only state folder. The root and
    releases folders are 711: nginx's user passes through to a release's static copy, no
    one else lists them."""
    layout = Layout.of(settings)
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
