"""The app's virtualenv: one per requirements fingerprint, built beside the live one and
switched to only once complete, so unchanged requirements cost nothing."""

from __future__ import annotations

import shlex
from urllib.parse import unquote, urlsplit, urlunsplit

from pyinfra import host, logger
from pyinfra.api import operation
from pyinfra.facts.files import File

from deploys.config.dependencies import python_problem
from deploys.config.fingerprint import venv_id, venv_packages
from deploys.config.layout import Layout
from deploys.config.settings import Settings
from deploys.ops.context import SettingsRefused
from deploys.ops.facts import HostPython
from deploys.ops.fileops import secret_file
from deploys.ops.render import put_text
from deploys.ops.typed import deploy

COMPLETE_MARKER = ".complete"


def index_urls(settings: Settings) -> list[tuple[str, str]]:
    """(pip option, URL) for each index setting, credentials included."""
    urls = [("index-url", settings.pip_index_url)] if settings.pip_index_url else []
    urls += [("extra-index-url", url) for url in settings.pip_extra_index_url]
    return [(option, url.get_secret_value()) for option, url in urls]


def without_credentials(url: str) -> str:
    """The URL with any ``user:password@`` removed."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


def pip_config(settings: Settings) -> str:
    """pip's settings for private indexes and TLS-intercepting proxies, as a pip.conf named by
    PIP_CONFIG_FILE. Index URLs go in without their credentials: pip copies index URLs onto
    the command line of the pip it starts to build a source package, where every user can
    read them (/proc); credentials go to pip_netrc instead."""
    lines = ["[global]", "disable-pip-version-check = true", "no-cache-dir = true"]
    options: dict[str, list[str]] = {}
    for option, url in index_urls(settings):
        options.setdefault(option, []).append(without_credentials(url))
    lines += [f"{option} = {' '.join(urls)}" for option, urls in options.items()]
    if settings.pip_cert:
        lines.append(f"cert = {settings.pip_cert}")
    return "\n".join(lines) + "\n"


def pip_netrc(settings: Settings) -> str:
    """A netrc with the index credentials (root only; named by NETRC, which pip honours and
    passes on to the pip it starts for builds through the environment, not the command line)."""
    entries = []
    for _option, url in index_urls(settings):
        parts = urlsplit(url)
        if parts.username is not None:
            login, password = unquote(parts.username), unquote(parts.password or "")
            entries.append(f"machine {parts.hostname} login {login} password {password}")
    return "".join(f"{entry}\n" for entry in entries)


@operation()
def built_venv(path: str, requirements: str, packages: list[str]):
    """
    Build a virtualenv at ``path`` unless a complete one is there; a half-built one (an
    interrupted run) is removed and built again.

    + path: the virtualenv's folder
    + requirements: a requirements file on the host
    + packages: further pip requirements
    """
    # pip's environment is not the fact's: without it the read joins the run's other facts
    if host.get_fact(File, path=f"{path}/{COMPLETE_MARKER}", _env={}):
        host.noop(f"virtualenv {path} is complete")
        return
    venv = shlex.quote(path)
    yield f"rm -rf {venv} && python3 -m venv {venv}"
    yield (
        f"{venv}/bin/pip install --quiet -r {shlex.quote(requirements)} "
        + " ".join(shlex.quote(p) for p in packages)
    )
    yield f"touch {venv}/{COMPLETE_MARKER}"


def check_python(settings: Settings) -> None:
    """Refuse, before anything changes, an app whose ``requires-python`` or
    ``.python-version`` the host's Python does not meet (HostPython: python3's version, or
    when the host has none yet, its release's)."""
    found = host.get_fact(HostPython)
    if found["python"] is None:
        host.log(
            f"the Python of {found['release'] or 'this system'} is unknown here: the app's"
            " requires-python and .python-version are not checked",
            log_func=logger.warning,
        )
        return
    problem = python_problem(settings.app_path, found["python"])
    if problem:
        raise SettingsRefused(f"{settings.app_name}: {problem} ({host.name}, {found['release']})")


@deploy("Virtualenv")
def build_virtualenv(settings: Settings):
    """Upload the requirements and build venvs/<id> if missing. Returns the build operation."""
    layout = Layout.of(settings)
    vid = venv_id(settings)
    path = f"{layout.venvs}/{vid}"
    requirements = f"{layout.venvs}/{vid}.requirements.txt"
    for pip_file, content in (
        (layout.pip_conf, pip_config(settings)),
        (layout.pip_netrc, pip_netrc(settings)),
    ):
        secret_file(
            name=f"pip settings {pip_file}",
            path=pip_file,
            content=content,
            user="root",
            group="root",
            mode="600",
        )
    put_text(
        f"Requirements {requirements}",
        settings.requirements_text,
        requirements,
    )
    build = built_venv(
        name=f"Build virtualenv {path}",
        path=path,
        requirements=requirements,
        packages=venv_packages(settings),
        _env={"PIP_CONFIG_FILE": layout.pip_conf, "NETRC": layout.pip_netrc},
    )
    return build
