"""Render the Jinja2 templates in templates/ to text, put texts on hosts."""

from __future__ import annotations

from functools import cache
from io import StringIO

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from pyinfra.operations import files

from deploys.config.settings import shipped

TEMPLATES = shipped("templates")
FILES = shipped("files")  # shipped to hosts as they are


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
