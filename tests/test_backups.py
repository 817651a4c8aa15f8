"""Backups (#30), first part, on one host with two example apps: notes (SQLite in its data
directory) and board (PostgreSQL and Redis). A backup taken while a writer keeps adding notes
holds a consistent database with every note acknowledged before it began; board's holds its
database dump and its Redis snapshot; the app cannot read its backups, and a link it planted
in its data directory is archived as a link (root read nothing through it); the oldest go
once newer ones succeeded; each is copied to the backup server (the backup_servers group),
which keeps it root-only; root on the app server, with the key it pushes with, cannot get a
shell there, read, delete or replace a backup kept, nor write outside its own folder; a
backup that cannot be written fails, runs backup_on_failure, verify says so, the next one
succeeds; backups.py lists them, on the backup server too. restore.py puts a lost SQLite
database back (and takes away a file that was not in the backup), re-creates the PostgreSQL
database and the Redis data from a backup, refuses a backup that is not there without
touching the app, and, once the app server is gone, restores a fresh one from the backup
server's copy (from_host).

Tests in this module share one host and run in file order."""

from __future__ import annotations

import io
import json
import shlex
import tarfile
import threading

import pytest

from testbed import wait_for
from testbed.pyinfra_cli import pyinfra
from tests.helpers import NOTES, failing
from tests.test_datastores import BOARD

BACKUPS = {"backups": True, "backup_keep": 2, "backup_copy_to": "backup_servers"}
ON_FAILURE = 'echo "backup of $BACKUP_APP on $BACKUP_HOST failed: $MONITOR_SERVICE_RESULT"'
APPS = [
    {**NOTES, **BACKUPS, "backup_on_failure": ON_FAILURE},
    {**BOARD, **BACKUPS, "server_name": "board.test"},
]
ROOT = "/var/backups/flask-deploy"
REDIS = "/run/board-redis/redis.sock"
# on the host: a database's integrity check, then its notes, one a line
CHECK = (
    "import sqlite3, sys; db = sqlite3.connect(sys.argv[1]);"
    " print(db.execute('PRAGMA integrity_check').fetchone()[0]);"
    " [print(body) for (body,) in db.execute('SELECT body FROM note')]"
)


RECEIVERS: list = []  # the backup server, booted with the app server
STORE = "/srv/flask-backups"


def run(host, workdir, entry: str = "deploy.py", *args: str, **kwargs):
    """pyinfra on the app server and the backup server (the backup_servers group)."""
    groups = {"app_servers": [host.name], "backup_servers": [r.name for r in RECEIVERS]}
    env = {"TESTBED_GROUPS": json.dumps(groups), **kwargs.pop("env_extra", {})}
    args = ("--data", f"apps={json.dumps(APPS)}", *args)
    return pyinfra([host, *RECEIVERS], workdir, entry, *args, env_extra=env, **kwargs)


def backup(host, workdir, app: str):
    return run(host, workdir, "backup.py", "--data", f"app={app}")


def backups_of(host, app: str) -> list[str]:
    listing = host.exec(f"ls -1 {ROOT}/{app}", check=False).stdout.split()
    return sorted(name for name in listing if not name.endswith(".partial"))


def part(host, app: str, name: str, file: str) -> bytes:
    """A backup's part, read from the host as root (the test's own view)."""
    return host.exec_bytes(f"cat {ROOT}/{app}/{name}/{file}")


def add_note(host, body: str) -> bool:
    status = host.exec(
        "curl -s -o /dev/null -w '%{http_code}' -H 'Host: notes.test'"
        f" --data-urlencode body={body!r} http://127.0.0.1/notes",
        check=False,
    ).stdout
    return status.strip() in ("200", "201", "302", "303")


SPARE: list = []  # a fresh host, restored at the end from the backup server's copies


@pytest.fixture(scope="module")
def host(boot, workdir):
    host, receiver, spare = boot(3)
    RECEIVERS.append(receiver)
    SPARE.append(spare)
    run(host, workdir).check()
    return host


def kept_on_receiver(host, app: str) -> list[str]:
    """The backups of ``app`` the backup server took in from ``host``."""
    folder = f"{STORE}/{host.name}/{app}"
    listing = RECEIVERS[0].exec(f"ls -1 {folder}", check=False).stdout.split()
    return sorted(name for name in listing if not name.endswith(".partial"))


def test_a_backup_taken_while_the_app_writes_holds_every_acknowledged_write(host, workdir):
    acknowledged: list[str] = []
    stop = threading.Event()

    def writer():
        for n in range(400):  # bounded in count and time
            if stop.is_set():
                return
            body = f"written-{n}"
            if add_note(host, body):
                acknowledged.append(body)

    thread = threading.Thread(target=writer)
    thread.start()
    wait_for(lambda: len(acknowledged) >= 3, 60, "the writer's first notes")
    before = list(acknowledged)
    result = backup(host, workdir, "notes").check()
    stop.set()
    thread.join(timeout=60)
    assert before, "the writer wrote nothing before the backup"
    (name,) = backups_of(host, "notes")
    assert f"backup {name} of notes" in result.output
    manifest = json.loads(part(host, "notes", name, "manifest.json"))
    assert [p["name"] for p in manifest["parts"]] == ["data.tar"]
    assert manifest["found"]["sqlite"] == {"instance/notes.sqlite": "ok"}
    tar = tarfile.open(fileobj=io.BytesIO(part(host, "notes", name, "data.tar")))
    copy = tar.extractfile("data/instance/notes.sqlite").read()
    rows = host.exec_bytes(
        f"f=$(mktemp) && cat > $f && python3 -c {shlex.quote(CHECK)} $f; rm -f $f", copy
    )
    rows = rows.decode()
    assert rows.splitlines()[0] == "ok"
    assert set(before) <= set(rows.splitlines()[1:])


def test_a_database_and_redis_backup_holds_the_dump_and_the_snapshot(host, workdir):
    backup(host, workdir, "board").check()
    (name,) = backups_of(host, "board")
    manifest = json.loads(part(host, "board", name, "manifest.json"))
    assert [p["name"] for p in manifest["parts"]] == ["data.tar", "postgresql.dump"]
    assert manifest["found"]["redis"] == "saved"
    tar = tarfile.open(fileobj=io.BytesIO(part(host, "board", name, "data.tar")))
    assert "redis/dump.rdb" in tar.getnames()
    listing = host.exec(
        f"runuser -u postgres -- pg_restore --list < {ROOT}/board/{name}/postgresql.dump"
    )
    assert "TABLE public post board" in listing.stdout


def test_the_app_cannot_read_its_backups_and_its_links_are_kept_as_links(host, workdir):
    denied = host.exec(f"runuser -u notes -- ls {ROOT}/notes", check=False)
    assert denied.returncode != 0 and "Permission denied" in denied.stderr
    host.exec("runuser -u notes -- ln -s /etc/shadow /var/lib/notes/instance/secrets")
    backup(host, workdir, "notes").check()
    newest = backups_of(host, "notes")[-1]
    tar = tarfile.open(fileobj=io.BytesIO(part(host, "notes", newest, "data.tar")))
    link = tar.getmember("data/instance/secrets")
    assert link.issym() and link.linkname == "/etc/shadow" and link.size == 0


def test_the_oldest_go_once_newer_ones_succeeded(host, workdir):
    first = backups_of(host, "notes")[0]
    backup(host, workdir, "notes").check()
    kept = backups_of(host, "notes")
    assert len(kept) == 2 and first not in kept


def test_each_backup_is_copied_to_the_backup_server_which_keeps_it_root_only(
    host, workdir, tmp_path
):
    receiver = RECEIVERS[0]
    wanted = backups_of(host, "notes")
    wait_for(lambda: set(wanted) <= set(kept_on_receiver(host, "notes")), 90, what="copies")
    newest = wanted[-1]
    kept = f"{STORE}/{host.name}/notes/{newest}"
    assert receiver.exec_bytes(f"cat {kept}/manifest.json") == part(
        host, "notes", newest, "manifest.json"
    )
    modes = receiver.exec(f"stat -c '%U %a' {kept} {kept}/*").stdout.split("\n")
    assert set(filter(None, modes)) == {"root 700", "root 600"}
    incoming = receiver.exec("find /var/lib/flask-backups/incoming -type f").stdout
    assert incoming == ""  # taken away from where the app server writes
    listed = run(host, workdir, "backups.py", "--data", "app=notes").check()
    assert f"{receiver.name}, from {host.name}: " in listed.output
    assert newest in listed.output.split(f"from {host.name}")[1]
    report = tmp_path / "report.json"
    run(host, workdir, "verify.py", env_extra={"VERIFY_JSON": str(report)})
    found = json.loads(report.read_text())
    assert failing(found, receiver) == set() and failing(found, host) == set()
    names = {c["name"] for c in found["hosts"][host.name]["checks"]}
    assert f"newest backup copied to {receiver.name}" in names
    assert run(host, workdir).check().changed == 0  # both hosts: the keys read back


def pushing(host, *args: str):
    """rsync as the app server's root pushes with, over its copy key (the attacker: root on
    a compromised app server)."""
    ssh = (
        "ssh -F /dev/null -i /etc/flask-deploy/backup-copy/id_ed25519 -o BatchMode=yes"
        " -o UserKnownHostsFile=/etc/flask-deploy/backup-copy/known_hosts"
    )
    target = f"flask-backups@{RECEIVERS[0].address}"
    command = " ".join(shlex.quote(a.replace("TARGET", target)) for a in args)
    return host.exec(f"rsync -e {shlex.quote(ssh)} {command}", check=False)


def test_a_compromised_app_server_adds_backups_but_never_reads_changes_or_removes_them(host):
    receiver, newest = RECEIVERS[0], kept_on_receiver(host, "notes")[-1]
    key = "/etc/flask-deploy/backup-copy/id_ed25519"
    stolen = host.exec(f"runuser -u notes -- cat {key}", check=False)  # the app: no key
    assert stolen.returncode != 0 and "Permission denied" in stolen.stderr
    kept = f"{STORE}/{host.name}/notes/{newest}"
    before = receiver.exec(f"sha256sum {kept}/*").stdout
    shell = host.exec(
        "ssh -F /dev/null -i /etc/flask-deploy/backup-copy/id_ed25519 -o BatchMode=yes"
        " -o UserKnownHostsFile=/etc/flask-deploy/backup-copy/known_hosts"
        f" flask-backups@{receiver.address} cat /etc/passwd",
        check=False,
    )
    assert shell.returncode != 0 and "root:" not in shell.stdout  # rrsync alone
    read = pushing(host, "-r", "TARGET:notes/", "/tmp/stolen/")
    assert read.returncode != 0
    assert host.exec("ls -A /tmp/stolen 2>/dev/null || true").stdout.strip() == ""
    host.exec("mkdir -p /tmp/empty")
    wiped = pushing(host, "-r", "--delete", "/tmp/empty/", "TARGET:notes/")
    assert wiped.returncode != 0
    escape = pushing(host, "-r", "/tmp/empty/", "TARGET:../../incoming/other/")
    assert escape.returncode != 0
    forged = host.exec(
        f"mkdir -p /tmp/forged/{newest} && echo forged > /tmp/forged/{newest}/data.tar"
        f" && cp {ROOT}/notes/{newest}/manifest.json /tmp/forged/{newest}.json && echo ok"
    )
    assert forged.stdout.strip() == "ok"
    assert pushing(host, "-r", "/tmp/forged/", "TARGET:notes/").returncode == 0  # adds
    receiver.exec("systemctl start flask-backups-accept.service", check=False)
    journal = receiver.exec("journalctl -u flask-backups-accept.service --no-pager").stdout
    assert f"backup {host.name}/notes/'{newest}.json' refused" in journal
    assert receiver.exec(f"sha256sum {kept}/*").stdout == before  # never replaced
    assert receiver.exec("find /var/lib/flask-backups/incoming -type f").stdout == ""


def test_a_backup_that_cannot_be_written_fails_and_verify_says_so(host, workdir, tmp_path):
    kept = backups_of(host, "notes")
    folder = f"{ROOT}/notes"
    host.exec(f"mount -t tmpfs -o ro,size=1m tmpfs {folder}")  # a read-only disk
    try:
        failed = backup(host, workdir, "notes")
        assert failed.returncode != 0, failed.output[-3000:]
        assert "Job for notes-backup.service failed" in failed.output, failed.output[-3000:]

        def on_failure_ran():
            log = host.exec("journalctl -u notes-backup-failed -o cat --no-pager").stdout
            return log if "failed: exit-code" in log else None

        said = wait_for(on_failure_ran, 30, what="backup_on_failure's run")
        assert "backup of notes on " in said  # its environment: the app, the host, why
        report = tmp_path / "report.json"
        run(host, workdir, "verify.py", env_extra={"VERIFY_JSON": str(report)})
        assert "last backup run" in failing(json.loads(report.read_text()), host)
    finally:
        host.exec(f"umount {folder}")
    assert backups_of(host, "notes") == kept  # nothing removed by the failure
    backup(host, workdir, "notes").check()
    run(host, workdir, "verify.py", env_extra={"VERIFY_JSON": str(report)})
    assert failing(json.loads(report.read_text()), host) == set()
    listed = run(host, workdir, "backups.py", "--data", "app=notes").check()
    assert all(name in listed.output for name in backups_of(host, "notes"))


def notes_in_data(host) -> set[str]:
    """The notes the app's database holds (read as the app)."""
    read = host.exec(
        f"runuser -u notes -- python3 -c {shlex.quote(CHECK)} /var/lib/notes/instance/notes.sqlite"
    )
    return set(read.stdout.splitlines()[1:])


def test_restore_dry_says_what_it_would_replace_and_changes_nothing(host, workdir):
    newest = backups_of(host, "board")[-1]
    before = host.exec("runuser -u postgres -- psql -XAt -d board -c 'SELECT count(*) FROM post'")
    dry = run(
        host, workdir, "restore.py", "--data", "app=board", "--data", "backup=latest", "--dry"
    )
    assert dry.returncode == 0, dry.output[-3000:]
    assert f"would restore board from backup {newest} (taken " in dry.output
    assert "would replace its data directory /var/lib/board: " in dry.output
    assert "would replace its database board: " in dry.output
    assert "would replace its Redis snapshot: " in dry.output
    after = host.exec("runuser -u postgres -- psql -XAt -d board -c 'SELECT count(*) FROM post'")
    assert after.stdout == before.stdout
    assert "restored board" not in dry.output


def test_restore_puts_the_data_back_and_the_app_serves_it(host, workdir, tmp_path):
    newest = backups_of(host, "notes")[-1]
    kept = notes_in_data(host)
    host.exec("runuser -u notes -- rm /var/lib/notes/instance/notes.sqlite")  # lost
    host.exec("runuser -u notes -- touch /var/lib/notes/instance/stray")
    result = run(host, workdir, "restore.py", "--data", "app=notes", "--data", "backup=latest")
    assert result.returncode == 0, result.output[-3000:]
    assert f"restored notes from backup {newest}: healthy" in result.output
    assert notes_in_data(host) == kept
    left = host.exec("ls -A /var/lib/notes /var/lib/notes/instance").stdout
    assert "stray" not in left and ".replaced-" not in left and ".restore-" not in left
    report = tmp_path / "report.json"
    run(host, workdir, "verify.py", env_extra={"VERIFY_JSON": str(report)})
    assert failing(json.loads(report.read_text()), host) == set()


def test_restore_recreates_the_database_and_the_redis_data(host, workdir):
    (name,) = backups_of(host, "board")
    count = "runuser -u postgres -- psql -XAt -d board -c 'SELECT count(*) FROM post'"
    posts = host.exec(count).stdout.strip()
    visits = host.exec(f"runuser -u board -- redis-cli -s {REDIS} get visits").stdout.strip()
    host.exec("runuser -u postgres -- psql -XAt -d board -c 'DELETE FROM post'")
    host.exec(f"runuser -u board -- redis-cli -s {REDIS} flushall")
    result = run(host, workdir, "restore.py", "--data", "app=board", "--data", f"backup={name}")
    assert result.returncode == 0, result.output[-3000:]
    assert host.exec(count).stdout.strip() == posts
    assert (
        host.exec(f"runuser -u board -- redis-cli -s {REDIS} get visits").stdout.strip() == visits
    )
    owner = "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'board'"
    assert host.exec(f'runuser -u postgres -- psql -XAtc "{owner}"').stdout.strip() == "board"
    databases = host.exec("runuser -u postgres -- psql -XAtc 'SELECT datname FROM pg_database'")
    assert "replaced" not in databases.stdout


def test_restoring_a_backup_that_is_not_there_changes_nothing(host, workdir):
    """Refused before anything runs: the app was not even stopped."""
    since = "systemctl show -p ActiveEnterTimestampMonotonic --value notes.service"
    started = host.exec(since).stdout
    result = run(
        host, workdir, "restore.py", "--data", "app=notes", "--data", "backup=20000101T000000Z"
    )
    said = f"backup: {host.name} keeps no backup '20000101T000000Z' of notes"
    assert result.returncode != 0 and said in result.output, result.output[-2000:]
    assert host.exec("systemctl is-active notes.service").stdout.strip() == "active"
    assert host.exec(since).stdout == started


def test_a_fresh_host_is_restored_from_the_backup_servers_copy(host, workdir, tmp_path):
    """The disaster: the app server is gone. A fresh one gets the app (deploy.py), then
    restore.py --data from_host=OLD fetches OLD's newest backup from the backup server
    (offered read-only to it for the run, withdrawn after) and serves the same notes."""
    (spare,), receiver = SPARE, RECEIVERS[0]
    groups = {"app_servers": [spare.name], "backup_servers": [receiver.name]}
    env = {"TESTBED_GROUPS": json.dumps(groups)}
    apps = ("--data", f"apps={json.dumps(APPS[:1])}")
    pyinfra([spare, receiver], workdir, "deploy.py", *apps, env_extra=env).check()
    newest = kept_on_receiver(host, "notes")[-1]
    args = ("--data", "app=notes", "--data", f"from_host={host.name}", "--data", "backup=latest")
    restored = pyinfra([spare, receiver], workdir, "restore.py", *apps, *args, env_extra=env)
    assert restored.returncode == 0, restored.output[-4000:]
    assert f"restored notes from backup {newest}: healthy" in restored.output
    own = backups_of(spare, "notes")[-1]  # its own, taken right after, copied off it
    assert own > newest and f"backup {own} of notes copied to" in restored.output
    listed = pyinfra(
        [spare, receiver],
        workdir,
        "backups.py",
        *apps,
        "--data",
        f"from_host={host.name}",
        env_extra=env,
    ).check()
    assert f"from {host.name}: " in listed.output and newest in listed.output
    assert notes_in_data(spare) == notes_in_data(host) and notes_in_data(spare)
    page = spare.exec("curl -s -H 'Host: notes.test' http://127.0.0.1/").stdout
    assert sorted(notes_in_data(host))[0] in page
    offered = receiver.exec(
        "for p in /var/lib/flask-restores/.ssh/authorized_keys /var/lib/flask-restores/outgoing;"
        ' do test -e "$p" && echo "$p left"; done; true'
    )
    assert offered.stdout == ""  # withdrawn: no key reads anything, no copy left
    report = tmp_path / "report.json"
    pyinfra(
        [spare, receiver],
        workdir,
        "verify.py",
        *apps,
        env_extra={**env, "VERIFY_JSON": str(report)},
    )
    assert failing(json.loads(report.read_text()), spare) == set()
