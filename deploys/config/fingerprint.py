"""Fingerprints of what a release and its virtualenv are made of: the same inputs, the same
ids, on any machine."""

from __future__ import annotations

import hashlib

from deploys.config.settings import Settings


def digest(*parts: str) -> str:
    """A short stable fingerprint of some texts."""
    sha = hashlib.sha256()
    for part in parts:
        sha.update(part.encode())
        sha.update(b"\0")
    return sha.hexdigest()[:16]


def venv_packages(settings: Settings) -> list[str]:
    """Packages installed beside the requirements file: uWSGI and any extra pins."""
    uwsgi = settings.uwsgi_package
    if settings.uwsgi_from_source and uwsgi.startswith("pyuwsgi"):
        uwsgi = "uwsgi" + uwsgi.removeprefix("pyuwsgi").split(".post")[0]
    return [uwsgi, *settings.python_packages]


def venv_id(settings: Settings) -> str:
    """Fingerprint of everything that goes into the virtualenv: the resolved set (the
    hosts' Python in its header) when the run resolved it, else the requirements."""
    return digest(settings.resolved or settings.requirements_text, *venv_packages(settings))


def release_id(settings: Settings) -> str:
    """The release id: a fingerprint of the app's shipped files, its virtualenv, the shared
    paths linked into it and the static folders copied for nginx."""
    layout_parts = [*settings.shared_paths, "|", *settings.static.values()]
    extra = layout_parts if len(layout_parts) > 1 else []
    return digest(settings.app_files.digest(), venv_id(settings), *extra)
