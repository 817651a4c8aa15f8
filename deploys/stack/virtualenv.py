"""The app's virtualenv: one per resolved set of packages (the same on every host: see
deploys/config/lock.py), built beside the live one and switched to only once complete, so
unchanged requirements cost nothing."""

from __future__ import annotations

import json
import shlex
from dataclasses import replace
from urllib.parse import unquote, urlsplit, urlunsplit

from pyinfra import host, state
from pyinfra.api import operation
from pyinfra.facts.files import File, FileContents
from pyinfra.operations import files

from deploys.config.dependencies import python_problem
from deploys.config.fingerprint import venv_id, venv_packages
from deploys.config.layout import UV_CACHE, Layout
from deploys.config.lock import pinned_versions, resolved
from deploys.config.plan import HostPlan
from deploys.config.settings import Settings
from deploys.ops.context import SettingsRefused, dry_run
from deploys.ops.facts import HostPython
from deploys.ops.fileops import secret_file
from deploys.ops.render import put_text
from deploys.ops.typed import deploy
from deploys.release.upload import RESOLVED_FILE
from deploys.stack.fleet import Fleet, reachable

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


def indexes_by_option(settings: Settings, credentials: bool = False) -> dict[str, list[str]]:
    """The index URLs under their pip option (``index-url``, ``extra-index-url``), in the
    settings' order; their credentials only with ``credentials``."""
    options: dict[str, list[str]] = {}
    for option, url in index_urls(settings):
        options.setdefault(option, []).append(url if credentials else without_credentials(url))
    return options


def pip_config(settings: Settings) -> str:
    """pip's settings for private indexes and TLS-intercepting proxies, as a pip.conf named by
    PIP_CONFIG_FILE. Index URLs go in without their credentials: pip copies index URLs onto
    the command line of the pip it starts to build a source package, where every user can
    read them (/proc); credentials go to pip_netrc instead."""
    lines = ["[global]", "disable-pip-version-check = true", "no-cache-dir = true"]
    options = indexes_by_option(settings)
    lines += [f"{option} = {' '.join(urls)}" for option, urls in options.items()]
    if settings.pip_cert:
        lines.append(f"cert = {settings.pip_cert}")
    return "\n".join(lines) + "\n"


def uv_config(settings: Settings) -> str:
    """uv's settings for private indexes, as a uv.toml named by UV_CONFIG_FILE: the index
    URLs without their credentials (those are in pip_netrc, which uv reads through NETRC)."""
    options = indexes_by_option(settings)
    main, extra = options.get("index-url", []), options.get("extra-index-url", [])
    lines = [f"index-url = {json.dumps(main[0])}"] if main else []
    lines += [f"extra-index-url = {json.dumps(extra)}"] if extra else []
    return "".join(f"{line}\n" for line in lines)


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
def built_venv(
    path: str, requirements: str, packages: list[str], exact: bool = False, uv: str = ""
):
    """
    Build a virtualenv at ``path`` unless a complete one is there; a half-built one (an
    interrupted run) is removed and built again.

    + path: the virtualenv's folder
    + requirements: a requirements file on the host
    + packages: further pip requirements
    + exact: the file is a resolved set: exactly its packages (no dependency pip would add),
      each checked against its hashes when it has them
    + uv: the uv that installs them (its bytecode compiled, as pip does); "": pip
    """
    # pip's environment is not the fact's: without it the read joins the run's other facts
    if host.get_fact(File, path=f"{path}/{COMPLETE_MARKER}", _env={}):
        host.noop(f"virtualenv {path} is complete")
        return
    venv = shlex.quote(path)
    wanted = f"{'--no-deps ' if exact else ''}-r {shlex.quote(requirements)} " + " ".join(
        shlex.quote(p) for p in packages
    )
    yield f"rm -rf {venv} && python3 -m venv {venv}"
    if uv:
        yield (
            f"{shlex.quote(uv)} pip install --quiet --python {venv}/bin/python"
            f" --compile-bytecode {'--require-hashes ' if exact else ''}{wanted}"
        )
    else:
        yield f"{venv}/bin/pip install --quiet {wanted}"
    yield f"touch {venv}/{COMPLETE_MARKER}"


def check_python(settings: Settings) -> None:
    """Refuse, before anything changes, an app whose ``requires-python`` or
    ``.python-version`` the host's Python does not meet (python_of)."""
    problem = python_problem(settings.app_path, python_of(host.name)[0])
    if problem:
        raise SettingsRefused(f"{settings.app_name}: {problem} ({host.name})")


_PYTHONS: dict[str, tuple[tuple[int, int], str]] = {}  # app server -> its Python, machine


def python_of(name: str) -> tuple[tuple[int, int], str]:
    """The Python (major, minor) and machine of the host ``name`` (HostPython: python3's,
    or when it has none yet, its release's), read once a run; SettingsRefused when
    unknown."""
    if name not in _PYTHONS:
        found = state.inventory.get_host(name).get_fact(HostPython)
        if found["python"] is None:
            raise SettingsRefused(
                f"{name}: the Python of {found['release'] or 'its system'} is unknown here:"
                " install python3 on it first (the venvs are made with it)"
            )
        _PYTHONS.setdefault(name, (found["python"], found["machine"]))
    return _PYTHONS[name]


def with_resolved(plan: HostPlan, fleet: Fleet) -> HostPlan:
    """The plan with each app's packages resolved (deploys/config/lock.py) for the Python of
    the app servers it goes to: this host's, or behind load balancers or around a database
    server (whose hosts must agree on a release) the app servers', which must then all have
    the same. Hosts that run no app keep the plan as it is."""
    if not (fleet.runs_apps or fleet.balancing):
        return plan
    names = [h.name for h in reachable(fleet.names)] if fleet.rolling else [host.name]
    pythons = {name: python_of(name) for name in names}
    if len(set(pythons.values())) > 1:
        found = ", ".join(f"{n}: {p[0]}.{p[1]} {m}" for n, (p, m) in pythons.items())
        raise SettingsRefused(
            f"the app servers have different Pythons ({found}): one release is one set of"
            " packages, built for one Python; give them the same Debian release"
        )
    if not pythons:
        return plan
    python, machine = next(iter(pythons.values()))
    apps = tuple(
        app.model_copy(update={"resolved": resolved_for(app, python, machine)}) for app in plan.apps
    )
    return replace(plan, apps=apps)


def resolved_for(settings: Settings, python: tuple[int, int], machine: str) -> str:
    """The app's resolved set (lock.resolved) for ``python`` on ``machine``; SettingsRefused
    with uv's reason when its requirements cannot be resolved."""
    names = {"index-url": "UV_INDEX_URL", "extra-index-url": "UV_EXTRA_INDEX_URL"}
    options = indexes_by_option(settings, credentials=True)
    env = tuple((names[option], " ".join(urls)) for option, urls in options.items())
    try:
        return resolved(
            settings.requirements_text, tuple(venv_packages(settings)), python, machine, env
        )
    except ValueError as err:
        raise SettingsRefused(f"{settings.app_name}: its requirements: {err}") from None


def package_changes(before: str, after: str) -> str:
    """What changes from the resolved set ``before`` to ``after``: "werkzeug 3.1.8 -> 3.1.9,
    + blinker 1.9.0, - six 1.16.0" ("" when nothing does)."""
    old, new = pinned_versions(before), pinned_versions(after)
    return ", ".join(
        f"{name} {old[name]} -> {new[name]}"
        if name in old and name in new
        else f"+ {name} {new[name]}"
        if name in new
        else f"- {name} {old[name]}"
        for name in sorted(old.keys() | new.keys())
        if old.get(name) != new.get(name)
    )


def show_package_changes(settings: Settings) -> None:
    """On a preview (``--dry``): which packages the new set changes from the live release's."""
    if not dry_run() or not settings.resolved:
        return
    before = host.get_fact(FileContents, path=f"{Layout.of(settings).current}/{RESOLVED_FILE}")
    if before is None:
        return
    changes = package_changes("\n".join(before), settings.resolved)
    if changes:
        print(f"[{host.name}] {settings.app_name}'s packages would change: {changes}")


@deploy("Virtualenv")
def build_virtualenv(settings: Settings):
    """Upload the requirements and build venvs/<id> if missing. Returns the build operation."""
    layout = Layout.of(settings)
    show_package_changes(settings)
    vid = venv_id(settings)
    path = f"{layout.venvs}/{vid}"
    requirements = f"{layout.venvs}/{vid}.requirements.txt"
    for pip_file, content in (
        (layout.pip_conf, pip_config(settings)),
        (layout.pip_netrc, pip_netrc(settings)),
        (layout.uv_toml, uv_config(settings)),
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
        settings.resolved or settings.requirements_text,
        requirements,
    )
    uv = settings.installer == "uv" and bool(settings.resolved)
    env = {"PIP_CONFIG_FILE": layout.pip_conf, "NETRC": layout.pip_netrc}
    if uv:
        env |= {"UV_CONFIG_FILE": layout.uv_toml, "UV_CACHE_DIR": UV_CACHE}
        env |= {"UV_PYTHON_DOWNLOADS": "never", "UV_SYSTEM_CERTS": "1"}  # as pip: the host's CAs
        env |= {"SSL_CERT_FILE": settings.pip_cert} if settings.pip_cert else {}
    build = built_venv(
        name=f"Build virtualenv {path}" + (" (uv)" if uv else ""),
        path=path,
        requirements=requirements,
        packages=[] if settings.resolved else venv_packages(settings),
        exact=bool(settings.resolved),
        uv=f"{uv_home()}/bin/uv" if uv else "",
        _env=env,
    )
    return build


def uv_home() -> str:
    """Where the hosts' uv lives: the controller's version (requirements.txt pins it)."""
    from importlib.metadata import version

    return f"/usr/local/lib/flask-deploy/uv-{version('uv')}"


@deploy("uv")
def install_uv(plan: HostPlan) -> None:
    """uv, the controller's version, in a virtualenv of its own under
    /usr/local/lib/flask-deploy (once per host; its wheel checked against its hashes), for
    the apps whose ``installer`` is uv."""
    if not any(app.installer == "uv" for app in plan.apps):
        return
    home = uv_home()
    python, machine = python_of(host.name)
    pins = resolved(f"uv=={home.rsplit('-', 1)[1]}\n", (), python, machine)
    put_text(f"uv's requirements {home}.requirements.txt", pins, f"{home}.requirements.txt")
    files.directory(name=f"Folder {UV_CACHE} (root only)", path=UV_CACHE, user="root", mode="700")
    built_venv(
        name=f"uv in {home}",
        path=home,
        requirements=f"{home}.requirements.txt",
        packages=[],
        exact=True,
        _env={},
    )
