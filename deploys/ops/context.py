"""What every entry point does first on each host: validate settings, apply the speed layer
(deploys/speed), then decide on sudo; and the turns that order a host's operations."""

from __future__ import annotations

import sys
from contextlib import contextmanager
from pathlib import Path

from pyinfra import host, state
from pyinfra.api.arguments import all_argument_meta
from pyinfra.api.exceptions import PyinfraError
from pyinfra.facts.server import Home, User
from pyinfra.operations import files

import deploys
from deploys import speed
from deploys.config.plan import HostPlan, load_plan
from deploys.config.settings import SettingsError
from deploys.ops.typed import deploy

UPLOAD_DIR = ".cache/flask-deploy"  # in the SSH user's home
UPLOADS_NOT_PRIVATE = (  # pyinfra before 3.7: files.put ignores the upload folder
    "this pyinfra cannot upload through a private folder (the _temp_dir argument): uploads"
    " would pass through predictable names in /tmp; install the pinned pyinfra"
    " (requirements.txt)"
)


class SettingsRefused(SettingsError, PyinfraError):
    """Settings that cannot be deployed, found during a pyinfra run: pyinfra shows the message
    (which names each bad key and the fix) as its own error, without a traceback."""


def prepare_host(secrets: bool = True) -> HostPlan:
    """Validate this host's settings (before anything else touches it), use sudo unless the
    SSH user is root, and upload through a private folder (see private_upload_dir). The
    speed layer applies unless ``fast_facts`` is off or pyinfra is a version it was not
    tested against (deploys/speed/__init__.py).
    ``secrets=False``: this entry point writes no secrets, so unset ``env`` values are fine."""
    refused = stale_package(state.current_exec_filename, Path(deploys.__file__).parent)
    if refused or "_temp_dir" not in all_argument_meta:
        raise PyinfraError(refused or UPLOADS_NOT_PRIVATE)
    try:
        plan = load_plan(host.data.dict(), host.name, secrets=secrets)
    except SettingsError as error:
        raise SettingsRefused(str(error)) from None
    speed.install(host, state, enabled=plan.host.fast_facts)
    home, user = speed.read_together(host, (Home, {}), (User, {}))
    host.data._temp_dir = f"{home}/{UPLOAD_DIR}"
    if user != "root":
        host.data._sudo = True  # the normal case: a sudo user over SSH
    return plan


def stale_package(deploy_file: str | None, package: Path) -> str | None:
    """Why a deploy file must not run with the deploys package at ``package``: one installed
    elsewhere (``pip install .``) while a checkout's deploys/ sits beside the file, so the
    run would ship the installed copy, not the code in front of the operator; None when fine."""
    beside = Path(deploy_file).resolve().parent / "deploys" if deploy_file else None
    if beside is None or not beside.is_dir() or beside.resolve() == package.resolve():
        return None
    return (
        f"{deploy_file} would run the deploys package installed at {package}, not its"
        f" checkout's {beside}: `pip uninstall flask-deploy`, or `pip install -e .` there"
    )


@contextmanager
def in_turn(position: int):
    """Operations made inside are this turn's own, after those of every lower ``position``:
    one app's whole deploy before the next app's; within an app, a rolling batch's steps in
    order across hosts. (pyinfra takes the operations several hosts make at one call site
    for one: in a plain loop, one host's second app would be merged with another host's
    first, and hosts whose orders clash fail with "Cycle detected".) Nested turns order
    within their enclosing turn.

    Each turn is a position pushed onto the host's ``loop_position``, which pyinfra adds to
    the order and hash of every operation (what its public ``host.loop()`` sets): the same
    call site in another turn is another operation, and all hosts in the same turn make the
    same one. The list is the host's own: pyinfra loads the deploy file on all hosts at
    once, in greenlets that take turns whenever one waits for the host, and a turn shared
    between hosts would leak into another host's operations (each host then has operations
    of its own, run one host after another instead of on all at once)."""
    positions = host.loop_position  # this host's own list, even if another's ends the turn
    depth = len(positions)
    positions.append(position)
    try:
        yield
    finally:
        del positions[depth:]  # and any host.loop() left unfinished inside


def dry_run() -> bool:
    """Whether this run is a preview (``--dry``): it changes nothing, and pyinfra shows every
    operation it would run, those that run only if an earlier one fails included."""
    return "--dry" in sys.argv


@deploy("Private upload folder")
def private_upload_dir():
    """The SSH user's own mode 700 folder that uploads pass through on their way to root-owned
    paths (pyinfra's default is a predictably named file in /tmp that other users can read)."""
    files.directory(
        name=f"Upload folder ~/{UPLOAD_DIR} (mode 700)",
        path=host.data._temp_dir,
        mode="700",
        _sudo=False,
    )
