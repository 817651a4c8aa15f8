"""App code: a release directory per content fingerprint, and the ``current`` symlink."""

from pyinfra.api import deploy
from pyinfra.operations import files

from deploys.converge import switch_link
from deploys.layout import Layout
from deploys.render import SKIPPED_NAMES, SKIPPED_SUFFIXES, folder_digest
from deploys.settings import Settings


def release_id(settings: Settings) -> str:
    """The release id: a fingerprint of the app's shipped files."""
    return folder_digest(settings.app_path)


@deploy("App release")
def upload_release(settings: Settings):
    """Sync ``app_src`` into releases/<id> (unchanged code uploads nothing), then switch
    ``current`` to it atomically. Returns the upload operation."""
    layout = Layout.of(settings)
    release = f"{layout.releases}/{release_id(settings)}"
    upload = files.sync(
        name=f"Upload {settings.app_src} to {release}",
        src=str(settings.app_path),
        dest=release,
        user="root",
        group="root",
        mode="644",
        dir_mode="755",
        delete=True,
        exclude=[f"*{suffix}" for suffix in SKIPPED_SUFFIXES],
        exclude_dir=sorted(SKIPPED_NAMES),
    )
    switch_link(name=f"Point {layout.current} at {release}", path=layout.current, target=release)
    return upload
