"""One resolved set per app (deploys/config/lock.py), on the controller with the pinned uv:
a uv.lock is exported as it pins (dev groups and the app itself left out), refused when it no
longer matches pyproject.toml; requirements are resolved for the hosts' Python with the
hashes of every file, the same text for the same inputs."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from deploys.config.lock import lock_mismatch, locked_requirements, pinned_versions, resolved
from deploys.config.settings import SettingsError, load_settings
from deploys.stack.virtualenv import package_changes

LOCKED = Path(__file__).resolve().parent.parent / "examples" / "locked"


def locked_copy(tmp_path: Path) -> Path:
    app = tmp_path / "locked"
    shutil.copytree(LOCKED, app)
    return app


def test_a_uv_lock_is_the_source_of_truth():
    settings = load_settings({"app_src": str(LOCKED), "app_module": "locked:create_app()"})
    pins = pinned_versions(settings.requirements_text)
    assert pins["flask"] == "3.0.3"  # what the lock says, not the newest
    assert "pytest" not in pins and "locked" not in pins  # no dev group, not the app itself
    assert "--hash=sha256:" in settings.requirements_text


@pytest.mark.parametrize(
    ("edit", "said"),
    [
        (('"flask>=3.0,<3.1",', '"flask>=3.1",'), "not in the lock: flask >=3.1"),
        (('"flask>=3.0,<3.1",', '"flask>=3.0,<3.1", "requests",'), "not in the lock: requests"),
        (('requires-python = ">=3.11"', 'requires-python = ">=3.12"'), "requires-python '>=3.12'"),
    ],
)
def test_a_lock_out_of_date_is_refused_naming_the_fix(tmp_path, edit, said):
    app = locked_copy(tmp_path)
    pyproject = app / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace(*edit))
    assert said in lock_mismatch(app)
    with pytest.raises(SettingsError) as refused:
        load_settings({"app_src": str(app), "app_module": "locked:create_app()"})
    message = str(refused.value)
    assert "requirements:" in message and "does not match pyproject.toml" in message
    assert f"run `uv lock` in {app}" in message


def test_a_lock_matching_its_project_passes_whatever_the_spelling(tmp_path):
    app = locked_copy(tmp_path)
    pyproject = app / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace('"flask>=3.0,<3.1"', '"Flask <3.1, >=3.0"'))
    assert lock_mismatch(app) == ""


def test_requirements_are_resolved_for_the_hosts_python_pinned_and_hashed():
    text = resolved("flask==3.1.3\n", ("pyuwsgi==2.0.30.post1",), (3, 11), "x86_64")
    pins = pinned_versions(text)
    assert pins["flask"] == "3.1.3" and pins["pyuwsgi"] == "2.0.30.post1"
    assert {"werkzeug", "jinja2", "click", "itsdangerous", "blinker", "markupsafe"} <= set(pins)
    assert text.startswith("# resolved by uv for Python 3.11 on x86_64") and "hash-checked" in text
    requirements = re.sub(r"\\\n\s*", " ", text).splitlines()[1:]
    assert all("--hash=sha256:" in line for line in requirements if line.strip())
    assert resolved("flask==3.1.3\n", ("pyuwsgi==2.0.30.post1",), (3, 11), "x86_64") is text


def test_requirements_that_cannot_be_resolved_say_why():
    with pytest.raises(ValueError, match="uv pip"):
        resolved("flask==0.0.0.404\n", (), (3, 11), "x86_64")


def test_a_preview_names_the_packages_that_would_change():
    before = "# header\nflask==3.1.2 \\\n    --hash=sha256:aa\nsix==1.16.0\nwerkzeug==3.1.8\n"
    after = "flask==3.1.3 \\\n    --hash=sha256:bb\nblinker==1.9.0\nwerkzeug==3.1.8\n"
    assert package_changes(before, after) == "+ blinker 1.9.0, flask 3.1.2 -> 3.1.3, - six 1.16.0"
    assert package_changes(after, after) == ""


def test_dependencies_lock_refuses_an_app_without_one(tmp_path):
    notes = Path(__file__).resolve().parent.parent / "examples" / "notes"
    with pytest.raises(SettingsError, match=r"dependencies_lock: .*notes has no lock: add a uv"):
        load_settings({"app_src": str(notes), "dependencies_lock": True})
    locked = {"app_src": str(LOCKED), "app_module": "locked:create_app()"}
    assert load_settings({**locked, "dependencies_lock": True}).dependencies_lock
    (tmp_path / "wsgi.py").write_text("app = 1\n")
    (tmp_path / "requirements.txt").write_text(
        resolved("flask==3.1.3\n", (), (3, 11), "x86_64")  # pinned and hashed: a lock
    )
    assert load_settings({"app_src": str(tmp_path), "dependencies_lock": True}).dependencies_lock


def test_a_locks_hashes_are_the_ones_the_hosts_check(tmp_path):
    """A uv.lock's export stays as it is (a hash changed in the lock is the one checked:
    a host then refuses the file); uWSGI and python_packages resolved beside it, within its
    pins; one that clashes with the lock is refused."""
    app = locked_copy(tmp_path)
    lock = app / "uv.lock"
    real = re.search(
        r'name = "flask"\nversion = "3.0.3"\n.*?hash = "sha256:([0-9a-f]{64})"',
        lock.read_text(),
        re.S,
    )[1]
    lock.write_text(lock.read_text().replace(real, "0" * 64))
    text = resolved(locked_requirements(app), ("pyuwsgi==2.0.30.post1",), (3, 11), "x86_64")
    assert "(the lock's hashes)" in text.splitlines()[0]
    assert f"--hash=sha256:{'0' * 64}" in text and real not in text
    assert pinned_versions(text)["pyuwsgi"] == "2.0.30.post1"
    assert "--hash=sha256:" in text.split("pyuwsgi==")[1]
    with pytest.raises(ValueError, match="uv pip"):
        resolved(locked_requirements(app), ("flask==3.1.3",), (3, 11), "x86_64")
