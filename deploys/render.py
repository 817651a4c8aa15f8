"""Render the Jinja2 templates in templates/ to text, put texts on hosts, fingerprint texts."""

from __future__ import annotations

import hashlib
from functools import cache
from io import StringIO
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from pyinfra.operations import files

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
FILES = TEMPLATES.parent / "files"  # shipped to hosts as they are


@cache
def _environment() -> Environment:
    return Environment(
        loader=FileSystemLoader(TEMPLATES),
        undefined=StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def render(name: str, **context) -> str:
    """Render templates/<name> with the given context; a missing variable is an error."""
    return _environment().get_template(name).render(**context)


def put_text(name: str, text: str, dest: str, mode: str = "644", **ownership):
    """Put ``text`` at ``dest`` (whose folder must exist by then), showing a diff under --diff.

    pyinfra's files.put shows no diff for a file whose folder does not exist yet when it
    also has to create that folder; our folders come from earlier operations or packages.
    """
    return files.put(
        name=name, src=StringIO(text), dest=dest, mode=mode, create_remote_dir=False, **ownership
    )


def digest(*parts: str) -> str:
    """A short stable fingerprint of some texts."""
    sha = hashlib.sha256()
    for part in parts:
        sha.update(part.encode())
        sha.update(b"\0")
    return sha.hexdigest()[:16]
