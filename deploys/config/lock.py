"""One resolved set of packages per app, the same on every host (docs/dependencies.md).

The controller resolves the app's dependencies once per run with uv, for the hosts' Python
version and machine, every package pinned with its hashes; the hosts install exactly that
set, hash-checked. A ``uv.lock`` is the source of truth when the app has one (exported as
it is; refused when it no longer matches pyproject.toml); otherwise the requirements are
resolved fresh (what was resolved goes into the release, for the operator to read).
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
from functools import cache
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

UV_LOCK = "uv.lock"
MACHINES = {"x86_64": "x86_64-unknown-linux-gnu", "aarch64": "aarch64-unknown-linux-gnu"}
# uv never fetches a Python of its own, nor reads a uv.toml of the operator's; it trusts the
# system's certificate authorities, as pip does (a TLS-intercepting proxy's among them)
UV_ENV = {"UV_PYTHON_DOWNLOADS": "never", "UV_NO_CONFIG": "1", "NO_COLOR": "1"}
UV_ENV |= {"UV_SYSTEM_CERTS": "1"}


def uv_binary() -> str:
    """The uv installed with flask-deploy (requirements.txt pins it)."""
    from uv import find_uv_bin  # here: only a deploy resolves

    return find_uv_bin()


def run_uv(args: list[str], cwd: Path | None = None, stdin: str = "", env=None) -> str:
    """uv's output for ``args``; ValueError with what uv said when it fails."""
    proc = subprocess.run(
        [uv_binary(), *args],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, **UV_ENV, **(env or {})},
        timeout=600,
    )
    if proc.returncode != 0:
        said = "\n".join(proc.stderr.strip().splitlines()[-12:])
        raise ValueError(f"uv {args[0]} {args[1] if len(args) > 1 else ''}: {said}")
    return proc.stdout


def locked_requirements(app: Path) -> str:
    """The packages the app's uv.lock pins for running it (no dev groups, not the app's own
    package: it runs from the release folder), with their hashes. ValueError when the lock
    does not match pyproject.toml, naming the fix."""
    stale = lock_mismatch(app)
    if stale:
        raise ValueError(
            f"{app / UV_LOCK} does not match pyproject.toml ({stale}): run `uv lock` in"
            f" {app} and ship the new uv.lock"
        )
    return _exported(app, (app / UV_LOCK).read_text())


@cache
def _exported(app: Path, _lock: str) -> str:
    """uv's export of the lock (cached by its text)."""
    return run_uv(
        [
            "export",
            "--frozen",
            "--no-dev",
            "--no-emit-project",
            "--no-header",
            "--no-annotate",
            "--format",
            "requirements-txt",
            "--quiet",
        ],
        cwd=app,
    )


def lock_mismatch(app: Path) -> str:
    """What of pyproject.toml's ``requires-python`` and ``[project].dependencies`` the
    uv.lock does not record as they are ("" when it records both): what ``uv lock --check``
    refuses, read without an interpreter of the app's Python."""
    import tomllib

    project = tomllib.loads((app / "pyproject.toml").read_text()).get("project", {})
    lock = tomllib.loads((app / UV_LOCK).read_text())
    wanted_python = project.get("requires-python")
    if wanted_python and SpecifierSet(wanted_python) != SpecifierSet(
        lock.get("requires-python", "")
    ):
        return f"requires-python {wanted_python!r}, the lock's {lock.get('requires-python')!r}"
    name = canonicalize_name(project.get("name", ""))
    root = [p for p in lock.get("package", []) if canonicalize_name(p.get("name", "")) == name]
    if not root:
        return f"the lock has no package {project.get('name')!r}"
    recorded = root[0].get("metadata", {}).get("requires-dist", [])
    locked = {_dist_key(entry) for entry in recorded if "extra ==" not in entry.get("marker", "")}
    try:
        declared = {_requirement_key(Requirement(d)) for d in project.get("dependencies", [])}
    except InvalidRequirement as err:
        return f"a dependency is not a requirement: {err}"
    if declared != locked:
        added = sorted(" ".join(filter(None, k)) for k in declared - locked)
        gone = sorted(" ".join(filter(None, k)) for k in locked - declared)
        return "; ".join(
            part
            for part in (
                f"not in the lock: {', '.join(added)}" if added else "",
                f"only in the lock: {', '.join(gone)}" if gone else "",
            )
            if part
        )
    return ""


def _requirement_key(req: Requirement) -> tuple[str, str, str, str]:
    """A requirement as the lock records it: name, specifier, extras, marker."""
    marker = str(req.marker) if req.marker else ""
    extras = ",".join(sorted(req.extras))
    return canonicalize_name(req.name), str(SpecifierSet(str(req.specifier))), extras, marker


def _dist_key(entry: dict) -> tuple[str, str, str, str]:
    """One ``requires-dist`` entry of uv.lock as _requirement_key makes them."""
    specifier = str(SpecifierSet(entry.get("specifier", "")))
    extras = ",".join(sorted(entry.get("extras", [])))
    marker = entry.get("marker", "")
    if marker:
        marker = str(Requirement(f"x; {marker}").marker)
    return canonicalize_name(entry.get("name", "")), specifier, extras, marker


@cache
def resolved(
    requirements: str,
    extras: tuple[str, ...],
    python: tuple[int, int],
    machine: str,
    index_env: tuple[tuple[str, str], ...] = (),
) -> str:
    """``requirements`` and ``extras`` (uWSGI, python_packages) resolved by uv for Python
    ``python`` on ``machine``: every package pinned, with the hashes of its files. A lock
    (every requirement pinned with its hashes: a uv.lock's export, a hashed requirements
    file) stays as it is, its hashes the ones the hosts check, and only ``extras`` are
    resolved beside it, within its pins. The hashes are left out when a requirement has none
    (a VCS or URL one: pins without hashes then, said in the header). ``index_env``:
    UV_INDEX_URL and UV_EXTRA_INDEX_URL, their credentials in uv's environment, never on its
    command line. Once per run for the same inputs. ValueError with uv's reason when they
    cannot be resolved."""
    version = f"{python[0]}.{python[1]}"
    header = f"# resolved by uv for Python {version} on {machine}: every host installs this set"
    target = (version, MACHINES.get(machine, f"{machine}-unknown-linux-gnu"), index_env)
    if hash_pinned(requirements):
        locked = pinned_versions(requirements)
        wanted = "".join(f"{extra}\n" for extra in extras)
        added = _compiled(wanted, *target, constraints=locked) if extras else ""
        beside = [b for b in _blocks(added) if next(iter(pinned_versions(b)), "") not in locked]
        text = requirements.rstrip("\n") + "\n" + "".join(beside)
        return f"{header}, hash-checked (the lock's hashes)\n{text}"
    text = _compiled(requirements + "".join(f"\n{extra}" for extra in extras) + "\n", *target)
    if hash_pinned(text):
        return f"{header}, hash-checked\n{text}"
    bare = "\n".join(block.split(" \\")[0] for block in _blocks(text))
    return f"{header} (some have no hashes: a VCS or URL requirement)\n{bare}\n"


def _compiled(
    wanted: str,
    version: str,
    platform: str,
    index_env: tuple[tuple[str, str], ...],
    constraints: dict[str, str] | None = None,
) -> str:
    """uv pip compile of ``wanted`` (within ``constraints``' pins), every file's hash
    generated; from uv's cache without asking the index when every package is pinned
    already."""
    args = ["pip", "compile", "-", "--python-version", version, "--python-platform", platform]
    args += ["--generate-hashes", "--no-header", "--no-annotate", "--quiet"]
    with tempfile.TemporaryDirectory() as folder:
        if constraints:
            pins = Path(folder) / "constraints.txt"
            pins.write_text("".join(f"{name}=={v}\n" for name, v in constraints.items()))
            args += ["-c", str(pins)]
        if fully_pinned(wanted):  # every package pinned already: no index asked
            try:
                text = run_uv([*args, "--offline"], stdin=wanted, env=dict(index_env))
            except ValueError:
                text = ""  # not all in the cache yet
            if text and pinned_versions(text) == pinned_versions(wanted):
                return text  # (else it added a package left open: ask the index)
        return run_uv(args, stdin=wanted, env=dict(index_env))


def _blocks(text: str) -> list[str]:
    """pip's requirements text as one block per requirement (its continuation lines with
    it), comments left out."""
    blocks: list[str] = []
    for line in text.splitlines(keepends=True):
        if re.match(r"^[A-Za-z0-9]", line):
            blocks.append(line)
        elif blocks and line.startswith((" ", "\t")) and not line.strip().startswith("#"):
            blocks[-1] += line
    return blocks


def hash_pinned(text: str) -> bool:
    """Whether ``text`` is a lock: every requirement pinned to one version, with hashes."""
    return fully_pinned(text) and all("--hash=" in line for line in _requirements_of(text))


def fully_pinned(text: str) -> bool:
    """Whether every requirement of ``text`` names one version (``name==1.2.3``)."""
    found = _requirements_of(text)
    exact = r"^[A-Za-z0-9][A-Za-z0-9._-]*(\[[^\]]*\])?\s*===?\s*[A-Za-z0-9.+!_-]+(\s|;|$)"
    return bool(found) and all(re.match(exact, line) for line in found)


def logical_lines(text: str) -> list[tuple[int, str]]:
    """pip's requirements text as pip reads it, each line with the number of its first
    physical line: a line ending in a backslash goes on with the next."""
    lines: list[tuple[int, str]] = []
    pending: tuple[int, str] | None = None
    for number, line in enumerate(text.splitlines(), 1):
        start, joined = pending or (number, "")
        joined += " " + line.rstrip().removesuffix("\\").strip()
        pending = (start, joined) if line.rstrip().endswith("\\") else None
        if pending is None:
            lines.append((start, joined.strip()))
    return lines + ([(pending[0], pending[1].strip())] if pending else [])


def _requirements_of(text: str) -> list[str]:
    """Each requirement of pip's requirements text, its continuation lines joined."""
    return [line for _, line in logical_lines(text) if re.match(r"^[A-Za-z0-9]", line)]


def pinned_versions(text: str) -> dict[str, str]:
    """``{name: version}`` of a resolved set (for what a deploy would change)."""
    found: dict[str, str] = {}
    for line in _requirements_of(text):
        match = re.match(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==([^\s;\\]+)", line)
        if match:
            found[canonicalize_name(match[1])] = match[2]
    return found
