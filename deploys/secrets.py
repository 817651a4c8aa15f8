"""Secrets for group data files: read from the environment of the machine you deploy from,
never written in the repository, and masked wherever Python shows a repr of them (pyinfra's
``--debug`` prints every group's data with ``%r`` while it loads the inventory)."""

from __future__ import annotations

import os


class Secret(str):
    """A string whose repr never shows its value."""

    def __repr__(self) -> str:
        return "'**********'"


def env_secret(name: str) -> Secret | None:
    """The environment variable ``name``, masked in reprs; None when it is not set (the run
    then stops before touching any host, naming the variable)."""
    value = os.environ.get(name)
    return None if value is None else Secret(value)
