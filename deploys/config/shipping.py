"""What of the app's folder goes to the host, fingerprinted and packed as one archive.

Only the app is shipped: what its ``.gitignore`` files ignore (read with pathspec, git's
rules), what the ``exclude`` setting names and the ``shared_paths`` (they live in the data
directory) stay behind. So do caches, VCS data, virtualenvs and a developer's local secrets
and data (``.env``, ``.env.*`` and the top-level ``instance/`` folder, Flask's home for local
config and databases), even when the app has no .gitignore.
"""

from __future__ import annotations

import hashlib
import io
import os
import stat
import tarfile
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path, PurePosixPath

from pathspec import GitIgnoreSpec

ALWAYS_SKIPPED = (  # gitignore patterns that win over everything else
    "__pycache__/",
    ".git/",
    ".hg/",
    ".pytest_cache/",
    ".mypy_cache/",
    ".ruff_cache/",
    ".venv/",
    "venv/",
    "*.pyc",
    "*.pyo",
    ".env",
    ".env.*",
    "/instance/",
    "/src/instance/",  # Flask's instance folder of a package in src/
)
FILE_MODE, EXEC_MODE, DIR_MODE = 0o640, 0o750, 0o750  # root:<app>: nobody else reads the code


@dataclass(frozen=True)
class AppFiles:
    """The app folder and the rules for what of it ships."""

    folder: Path
    exclude: tuple[str, ...] = ()
    shared: tuple[str, ...] = ()

    @cached_property
    def _gitignores(self) -> list[tuple[PurePosixPath, GitIgnoreSpec]]:
        """Each folder's .gitignore rules, shallowest folder first; the top folder's also
        hold .git/info/exclude when the app folder is a git repository."""
        specs: dict[PurePosixPath, list[str]] = {}
        for gitignore in self.folder.rglob(".gitignore"):
            relative = PurePosixPath(gitignore.parent.relative_to(self.folder).as_posix())
            specs[relative] = gitignore.read_text(errors="replace").splitlines()
        local = self.folder / ".git/info/exclude"
        if local.is_file():
            top = PurePosixPath(".")
            specs[top] = local.read_text(errors="replace").splitlines() + specs.get(top, [])
        ordered = sorted(specs.items(), key=lambda item: (len(item[0].parts), str(item[0])))
        return [(folder, GitIgnoreSpec.from_lines(lines)) for folder, lines in ordered]

    @cached_property
    def _deploy_rules(self) -> GitIgnoreSpec:
        """The deploy's own rules, applied after every .gitignore: ``exclude`` (whose ``!``
        patterns may ship what git ignores, e.g. built assets), then shared paths and
        ALWAYS_SKIPPED, which nothing re-includes."""
        shared = (f"/{path}" for path in self.shared)
        return GitIgnoreSpec.from_lines([*self.exclude, *shared, *ALWAYS_SKIPPED])

    def is_shipped(self, relative: str, is_dir: bool = False) -> bool:
        """Whether a path inside the app folder (POSIX, relative to it) is shipped: as in
        git, the deepest .gitignore with a matching rule decides; then the deploy's rules."""
        path = PurePosixPath(relative)
        suffix = "/" if is_dir else ""
        ignored = False
        for folder, spec in self._gitignores:
            if folder == PurePosixPath(".") or folder in path.parents:
                decision = spec.check_file(path.relative_to(folder).as_posix() + suffix).include
                ignored = ignored if decision is None else decision
        decision = self._deploy_rules.check_file(path.as_posix() + suffix).include
        return not (ignored if decision is None else decision)

    def files(self) -> list[Path]:
        """The shipped files, sorted; ignored folders are not even entered. A symbolic link
        that would ship is an error (ValueError): it could pull in anything from the
        developer's machine (keys, .env, /proc/self/environ) under an innocent name."""
        found = []
        for root, dirs, names in os.walk(self.folder):
            here = Path(root).relative_to(self.folder)
            dirs[:] = [d for d in dirs if self.is_shipped((here / d).as_posix(), is_dir=True)]
            links = [d for d in dirs if Path(root, d).is_symlink()]
            found += [Path(root, n) for n in names if self.is_shipped((here / n).as_posix())]
            found += [Path(root, d) for d in links]
        for path in found:
            if path.is_symlink():
                raise ValueError(
                    f"{path} is a symbolic link: links are not shipped (one could pull in any"
                    " file of this machine); put the real file there, or add the link to"
                    " exclude"
                )
        return sorted(p for p in found if stat.S_ISREG(p.lstat().st_mode))

    def skipped_shared(self) -> list[str]:
        """Shared paths that exist in the app folder (and so are not uploaded)."""
        return [path for path in self.shared if (self.folder / path).exists()]

    def digest(self) -> str:
        """A fingerprint of the shipped files' paths and contents."""
        sha = hashlib.sha256()
        for path in self.files():
            sha.update(os.fsencode(path.relative_to(self.folder)) + b"\0")
            sha.update(_read(path) + b"\0")
        return sha.hexdigest()[:12]

    def archive(self) -> bytes:
        """The shipped files as a gzipped tar: owned by root, files 640 (750 if executable),
        folders 750; files keep their modification times (nginx derives ETags from them)."""
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w:gz", format=tarfile.PAX_FORMAT) as tar:
            folders: set[Path] = set()
            for path in self.files():
                relative = path.relative_to(self.folder)
                for parent in reversed(relative.parents[:-1]):
                    if parent not in folders:
                        folders.add(parent)
                        tar.addfile(_entry(str(parent), tarfile.DIRTYPE, DIR_MODE))
                info_stat = path.lstat()
                data = _read(path)
                mode = EXEC_MODE if info_stat.st_mode & 0o100 else FILE_MODE
                info = _entry(str(relative), tarfile.REGTYPE, mode)
                info.size, info.mtime = len(data), int(info_stat.st_mtime)
                tar.addfile(info, io.BytesIO(data))
        return buffer.getvalue()


def _read(path: Path) -> bytes:
    """A file's bytes, never through a symbolic link swapped in after it was listed."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    with os.fdopen(fd, "rb") as file:
        return file.read()


def _entry(name: str, kind: bytes, mode: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.uid, info.gid, info.mtime = kind, mode, 0, 0, 0
    info.uname = info.gname = "root"
    return info
