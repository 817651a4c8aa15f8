"""A release on the host: ``/srv/<app>/releases/<id>/`` with the code in ``app/`` (the shared
paths linked into it from the data directory), nginx's copy of the static folders in
``static/`` and a ``venv`` link to its virtualenv; ``id`` fingerprints all of it
(config.fingerprint), so unchanged code and requirements create nothing."""

from __future__ import annotations

import shlex
from pathlib import Path

from pyinfra import host
from pyinfra.api import operation
from pyinfra.facts.files import Directory, File
from pyinfra.operations import files

from deploys.config.fingerprint import release_id, venv_id
from deploys.config.layout import Layout
from deploys.config.settings import Settings
from deploys.config.shipping import AppFiles
from deploys.ops.fileops import upload_command
from deploys.ops.render import put_text
from deploys.ops.typed import deploy
from deploys.release.gate import app_command_args, gate_command

UNPACKED_MARKER = ".unpacked"
RESOLVED_FILE = "requirements.resolved.txt"  # in a release: the packages its venv holds


@operation()
def release_unpacked(release: str, files_: AppFiles, group: str, shared: dict, static: list):
    """
    Unpack the app's archive into ``release``/app, owned root:``group`` with the archive's
    modes, link the shared paths into it and copy the static folders to ``release``/static
    for nginx (root:www-data), unless a complete release is there (releases are immutable:
    their id fingerprints all of it). An interrupted unpack is redone; the archive passes
    only through private folders.

    + release: the release folder
    + files_: what of the local app folder ships, packed only when needed
    + group: the app's group, the only one that may read the code
    + shared: shared path inside the app -> its place in the data directory
    + static: folders inside the app that nginx serves
    """
    if host.get_fact(File, path=f"{release}/{UNPACKED_MARKER}"):
        host.noop(f"{release} is unpacked")
        return
    folder = shlex.quote(release)
    app, static_copy = f"{folder}/app.new", f"{folder}/static.new"
    tarball = shlex.quote(f"{release}/app.tar.gz")
    yield (
        f"rm -rf {folder}/app {app} {folder}/static {static_copy}"
        f" && install -d -m 750 {app} && chmod 711 {folder}"
        f" && install -m 600 /dev/null {tarball}"
    )
    yield upload_command(files_.archive(), f"{release}/app.tar.gz")
    steps = [f"tar -xzf {tarball} -C {app} --no-same-owner && rm {tarball}"]
    steps += [f"mkdir -p {app}/{shlex.quote(str(Path(path).parent))}" for path in shared]
    # -R never follows a symlink it meets; the links to the app's data come after anyway
    steps.append(f"chgrp -R {shlex.quote(group)} {app} && chmod -R u=rwX,g=rX,o= {app}")
    steps += [f"ln -sn {shlex.quote(t)} {app}/{shlex.quote(p)}" for p, t in shared.items()]
    if static:
        steps.append(f"install -d -m 750 -g www-data {static_copy}")
        for path in static:
            steps.append(f"mkdir -p {static_copy}/{shlex.quote(path)}")
            steps.append(f"cp -R {app}/{shlex.quote(path)}/. {static_copy}/{shlex.quote(path)}/")
        steps.append(f"chgrp -R www-data {static_copy} && chmod -R u=rwX,g=rX,o= {static_copy}")
        steps.append(f"mv {static_copy} {folder}/static")
    steps.append(f"mv {app} {folder}/app && touch {folder}/{UNPACKED_MARKER}")
    yield " && ".join(steps)


@operation()
def shared_folders(layout: Layout, settings: Settings, release: str):
    """
    Create the shared folders missing from the data directory, as the app in its sandbox (a
    root command never writes into a folder the app owns).

    + layout, settings: where, and which shared paths are folders
    + release: the release whose environment the command runs in
    """
    missing = [
        p for p in settings.shared_folders if not host.get_fact(Directory, path=layout.shared(p))
    ]
    if not missing:
        host.noop("the shared folders exist")
        return
    paths = " ".join(shlex.quote(layout.shared(p)) for p in missing)
    yield (
        f"{gate_command(layout, 'run')} {app_command_args(layout, settings, release)}"
        f" --workdir=/ -- {shlex.quote(f'mkdir -p -m 750 -- {paths}')}"
    )


@deploy("App release")
def upload_release(settings: Settings):
    """Ship ``app_src`` as releases/<id>/app (unchanged code uploads nothing), link the
    release to its virtualenv and write the packages that holds beside it
    (``requirements.resolved.txt``). Returns the upload operation."""
    layout = Layout.of(settings)
    release = layout.release(release_id(settings))
    local_shared = settings.app_files.skipped_shared()
    upload = release_unpacked(
        name=f"Unpack {settings.app_src} into {release}/app"
        + (f" (shared, not uploaded: {', '.join(local_shared)})" if local_shared else ""),
        release=release,
        files_=settings.app_files,
        group=settings.user,
        shared={path: layout.shared(path) for path in settings.shared_paths},
        static=sorted(set(settings.static.values())),
    )
    files.link(
        name=f"{release}/venv links its virtualenv",
        path=f"{release}/venv",
        target=f"{layout.venvs}/{venv_id(settings)}",
    )
    if settings.resolved:  # for the operator: exactly what its venv holds
        path = f"{release}/{RESOLVED_FILE}"
        put_text(f"{path}: its packages", settings.resolved, path, user="root", group="root")
    return upload


@deploy("Shared folders")
def create_shared_folders(settings: Settings):
    """The shared folders in the data directory, before the new release's checks use them."""
    if settings.shared_folders:
        layout = Layout.of(settings)
        shared_folders(
            name=f"Shared folders in {layout.data}: {', '.join(settings.shared_folders)}",
            layout=layout,
            settings=settings,
            release=layout.release(release_id(settings)),
        )
