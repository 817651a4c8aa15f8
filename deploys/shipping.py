"""What of the app's folder goes to the host, fingerprinted and packed as one archive.

Only the app is shipped: caches, VCS data and virtualenvs stay behind, and so do a
developer's local secrets and data (``.env``, ``.env.*`` and the top-level ``instance/``
folder, Flask's home for local config and databases), even when the app has no .gitignore.
"""

from __future__ import annotations

import hashlib
import io
import tarfile
from fnmatch import fnmatch
from pathlib import Path

SKIPPED_DIRS = frozenset({"__pycache__", ".git", ".pytest_cache", ".venv", "venv", ".mypy_cache"})
SKIPPED_FILES = ("*.pyc", "*.pyo", ".env", ".env.*")
SKIPPED_TOP_LEVEL = frozenset({"instance"})
FILE_MODE, EXEC_MODE, DIR_MODE = 0o640, 0o750, 0o750  # root:<app>: nobody else reads the code


def is_shipped(relative: Path) -> bool:
    """Whether a path inside the app folder (relative to it) is shipped."""
    parts = relative.parts
    if parts[0] in SKIPPED_TOP_LEVEL or SKIPPED_DIRS.intersection(parts[:-1]):
        return False
    return not any(fnmatch(parts[-1], pattern) for pattern in SKIPPED_FILES)


def shipped_files(folder: Path) -> list[Path]:
    """The files of the app folder that are shipped to hosts, sorted."""
    return sorted(p for p in folder.rglob("*") if p.is_file() and is_shipped(p.relative_to(folder)))


def folder_digest(folder: Path) -> str:
    """A fingerprint of the shipped files' paths and contents."""
    sha = hashlib.sha256()
    for path in shipped_files(folder):
        sha.update(str(path.relative_to(folder)).encode() + b"\0")
        sha.update(path.read_bytes() + b"\0")
    return sha.hexdigest()[:12]


def archive(folder: Path) -> bytes:
    """The shipped files as a gzipped tar: owned by root, files 640 (750 if executable),
    folders 750; files keep their modification times (nginx derives ETags from them)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz", format=tarfile.PAX_FORMAT) as tar:
        folders: set[Path] = set()
        for path in shipped_files(folder):
            relative = path.relative_to(folder)
            for parent in reversed(relative.parents[:-1]):
                if parent not in folders:
                    folders.add(parent)
                    tar.addfile(_entry(str(parent), tarfile.DIRTYPE, DIR_MODE))
            stat = path.stat()
            data = path.read_bytes()
            info = _entry(
                str(relative), tarfile.REGTYPE, EXEC_MODE if stat.st_mode & 0o100 else FILE_MODE
            )
            info.size, info.mtime = len(data), int(stat.st_mtime)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _entry(name: str, kind: bytes, mode: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.uid, info.gid, info.mtime = kind, mode, 0, 0, 0
    info.uname = info.gname = "root"
    return info
