"""Copies of the backups off the app servers (``backup_copy_to``, docs/backups.md): the
hosts of the inventory's ``backup_servers`` group receive them and run nothing else.

Each app server pushes each backup it took, over SSH as ``flask-backups`` with a key of its
own whose only command on the backup server is rrsync, write-only and without deletion,
into its own incoming folder; root there takes in each complete backup (parts checked
against its manifest) into a folder the pushing user cannot reach, and never replaces one:
a compromised app server can add backups, never read, change or remove the ones kept.

The key pair of each app server is made by the controller the first time (the private half
written, hidden, root-only on the app server), its public half read back from the app
server on later runs: both hosts of a run need it before any operation runs."""

from __future__ import annotations

import ipaddress
import re
import shlex
import time
from functools import cache

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)
from pyinfra import host, state
from pyinfra.api import Host, operation
from pyinfra.api.exceptions import PyinfraError
from pyinfra.facts.files import File, FileContents
from pyinfra.operations import files, server

from deploys.config.layout import BACKUPS, GATE_SCRIPT, Layout
from deploys.config.plan import HostPlan
from deploys.config.settings import Settings
from deploys.hostside.accept import NAME_RE
from deploys.hostside.backup import ssh_command
from deploys.ops import ufw
from deploys.ops.facts import BackupList
from deploys.ops.fileops import secret_file
from deploys.ops.render import put_text, render
from deploys.ops.typed import deploy
from deploys.ops.units import unit_loaded, unit_state
from deploys.release.gate import install_release_gate
from deploys.stack.appuser import Account
from deploys.stack.firewall import GUIDE_TEST_RULE, WEB_RULES
from deploys.stack.fleet import BACKUP_SERVERS, Fleet, private_address

RECEIVER = "flask-backups"  # the user the app servers push as, on a backup server
HOME = "/var/lib/flask-backups"  # root's: its authorized_keys, the incoming folders
INCOMING = f"{HOME}/incoming"  # <server>/<app>/: what each app server pushed (the user's)
STORE = "/srv/flask-backups"  # root only: <server>/<app>/<name>/, the backups taken in
QUARANTINE = f"{HOME}/quarantine"  # root only: pushed entries that could not be removed
ACCEPT = "flask-backups-accept"  # the units that take pushed backups in (service, path, timer)
COPY_KEYS = "/etc/flask-deploy/backup-copy"  # root only, on an app server: its key, known hosts
KEY = f"{COPY_KEYS}/id_ed25519"
KNOWN_HOSTS = f"{COPY_KEYS}/known_hosts"
HOST_KEY = "/etc/ssh/ssh_host_ed25519_key.pub"


def server_folder(name: str) -> str:
    """An app server's folder name on the backup servers: its inventory name, any character
    but letters, digits, dot, dash and underscore made ``_`` (and a leading dot)."""
    return re.sub(r"^\.|[^A-Za-z0-9._-]", "_", name)


def copy_targets(settings: Settings) -> list:
    """The inventory hosts the app's backups are copied to (none without backup_copy_to).
    PyinfraError when the group is empty, missing, or holds a host that is no backup
    server."""
    if not settings.backup_copy_to:
        return []
    group = settings.backup_copy_to
    members = state.inventory.get_group(group, [])
    receivers = state.inventory.get_group(BACKUP_SERVERS, [])
    strays = [member.name for member in members if member not in receivers]
    if not members or strays:
        raise PyinfraError(
            f"backup_copy_to: the inventory group {group!r} "
            + (f"holds {', '.join(strays)}, not in" if strays else "is missing or empty; put")
            + f" the {BACKUP_SERVERS} group (hosts that receive backups and run nothing else)"
            + (": put them there" if strays else " hosts in it")
        )
    return members


def copy_arguments(settings: Settings) -> str:
    """The backup unit's arguments that push each backup to the app's backup servers."""
    targets = copy_targets(settings)
    if not targets:
        return ""
    pushes = "".join(f" --copy-to={RECEIVER}@{private_address(t)}" for t in targets)
    return f"{pushes} --copy-key={KEY} --known-hosts={KNOWN_HOSTS}"


_KEYS: dict[str, tuple[str, str]] = {}  # app server -> (private key or "", public key)


def copy_key(name: str) -> tuple[str, str]:
    """The app server ``name``'s key pair for pushing backups: ("", its public key) when it
    has one, else a new pair made here (the private half to be written there). Read once a
    run; the hosts' deploy code runs side by side, so the first answer is kept."""
    if name not in _KEYS:
        member = state.inventory.get_host(name)
        public = member.get_fact(FileContents, path=f"{KEY}.pub", _sudo=True) or []
        have = public and member.get_fact(File, path=KEY, _sudo=True)
        _KEYS.setdefault(name, ("", public[0].strip()) if have else new_key(name))
    return _KEYS[name]


def new_key(name: str) -> tuple[str, str]:
    """A new ed25519 key pair (OpenSSH formats), commented with the app server's name."""
    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(Encoding.PEM, PrivateFormat.OpenSSH, NoEncryption()).decode()
    public = key.public_key().public_bytes(Encoding.OpenSSH, PublicFormat.OpenSSH).decode()
    return private, f"{public} flask-deploy-backups@{server_folder(name)}"


@cache
def host_key(name: str) -> str:
    """The backup server ``name``'s SSH host key (ed25519, public)."""
    lines = state.inventory.get_host(name).get_fact(FileContents, path=HOST_KEY) or []
    if not lines:
        raise PyinfraError(f"backup_copy_to: {name} has no {HOST_KEY}: is it an SSH server?")
    return " ".join(lines[0].split()[:2])


@deploy("Backup copies")
def configure_backup_copies(apps) -> None:
    """On an app server (or the database server) whose ``apps`` copy their backups: its key
    (root only) and the backup servers' host keys, the only ones its pushes trust."""
    targets = {member.name: member for app in apps for member in copy_targets(app)}
    if not targets:
        return
    files.directory(name=f"Folder {COPY_KEYS} (root only)", path=COPY_KEYS, user="root", mode="700")
    private, public = copy_key(host.name)
    if private:
        secret_file(
            name=f"{KEY} (hidden)", path=KEY, content=private, user="root", group="root", mode="600"
        )
    put_text(f"Key {KEY}.pub", public + "\n", f"{KEY}.pub", mode="644", user="root")
    known = "".join(f"{private_address(m)} {host_key(n)}\n" for n, m in sorted(targets.items()))
    put_text(f"Backup servers' keys {KNOWN_HOSTS}", known, KNOWN_HOSTS, mode="644", user="root")


def senders(plan: HostPlan, fleet: Fleet) -> dict[str, list[str]]:
    """The app servers (and the database server) whose backups come here, each with its
    apps that send them. PyinfraError when two hosts' names make one folder here."""
    pushing: dict[str, list[str]] = {}
    for name in fleet.backed_up:
        for app in plan.apps:
            if not fleet.backs_up(app, name):
                continue  # none of its data there
            if any(member.name == host.name for member in copy_targets(app)):
                pushing.setdefault(name, []).append(app.app_name)
    folders: dict[str, str] = {}
    for name in pushing:
        other = folders.setdefault(server_folder(name), name)
        if other != name:
            raise PyinfraError(
                f"backup_copy_to: the hosts {other} and {name} would share the folder"
                f" {server_folder(name)!r} on {host.name}: rename one in the inventory"
            )
    return pushing


def authorized_keys(pushing: dict[str, list[str]], fleet: Fleet) -> str:
    """The receiving user's authorized_keys: each app server's key allowed rrsync alone:
    write-only, no deletion, links munged (no link it pushes leads anywhere), in its own
    incoming folder."""
    return "".join(
        key_line(name, fleet, f"-wo -no-del -no-lock -munge {INCOMING}") for name in sorted(pushing)
    )


def key_line(name: str, fleet: Fleet, rrsync: str) -> str:
    """An authorized_keys line for the app server ``name``'s key: from its address (when it
    is an IP address), no pty or forwarding, its one command ``rrsync`` (options and the
    folder whose subfolder of the server's it may reach)."""
    options = ["restrict"]
    if is_ip(fleet.address(name)):
        options.append(f'from="{fleet.address(name)}"')
    *flags, top = rrsync.split()
    options.append(f'command="/usr/bin/rrsync {" ".join(flags)} {top}/{server_folder(name)}"')
    return f"{','.join(options)} {copy_key(name)[1]}\n"


def is_ip(address: str) -> bool:
    """Whether ``address`` is an IP address (not a host name)."""
    try:
        ipaddress.ip_address(address)
    except ValueError:
        return False
    return True


def system_user(user: str, home: str) -> None:
    """A system user app servers log in as (forced commands only), its home root's (its
    authorized keys there); a shell, since sshd runs the forced command through it."""
    account = host.get_fact(Account, user=user) or {}
    if (account.get("home"), account.get("shell")) != (home, "/bin/sh"):
        server.user(
            name=f"System user {user}",
            user=user,
            system=True,
            home=home,
            shell="/bin/sh",
            create_home=False,
            ensure_home=False,
        )


def folder(path: str, user: str = "root", mode: str = "755"):
    """A folder of the backup server, its owner and mode."""
    return files.directory(
        name=f"Folder {path} ({user}'s)", path=path, user=user, group=user, mode=mode
    )


def backup_firewall_rules(plan: HostPlan) -> tuple[list[str], list[str]]:
    """UFW's rules on a backup server: SSH (and the operator's own), no web rule."""
    return [plan.host.ssh_allow, *plan.host.firewall_allow], [GUIDE_TEST_RULE, *WEB_RULES]


@deploy("Backup server")
def configure_backup_server(plan: HostPlan, fleet: Fleet) -> None:
    """UFW admitting SSH alone; the receiving user (its authorized keys root's), each app
    server's incoming folders, root's store, and the units that take pushed backups in."""
    if plan.host.firewall:
        allow, absent = backup_firewall_rules(plan)
        ufw.policy(name=f"ufw: allow {', '.join(allow)}; deny incoming", allow=allow, absent=absent)
    install_release_gate()  # its accept subcommand
    system_user(RECEIVER, HOME)
    withdraw_backups("No backup offered")  # a restore cut short left none lasting
    for path in (HOME, f"{HOME}/.ssh", INCOMING):
        folder(path)
    folder(STORE, mode="700")
    folder(QUARANTINE, mode="700")
    pushing = senders(plan, fleet)
    keys = f"{HOME}/.ssh/authorized_keys"
    put_text(
        f"{RECEIVER}'s keys {keys}", authorized_keys(pushing, fleet), keys, mode="644", user="root"
    )
    pairs = []
    for name, apps in sorted(pushing.items()):
        folder(f"{INCOMING}/{server_folder(name)}")
        for app in apps:
            folder(f"{INCOMING}/{server_folder(name)}/{app}", user=RECEIVER, mode="700")
            pairs.append(f"{server_folder(name)}/{app}")
    context = {"incoming": INCOMING, "store": STORE, "quarantine": QUARANTINE, "pairs": pairs}
    context["gate"] = GATE_SCRIPT
    for kind in ("service", "path", "timer"):
        path = f"/etc/systemd/system/{ACCEPT}.{kind}"
        put_text(f"Unit {path}", render(f"backup-accept.{kind}.j2", **context), path)
        unit_loaded(name=f"systemd knows the current {ACCEPT}.{kind}", unit=f"{ACCEPT}.{kind}")
    for kind in ("path", "timer"):
        unit = f"{ACCEPT}.{kind}"
        unit_state(name=f"{unit} enabled and running", unit=unit, running=True, enabled=True)


def kept_on(receiver: str, name: str, app: str) -> list[dict]:
    """The backups of ``app`` the backup server ``receiver`` keeps of the app server
    ``name``, oldest first."""
    member = state.inventory.get_host(receiver)
    return member.get_fact(BackupList, root=f"{STORE}/{server_folder(name)}/{app}", _sudo=True)


# A restore onto another host (restore.py --data from_host=OLD): the backup server offers
# the backup for the run's length, read-only, to the restoring app servers alone.
RESTORER = "flask-restores"  # the user restoring app servers read a backup as
RESTORER_HOME = "/var/lib/flask-restores"  # root's: its authorized_keys
OUTGOING = f"{RESTORER_HOME}/outgoing"  # root:flask-restores 0750: <server>/<app>/<name>/


def offered_backup(settings: Settings, old: str) -> tuple[Host, dict]:
    """The backup server that keeps the app's backups of the host ``old`` (the first of
    backup_copy_to that has one) and the backup's manifest (``backup``, or its newest).
    PyinfraError when none has it."""
    wanted = settings.backup or "latest"
    soon = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(time.time() + 300))
    for member in copy_targets(settings):
        kept = kept_on(member.name, old, settings.app_name)
        named = {m["backup"]: m for m in kept if NAME_RE.fullmatch(str(m.get("backup", "")))}
        names = sorted(n for n in named if n <= soon)  # none from the future
        if names and wanted == "latest":
            return member, named[names[-1]]
        if wanted in names:
            return member, named[wanted]
    raise PyinfraError(
        f"from_host: no backup {wanted!r} of {settings.app_name} from {old} on the backup"
        f" servers of {settings.backup_copy_to!r} (backups.py --data from_host={old} lists"
        " them)"
    )


def of_database_server(manifest: dict) -> bool:
    """Whether the backup is a database server's (its database and Redis, no data
    directory) rather than an app server's."""
    return "data.tar" not in {part.get("name") for part in manifest.get("parts", [])}


def restorer_keys(restoring: str, fleet: Fleet, until: float) -> str:
    """flask-restores' authorized_keys: the restoring app server's key (the one it pushes
    with) allowed rrsync alone, read-only, in its own outgoing folder, until ``until``
    (unix seconds: a run cut short leaves no lasting offer)."""
    expiry = time.strftime("%Y%m%d%H%M%SZ", time.gmtime(until))
    line = key_line(restoring, fleet, f"-ro -no-lock -munge {OUTGOING}")
    return f'expiry-time="{expiry}",{line}'


@deploy("Backup offered")
def offer_backup(settings: Settings, old: str, backup: str, restoring: str, fleet: Fleet):
    """On the backup server: a copy of the backup readable by flask-restores, in the
    restoring app server's outgoing folder, and its key allowed to read it for an hour."""
    system_user(RESTORER, RESTORER_HOME)
    for path in (RESTORER_HOME, f"{RESTORER_HOME}/.ssh"):
        folder(path)
    files.directory(
        name=f"Folder {OUTGOING}", path=OUTGOING, user="root", group=RESTORER, mode="750"
    )
    app = settings.app_name
    source = shlex.quote(f"{STORE}/{server_folder(old)}/{app}/{backup}")
    top = shlex.quote(f"{OUTGOING}/{server_folder(restoring)}")
    target = shlex.quote(f"{OUTGOING}/{server_folder(restoring)}/{app}/{backup}")
    server.shell(
        name=f"Backup {backup} of {app} offered to {restoring}",
        commands=[
            f"rm -rf {top} && install -d -o root -g {RESTORER} -m 750 {top} {top}/{app} {target}"
            f" && install -o root -g {RESTORER} -m 640 -p {source}/* {target}/"
        ],
    )
    keys = f"{RESTORER_HOME}/.ssh/authorized_keys"
    until = time.time() + 3600
    put_text(f"{RESTORER}'s keys", restorer_keys(restoring, fleet, until), keys, mode="644")


def withdraw_backups(name: str = "Backups offered withdrawn") -> None:
    """On the backup server: no key reads anything offered, the offered copies gone (once
    the app server fetched it; and by every deploy, should a run have been cut short)."""
    files.file(name=f"{name}: no key", path=f"{RESTORER_HOME}/.ssh/authorized_keys", present=False)
    files.directory(name=f"{name}: no copy", path=OUTGOING, present=False)


@operation()
def backup_fetched(settings: Settings, receiver: str, backup: str):
    """
    On a restoring app server: the backup read from the backup server ``receiver`` (rsync
    over SSH with the key it pushes with, as flask-restores) into its own backups, unless
    it has it already (restore.py then checks it against its manifest).

    + settings: the app's
    + receiver: the backup server's address
    + backup: the backup's name
    """
    layout = Layout.of(settings)
    folder = f"{layout.backups}/{backup}"
    if host.get_fact(File, path=f"{folder}/manifest.json"):
        host.noop(f"backup {backup} of {settings.app_name} is here already")
        return
    ssh = ssh_command(KEY, KNOWN_HOSTS)
    yield (
        f"install -d -m 700 {BACKUPS} {layout.backups} && rm -rf {folder}.partial"
        f" && rsync --recursive --times --chmod=D700,F600 --max-size=100G"
        f" -e {shlex.quote(ssh)} {RESTORER}@{receiver}:{settings.app_name}/{backup}/"
        f" {folder}.partial/ && mv {folder}.partial {folder}"
    )
