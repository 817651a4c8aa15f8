"""One deploy at a time per host (its apps share nginx, the firewall and the packages):
deploy.py, rollback.py and run.py hold a lock on the host from before they read its state
until their SSH connection closes, so two runs never interleave on ``current``, the release
history, pruning or the host-wide files; the second waits, naming who holds the lock, and
gives up after LOCK_WAIT seconds.

The lock is ``flock`` on a file in a root-only folder, held by a process whose input is a
dedicated SSH channel of this run: whether the run ends, fails or is killed, the channel
closes and the lock goes with it, so a crashed run never leaves a stale lock.
"""

from __future__ import annotations

import getpass
import os
import shlex
import socket
import sys
import time

from pyinfra import host
from pyinfra.api.exceptions import PyinfraError

LOCK_DIR = "/run/flask-deploy"  # root's (also the folder of the apps' sockets)
LOCK_WAIT = 600  # seconds
HOST_LOCK = "host"  # the lock's name (no app uses the folder for anything named so)
_HELD: dict[str, object] = {}  # host name -> the channel holding its lock (alive until exit)


class DeployLockError(PyinfraError):
    """Another run holds the host's deploy lock for longer than LOCK_WAIT."""


def lock_script(name: str, owner: str, wait: int = LOCK_WAIT, folder: str = LOCK_DIR) -> str:
    """Shell that takes the lock ``name`` (waiting up to ``wait`` s, saying who holds it),
    records ``owner``, prints ``locked`` and keeps the lock until its input closes. It
    refuses a folder that is not its user's alone (root's, on a host): nobody else may plant
    a link there for it to write through."""
    lock, who = f"{folder}/{name}.deploy-lock", f"{folder}/{name}.deploy-lock.owner"
    return (
        f"umask 022; mkdir -p {folder} || exit 1;"
        f' if [ ! -O {folder} ] || [ -n "$(find {folder} -maxdepth 0 -perm /022)" ]; then'
        f" echo 'unsafe: {folder} is writable by others' >&2; exit 1; fi;"
        f" exec 9>{lock} || exit 1;"
        f' if ! flock -n 9; then echo "waiting for $(cat {who} 2>/dev/null)";'
        f' flock -w {int(wait)} 9 || {{ echo "timeout: held by $(cat {who} 2>/dev/null)";'
        " exit 1; }; fi;"
        f" printf '%s\\n' {shlex.quote(owner)} > {who}; echo locked; exec cat >/dev/null"
    )


def run_owner() -> str:
    """Who this run is, for the message another run prints while it waits."""
    entries = [os.path.basename(arg) for arg in sys.argv[1:] if arg.endswith(".py")]
    entry = entries[-1] if entries else "pyinfra"  # the deploy file comes after the inventory
    started = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    return (
        f"{entry} by {getpass.getuser()}@{socket.gethostname()} (pid {os.getpid()}) since {started}"
    )


def hold_deploy_lock() -> None:
    """Take this host's deploy lock for the rest of the run (not for --dry runs, which change
    nothing). Raises DeployLockError when it stays taken."""
    if "--dry" in sys.argv or host.name in _HELD:
        return
    client = getattr(host.connector, "client", None)
    if client is None:  # not an SSH connection (e.g. @local): nothing to hold it with
        return
    channel = client.get_transport().open_session()
    sudo = "" if host.data.get("_sudo") is not True else "sudo -n "
    channel.exec_command(f"{sudo}sh -c {shlex.quote(lock_script(HOST_LOCK, run_owner()))}")
    stream = channel.makefile("r")
    for line in stream:
        if line.strip() == "locked":
            _HELD[host.name] = channel
            return
        if line.startswith("waiting for"):
            host.log(f"{line.strip()}: another run holds the host's deploy lock")
        elif line.startswith("timeout"):
            raise DeployLockError(
                f"{host.name}: gave up after {LOCK_WAIT} s waiting for the deploy lock,"
                f" {line.strip().removeprefix('timeout: ')}"
            )
    raise DeployLockError(
        f"{host.name}: could not take the deploy lock:"
        f" {channel.makefile_stderr('r').read().strip() or 'no answer'}"
    )
