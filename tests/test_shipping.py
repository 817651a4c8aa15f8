"""What of the app folder ships: .gitignore rules, the exclude setting, shared paths and the
files that never leave the developer's machine; the archive's owners and modes."""

import io
import os
import tarfile

import pytest

from deploys.config.shipping import AppFiles


def make(folder, *names: str, text: str = "x = 1\n") -> None:
    for name in names:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)


def shipped(folder, **rules) -> list[str]:
    return [p.relative_to(folder).as_posix() for p in AppFiles(folder, **rules).files()]


def test_digest_ignores_caches_and_follows_code(tmp_path):
    make(tmp_path, "wsgi.py")
    before = AppFiles(tmp_path).digest()
    (tmp_path / "__pycache__").mkdir()
    (tmp_path / "__pycache__" / "wsgi.cpython-311.pyc").write_bytes(b"\0")
    assert AppFiles(tmp_path).digest() == before
    (tmp_path / "wsgi.py").write_text("app = 2\n")
    assert AppFiles(tmp_path).digest() != before


def test_local_secrets_and_instance_data_are_never_shipped(tmp_path):
    make(
        tmp_path,
        "wsgi.py",
        "pkg/__init__.py",
        "pkg/instance/x.py",
        ".env",
        ".env.local",
        "pkg/.env",
        "instance/config.py",
        "instance/app.sqlite",
        "run.sh",
        ".venv/lib/x.py",
        ".git/HEAD",
    )
    assert shipped(tmp_path) == ["pkg/__init__.py", "pkg/instance/x.py", "run.sh", "wsgi.py"]


def test_gitignore_rules_apply_like_git(tmp_path):
    make(
        tmp_path,
        "pkg/__init__.py",
        "pkg/local.sqlite",
        "pkg/keep.sqlite",
        "build/out.js",
        "docs/notes.md",
        "docs/draft.md",
        "node_modules/x/index.js",
    )
    (tmp_path / ".gitignore").write_text("*.sqlite\n!keep.sqlite\n/build/\nnode_modules\n")
    (tmp_path / "docs/.gitignore").write_text("draft.md\n")
    assert shipped(tmp_path) == [
        ".gitignore",
        "docs/.gitignore",
        "docs/notes.md",
        "pkg/__init__.py",
        "pkg/keep.sqlite",
    ]


def test_exclude_removes_and_may_bring_back_what_git_ignores(tmp_path):
    make(tmp_path, "app.py", "static/dist/app.js", "tests/test_app.py", "notes.txt")
    (tmp_path / ".gitignore").write_text("static/dist/\n")
    assert shipped(tmp_path, exclude=("tests/", "*.txt", "!static/dist/")) == [
        ".gitignore",
        "app.py",
        "static/dist/app.js",
    ]


def test_exclude_never_brings_back_secrets(tmp_path):
    make(tmp_path, "app.py", ".env")
    assert shipped(tmp_path, exclude=("!.env",)) == ["app.py"]


def test_shared_paths_stay_behind_and_are_reported(tmp_path):
    make(tmp_path, "app.py", "uploads/a.png", "pkg/uploads/b.png", "settings.cfg")
    files = AppFiles(tmp_path, shared=("uploads", "settings.cfg", "missing"))
    assert [p.name for p in files.files()] == ["app.py", "b.png"]
    assert files.skipped_shared() == ["uploads", "settings.cfg"]


def test_archive_is_root_owned_and_private_to_the_app_group(tmp_path):
    make(tmp_path, "pkg/app.py")
    make(tmp_path, "run.sh", text="#!/bin/sh\n")
    (tmp_path / "run.sh").chmod(0o755)
    with tarfile.open(fileobj=io.BytesIO(AppFiles(tmp_path).archive())) as tar:
        entries = {m.name: (m.uid, m.gid, oct(m.mode), m.type) for m in tar.getmembers()}
    assert entries == {
        "pkg": (0, 0, "0o750", tarfile.DIRTYPE),
        "pkg/app.py": (0, 0, "0o640", tarfile.REGTYPE),
        "run.sh": (0, 0, "0o750", tarfile.REGTYPE),
    }


def test_a_link_that_would_ship_is_refused(tmp_path):
    secret = tmp_path / "elsewhere" / "id_rsa"
    make(tmp_path, "elsewhere/id_rsa", "app/app.py", "app/.env")
    (tmp_path / "app/static").mkdir()
    (tmp_path / "app/static/robots.txt").symlink_to(secret)
    with pytest.raises(ValueError, match=r"robots\.txt is a symbolic link: links are not shipped"):
        AppFiles(tmp_path / "app").files()
    (tmp_path / "app/static/env.txt").symlink_to("../.env")
    rules = {"exclude": ("static/robots.txt", "static/env.txt")}
    assert shipped(tmp_path / "app", **rules) == ["app.py"]


def test_a_linked_folder_is_refused_too(tmp_path):
    make(tmp_path, "app/app.py", "home/.ssh/id_rsa")
    os.symlink(tmp_path / "home", tmp_path / "app/assets")
    with pytest.raises(ValueError, match="assets is a symbolic link"):
        AppFiles(tmp_path / "app").files()


def test_git_info_exclude_and_src_instance_stay_behind(tmp_path):
    make(tmp_path, "app.py", "secret.json", "src/pkg/__init__.py", "src/instance/config.py")
    (tmp_path / ".git/info").mkdir(parents=True)
    (tmp_path / ".git/info/exclude").write_text("secret.json\n")
    assert shipped(tmp_path) == ["app.py", "src/pkg/__init__.py"]


def test_file_names_that_are_not_utf8_still_fingerprint(tmp_path):
    make(tmp_path, "app.py")
    (tmp_path / os.fsdecode(b"caf\xe9.txt")).write_text("x")
    assert len(AppFiles(tmp_path).digest()) == 12
