"""Operation tests, facts in and commands out (pyinfra's own style): a stand-in for the few
parts of pyinfra's host that our operations use, and a way to run an operation's generator.
The ``fake`` fixture (conftest.py) puts one where the operations look for ``host``."""

from __future__ import annotations

OPERATION_MODULES = (
    "deploys.release",
    "deploys.output",
    "deploys.fileops",
    "deploys.stamps",
    "deploys.units",
    "deploys.https",
    "deploys.ufw",
    "deploys.virtualenv",
    "deploys.appuser",
    "deploys.retire",
    "deploys.balancer",
    "deploys.nginx",
    "deploys.nginxchange",
    "deploys.lock",
    "deploys.checks",
)


class FakeHost:
    """The parts of pyinfra's host the operations use: facts from a dict keyed by (fact
    class name, path argument), no-op messages, the global arguments of the current op."""

    name = "web1"

    def __init__(self, facts: dict):
        self.facts = facts
        self.noops: list[str] = []
        self.logs: list[str] = []
        self.current_op_global_arguments = {"_sudo": True, "_temp_dir": "/home/d/.cache/fd"}

    def get_fact(self, fact, **kwargs):
        return self.facts.get((fact.__name__, kwargs.get("path")), fact.default())

    def noop(self, message: str) -> None:
        self.noops.append(message)

    def log(self, message: str, log_func=None) -> None:
        self.logs.append(message)

    def get_temp_filename(self, *args, **kwargs) -> str:
        return "/home/d/.cache/fd/upload"


def commands(op, *args, **kwargs) -> list:
    """What an operation yields for these arguments (its commands, in order)."""
    return list(op._inner(*args, **kwargs))
