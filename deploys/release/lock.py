"""One deploy at a time per host (its apps share nginx, the firewall and the packages):
deploy.py, rollback.py and run.py hold a lock on the host from before they read its state
until their SSH connection closes, so two runs never interleave on ``current``, the release
history, pruning or the host-wide files; the second waits, naming who holds the lock, and
gives up after LOCK_WAIT seconds.

The lock is ``flock`` on a file in a root-only folder, held by a process whose input is an
SSH channel of this run: whether the run ends, fails or is killed, the channel closes and
the lock goes with it, so a crashed run never leaves a stale lock. That process then
starts the shell the fact cache sends its batches to (deploys/speed/batchshell.py), which would
otherwise need a channel and a sudo of its own, and passes it what follows on the channel;
that shell never has the lock, so no fact can keep it, and the channel stays open, lock
held, even if the shell stops being used for facts.
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

from deploys import speed
from deploys.ops.context import dry_run

LOCK_DIR = "/run/flask-deploy"  # root's (also the folder of the apps' sockets)
LOCK_WAIT = 600  # seconds
HOST_LOCK = "host"  # the lock's name (no app uses the folder for anything named so)
_HELD: dict[str, object] = {}  # host name -> the channel holding its lock (alive until exit)


def held_lock() -> str | None:
    """The deploy lock file this run holds on the current host; None when it holds none
    (``--dry``, a connector other than SSH)."""
    return f"{LOCK_DIR}/{HOST_LOCK}.lock" if host.name in _HELD else None


class DeployLockError(PyinfraError):
    """Another run holds the host's deploy lock for longer than LOCK_WAIT."""


def lock_script(
    name: str, owner: str, wait: int = LOCK_WAIT, folder: str = LOCK_DIR, batches: bool = False
) -> str:
    """Shell that takes the lock ``name`` (waiting up to ``wait`` s, saying who holds it),
    records ``owner``, prints ``locked`` and keeps the lock until its input closes. It
    refuses a folder that is not its user's alone (root's, on a host): nobody else may plant
    a link there for it to write through. The lock and owner files are its user's alone
    (mode 600): another user who could open the lock file could hold it (``flock -s``).

    ``batches``: what follows on its input goes to a shell it starts for the fact cache's
    batches (deploys/speed/batchshell.py), through a pipe named in that folder (gone once both
    ends are open). That shell does not get the lock: a fact that hangs (or that the app
    stops) can hold up the run, never keep the lock once the run's channel closes. The
    shell starts only once ``locked`` is out: a run killed while it waited ends there."""
    lock, who = f"{folder}/{name}.lock", f"{folder}/{name}.lock.owner"
    pipe = f"{folder}/{name}.batches"
    hold = (
        f" rm -f {pipe} && mkfifo -m 600 {pipe} || exit 1; echo locked || exit 1;"
        f" {{ exec 9>&- <{pipe}; rm -f {pipe}; umask 022; exec sh; }} &"
        f" cat >{pipe}; exec cat >/dev/null"  # still held if that shell ends: no lock lost
        if batches
        else " echo locked; exec cat >/dev/null"
    )
    return (
        f"umask 022; mkdir -p {folder} || exit 1;"
        f' if [ ! -O {folder} ] || [ -n "$(find {folder} -maxdepth 0 -perm /022)" ]; then'
        f" echo 'unsafe: {folder} is writable by others' >&2; exit 1; fi;"
        f" umask 077; exec 9>{lock} || exit 1;"
        f' if ! flock -n 9; then echo "waiting for $(cat {who} 2>/dev/null)";'
        f' flock -w {int(wait)} 9 || {{ echo "timeout: held by $(cat {who} 2>/dev/null)";'
        " exit 1; }; fi;"
        f" printf '%s\\n' {shlex.quote(owner)} > {who};{hold}"
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
    if dry_run() or host.name in _HELD:
        return
    client = getattr(host.connector, "client", None)  # paramiko's, of the SSH connector
    if client is None:  # not SSH (@local): nothing to hold it
        return
    cache = speed.fact_cache(host)  # None: stock pyinfra (fast_facts=false, another version)
    arguments = cache.fact_arguments() if cache is not None else {}
    if cache is not None and _as_root(arguments):
        channel = cache.open_channel(arguments, lock_script(HOST_LOCK, run_owner(), batches=True))
        if channel is not None:
            cache.adopt_channel(arguments, channel, _wait_for_lock(channel))
            return
    channel = client.get_transport().open_session()
    sudo = "" if host.data.get("_sudo") is not True else "sudo -n "
    channel.exec_command(f"{sudo}sh -c {shlex.quote(lock_script(HOST_LOCK, run_owner()))}")
    _wait_for_lock(channel)


def _as_root(arguments: dict) -> bool:
    """Whether facts run as root with these connector arguments, as the lock's folder needs:
    sudo to root (or no sudo: the SSH user is root), not to another user."""
    return not any(arguments.get(name) for name in ("_sudo_user", "_su_user", "_doas", "_dzdo"))


def _wait_for_lock(channel):
    """Read the lock script's lines on ``channel`` until it holds the lock (then keep the
    channel open for the rest of the run and return its output, read up to there), saying
    who holds it meanwhile; DeployLockError when it gives up or fails."""
    stream = channel.makefile("r")
    for line in iter(stream.readline, ""):
        if line.strip() == "locked":
            _HELD[host.name] = channel
            return stream
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
