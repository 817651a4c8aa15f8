"""The app's system user and the directories of the host layout."""

from pyinfra.api import deploy
from pyinfra.operations import files, server

from deploys.layout import Layout
from deploys.settings import Settings


@deploy("App user and directories")
def create_app_user(settings: Settings):
    """A system user with no login shell and no other groups; root-owned directories that only
    the app's group may read (code, virtualenvs) and a root-only state folder."""
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
    for path in (layout.root, layout.releases, layout.venvs, layout.etc):
        files.directory(
            name=f"Directory {path}", path=path, user="root", group=settings.user, mode="750"
        )
    files.directory(
        name=f"Directory {layout.state}", path=layout.state, user="root", group="root", mode="700"
    )
