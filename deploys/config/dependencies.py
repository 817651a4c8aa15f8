"""The app's Python dependencies, read from its folder: what its ``uv.lock`` pins, a
requirements file, or when it has neither, the ``[project].dependencies`` of its
``pyproject.toml`` (PEP 621).

Either way they become one requirements text: uploaded to the host, fingerprinted into the
virtualenv's id (so a code change that leaves them alone reuses the virtualenv).
"""

from __future__ import annotations

import re
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement

from deploys.config.lock import UV_LOCK, locked_requirements, logical_lines

DEFAULT_REQUIREMENTS = "requirements.txt"
PROJECT_FILES = ("pyproject.toml", "setup.py", "setup.cfg")
URL_PREFIXES = ("http://", "https://", "git+", "hg+", "svn+", "bzr+", "file:")


def requirements_text(app: Path, setting: str | None) -> str:
    """The requirements text for the app folder ``app``: the file ``setting`` names, else
    what its uv.lock pins (lock.locked_requirements), else requirements.txt, else
    pyproject.toml's dependencies. ValueError says what to fix."""
    if setting is not None:
        return _requirements_file(app, setting)
    if (app / UV_LOCK).is_file() and (app / "pyproject.toml").is_file():
        return locked_requirements(app)
    if (app / DEFAULT_REQUIREMENTS).is_file():
        return _requirements_file(app, DEFAULT_REQUIREMENTS)
    if (app / "pyproject.toml").is_file():
        return _project_dependencies(app / "pyproject.toml")
    raise ValueError(
        f"{app} has neither {DEFAULT_REQUIREMENTS} nor a pyproject.toml: add one listing the"
        " app's dependencies, or set requirements to the requirements file's name"
    )


def _requirements_file(app: Path, name: str) -> str:
    path = app / name
    if Path(name).name in PROJECT_FILES:
        raise ValueError(
            f"{name} is not a requirements file: leave requirements unset and the"
            " [project].dependencies of pyproject.toml are used when the app has no"
            f" {DEFAULT_REQUIREMENTS}"
        )
    if not path.is_file():
        raise ValueError(f"{path} does not exist")
    text = path.read_text()
    for number, line in logical_lines(text):
        problem = _requirement_problem(line)
        if problem:
            raise ValueError(f"{path} line {number} is not a pip requirement: {problem}")
    return text


def _requirement_problem(line: str) -> str | None:
    """Why one line of a requirements file is not one pip accepts (None when it is): a
    requirement's own options (``--hash=...``) after it are pip's."""
    text = re.split(r"\s+--", line.split(" #", 1)[0].strip())[0].strip()
    if text.startswith(("-r", "--requirement", "-c", "--constraint")):
        return f"{text!r} names another file, which is not uploaded: merge it into this one"
    if text.startswith(("-e", "--editable")):
        text = text.split(None, 1)[-1] if " " in text else text.removeprefix("-e")
    if not text or text.startswith(("#", "-")) or text.startswith(URL_PREFIXES):
        return None  # blank, comment, an option (--index-url ...) or a URL
    if text.startswith((".", "/")):
        return f"{text!r}: a local path does not exist on the host; publish it or vendor it"
    try:
        Requirement(text)
    except InvalidRequirement as err:
        return f"{text!r} ({err})"
    return None


def _project_dependencies(pyproject: Path) -> str:
    import tomllib  # here: only apps without a requirements file need it, and it is slow to load

    try:
        data = tomllib.loads(pyproject.read_text())
    except tomllib.TOMLDecodeError as err:
        raise ValueError(f"{pyproject} is not valid TOML: {err}") from None
    project = data.get("project")
    if not isinstance(project, dict):
        raise ValueError(
            f"{pyproject} has no [project] table: list the dependencies there (PEP 621) or in"
            f" a {DEFAULT_REQUIREMENTS} (Poetry 1: poetry export -o {DEFAULT_REQUIREMENTS})"
        )
    if "dependencies" in project.get("dynamic", []):
        raise ValueError(
            f"{pyproject} declares its dependencies dynamic: write them to a"
            f" {DEFAULT_REQUIREMENTS} instead"
        )
    dependencies = project.get("dependencies", [])
    for dependency in dependencies:
        try:
            Requirement(dependency)
        except InvalidRequirement as err:
            raise ValueError(f"{pyproject}: dependency {dependency!r}: {err}") from None
    header = f"# [project].dependencies of {pyproject.name}\n"
    return header + "".join(f"{dependency}\n" for dependency in dependencies)


def python_problem(app: Path, python: tuple[int, int]) -> str | None:
    """Why the app cannot run on the host's ``python`` (major, minor): its pyproject.toml's
    ``requires-python`` excludes it, or its ``.python-version`` names another; None when
    neither does (or the app states neither)."""
    from packaging.specifiers import InvalidSpecifier, SpecifierSet

    have = f"{python[0]}.{python[1]}"
    required = _project_table(app / "pyproject.toml").get("requires-python")
    if isinstance(required, str):
        try:
            allowed = SpecifierSet(required)
        except InvalidSpecifier as err:
            return f"pyproject.toml: requires-python {required!r} is no version specifier ({err})"
        if not allowed.contains(f"{have}.0", prereleases=True) and not allowed.contains(
            f"{have}.99", prereleases=True
        ):
            return (
                f"pyproject.toml says requires-python = {required!r} and the host's Python is"
                f" {have}: deploy to a host whose python3 it allows (Debian 12 has 3.11, Debian"
                " 13 has 3.13), or widen requires-python if the app runs on"
                f" {have}"
            )
    pinned = _python_version_file(app / ".python-version")
    if pinned and pinned != python:
        return (
            f".python-version names {pinned[0]}.{pinned[1]} and the host's Python is {have}:"
            f" deploy to a host with python3 {pinned[0]}.{pinned[1]}, or set .python-version to"
            f" {have} once the app runs on it (or exclude the file)"
        )
    return None


def _project_table(pyproject: Path) -> dict:
    """pyproject.toml's [project] table ({} when there is none or the file is not TOML)."""
    import tomllib

    try:
        project = tomllib.loads(pyproject.read_text()).get("project")
    except (OSError, tomllib.TOMLDecodeError):
        return {}
    return project if isinstance(project, dict) else {}


def _python_version_file(path: Path) -> tuple[int, int] | None:
    """The major and minor version a ``.python-version`` names (its first line such as
    ``3.12``, ``3.12.4`` or ``cpython-3.12``), None without one."""
    try:
        lines = [line.strip() for line in path.read_text().splitlines()]
    except OSError:
        return None
    first = next((line for line in lines if line and not line.startswith("#")), "")
    found = re.search(r"(\d+)\.(\d+)", first)
    return (int(found[1]), int(found[2])) if found else None
