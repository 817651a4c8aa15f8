"""The app's virtualenv: one per requirements fingerprint, built beside the live one and
switched to only once complete, so unchanged requirements cost nothing."""

from __future__ import annotations

import shlex

from pyinfra import host
from pyinfra.api import deploy, operation
from pyinfra.facts.files import File

from deploys.layout import Layout
from deploys.render import digest, put_text
from deploys.settings import Settings

COMPLETE_MARKER = ".complete"


def venv_packages(settings: Settings) -> list[str]:
    """Packages installed beside the requirements file: uWSGI and any extra pins."""
    uwsgi = settings.uwsgi_package
    if settings.uwsgi_from_source and uwsgi.startswith("pyuwsgi"):
        uwsgi = "uwsgi" + uwsgi.removeprefix("pyuwsgi").split(".post")[0]
    return [uwsgi, *settings.python_packages]


def venv_id(settings: Settings) -> str:
    """Fingerprint of everything that goes into the virtualenv."""
    requirements = (settings.app_path / settings.requirements).read_text()
    return digest(requirements, *venv_packages(settings))


def pip_environment(settings: Settings) -> dict[str, str]:
    """pip's environment for private indexes and TLS-intercepting proxies."""
    env = {"PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_NO_CACHE_DIR": "1"}
    if settings.pip_index_url:
        env["PIP_INDEX_URL"] = settings.pip_index_url
    if settings.pip_extra_index_url:
        env["PIP_EXTRA_INDEX_URL"] = " ".join(settings.pip_extra_index_url)
    if settings.pip_cert:
        env["PIP_CERT"] = settings.pip_cert
    return env


@operation()
def built_venv(path: str, requirements: str, packages: list[str]):
    """
    Build a virtualenv at ``path`` unless a complete one is there; a half-built one (an
    interrupted run) is removed and built again.

    + path: the virtualenv's folder
    + requirements: a requirements file on the host
    + packages: further pip requirements
    """
    if host.get_fact(File, path=f"{path}/{COMPLETE_MARKER}"):
        host.noop(f"virtualenv {path} is complete")
        return
    venv = shlex.quote(path)
    yield f"rm -rf {venv} && python3 -m venv {venv}"
    yield (
        f"{venv}/bin/pip install --quiet -r {shlex.quote(requirements)} "
        + " ".join(shlex.quote(p) for p in packages)
    )
    yield f"touch {venv}/{COMPLETE_MARKER}"


@deploy("Virtualenv")
def build_virtualenv(settings: Settings):
    """Upload the requirements and build venvs/<id> if missing. Returns the build operation."""
    layout = Layout.of(settings)
    vid = venv_id(settings)
    path = f"{layout.venvs}/{vid}"
    requirements = f"{layout.venvs}/{vid}.requirements.txt"
    put_text(
        f"Requirements {requirements}",
        (settings.app_path / settings.requirements).read_text(),
        requirements,
    )
    build = built_venv(
        name=f"Build virtualenv {path}",
        path=path,
        requirements=requirements,
        packages=venv_packages(settings),
        _env=pip_environment(settings),
    )
    return build
