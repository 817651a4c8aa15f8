"""Secrets for group data files: read from the environment of the machine you deploy from,
never written in the repository, and masked wherever Python shows a repr of them (pyinfra's
``--debug`` prints every group's data with ``%r`` while it loads the inventory)."""

from __future__ import annotations

import os


class Secret(str):
    """A string whose repr never shows its value."""

    def __repr__(self) -> str:
        return "'**********'"


class MissingSecret:
    """What env_secret gives for a variable that is not set: deploy.py stops before touching
    any host, naming it; the entry points that write no secrets (verify.py, logs.py, run.py,
    rollback.py) run without it."""

    def __init__(self, variable: str):
        self.variable = variable

    def __repr__(self) -> str:
        return f"<${self.variable} not set>"


def env_secret(name: str) -> Secret | MissingSecret:
    """The environment variable ``name``, masked in reprs; a MissingSecret when it is not
    set."""
    value = os.environ.get(name)
    return MissingSecret(name) if value is None else Secret(value)


def is_unset(value) -> bool:
    """Whether a setting's value is missing: None, or an env_secret that is not set."""
    return value is None or isinstance(value, MissingSecret)
