"""Backups (#30) without a host: the scripts that read an app's data as the app and put it
back (run here on real data folders, a writer busy in the SQLite database), the backup
unit's arguments, the settings."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import sqlite3
import subprocess
import sys
import tarfile
import threading
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import pytest
from pyinfra.api.exceptions import PyinfraError

from deploys.config.plan import HostPlan
from deploys.config.settings import SettingsError, load_settings
from deploys.hostside.backup import APP_SIDE, REPORT, copied_without_links
from deploys.hostside.cli import main as cli_main
from deploys.hostside.restore import APP_SIDE as RESTORE_SIDE
from deploys.hostside.restore import RestoreJob, served_snapshot
from deploys.ops.render import render
from deploys.stack import backup_server
from deploys.stack.backups import (
    DataNow,
    backup_arguments,
    backup_units,
    stopped_for_restore,
)
from deploys.stack.fleet import Fleet, as_served
from deploys.stack.workers import processes, systemd_quoted


def read_as_the_app(data) -> tuple[tarfile.TarFile, str]:
    """The app side's tar stream of ``data`` (no Redis), and its report line."""
    proc = subprocess.run(
        [sys.executable, "-I", "-c", APP_SIDE, str(data), "", ""],
        capture_output=True,
        check=True,
        timeout=60,
    )
    return tarfile.open(fileobj=io.BytesIO(proc.stdout)), proc.stderr.decode()


def test_the_data_folder_is_read_consistently_while_the_app_writes(tmp_path):
    data = tmp_path / "data"
    (data / "instance").mkdir(parents=True)
    database = data / "instance/app.sqlite"
    db = sqlite3.connect(database)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("CREATE TABLE note (body TEXT)")
    db.executemany("INSERT INTO note VALUES (?)", [(f"note {n}",) for n in range(500)])
    db.commit()
    (data / "upload.txt").write_text("hello")
    os.symlink("/etc/passwd", data / "planted")  # archived as a link, never read
    os.mkfifo(data / "fifo")  # neither a file nor a folder: left out
    stop = threading.Event()

    def writer():
        conn = sqlite3.connect(database)
        while not stop.is_set():
            conn.execute("INSERT INTO note VALUES ('during')")
            conn.commit()

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        tar, said = read_as_the_app(data)
    finally:
        stop.set()
        thread.join()
    names = tar.getnames()
    assert "data/instance/app.sqlite" in names and "data/upload.txt" in names
    assert not any(n.endswith(("-wal", "-shm")) for n in names) and "data/fifo" not in names
    link = tar.getmember("data/planted")
    assert link.issym() and link.linkname == "/etc/passwd"
    copy = tmp_path / "copy.sqlite"
    copy.write_bytes(tar.extractfile("data/instance/app.sqlite").read())
    restored = sqlite3.connect(copy)
    assert restored.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert (
        restored.execute("SELECT count(*) FROM note WHERE body LIKE 'note %'").fetchone()[0] == 500
    )
    report = said.strip().splitlines()[-1]
    assert report.startswith(REPORT) and '"instance/app.sqlite": "ok"' in report
    assert '"links": 1' in report and '"files": 1' in report


def test_the_backup_unit_covers_what_the_app_has_here():
    settings = load_settings({"backups": True, "postgresql": True, "redis": True})
    args = backup_arguments(settings)
    assert "--data=/var/lib/myproject --root=/var/backups/flask-deploy/myproject" in args
    assert "--database=myproject" in args
    assert "--redis-socket=/run/myproject-redis/redis.sock" in args
    remote = settings.model_copy(update={"database_server": "10.0.0.20"})
    assert "--database" not in backup_arguments(remote)  # on the database server
    served = backup_arguments(settings, serving="10.0.0.20")  # on the database server itself
    assert "--data=" not in served and "--sandbox" not in served
    assert "--database=myproject" in served
    assert (
        "--redis-socket=/run/myproject-redis/redis.sock --redis-password=/etc/flask-deploy/"
        f"databases/myproject.password --redis-limit={(2 * 128 + 64) << 20}"
        " --redis-data=/var/lib/private/myproject-redis"
    ) in served
    assert stopped_for_restore(settings, None) == (
        "myproject-backup.timer",
        "myproject-redis.service",
    )


def test_a_database_servers_backup_reads_redis_snapshot_through_no_link(tmp_path):
    """Redis' folder is another user's: its snapshot is copied when it is a regular file,
    refused when it (or the folder) is a link, even to a file root may read."""
    redis = tmp_path / "redis"
    redis.mkdir()
    (redis / "dump.rdb").write_bytes(b"REDIS0011 snapshot")
    copied_without_links(redis / "dump.rdb", tmp_path / "out", 18)
    assert (tmp_path / "out").read_bytes() == b"REDIS0011 snapshot"
    with pytest.raises(RuntimeError, match="larger than 17 bytes"):  # a snapshot grown too big
        copied_without_links(redis / "dump.rdb", tmp_path / "big", 17)
    (tmp_path / "secret").write_text("root's")
    (redis / "dump.rdb").unlink()
    (redis / "dump.rdb").symlink_to(tmp_path / "secret")
    with pytest.raises(OSError):
        copied_without_links(redis / "dump.rdb", tmp_path / "out2", 100)
    (tmp_path / "linked").symlink_to(tmp_path)
    with pytest.raises(OSError):
        copied_without_links(tmp_path / "linked" / "secret", tmp_path / "out3", 100)
    assert not (tmp_path / "out2").exists() and not (tmp_path / "out3").exists()


def test_a_database_servers_restore_swaps_the_snapshot_in_and_back(tmp_path):
    redis = tmp_path / "redis"
    redis.mkdir()
    (redis / "dump.rdb").write_bytes(b"now")
    (tmp_path / "backup.rdb").write_bytes(b"then")
    job = RestoreJob("board", "board", tmp_path, "latest", (), redis_data=str(redis))
    served_snapshot(job, "swap", tmp_path / "backup.rdb")
    assert (redis / "dump.rdb").read_bytes() == b"then"
    assert (redis / "dump.rdb").stat().st_mode & 0o777 == 0o600
    served_snapshot(job, "back")
    assert (redis / "dump.rdb").read_bytes() == b"now"
    served_snapshot(job, "swap", tmp_path / "backup.rdb")
    served_snapshot(job, "done")
    assert sorted(p.name for p in redis.iterdir()) == ["dump.rdb"]
    assert (redis / "dump.rdb").read_bytes() == b"then"
    linked = replace(job, redis_data=str(tmp_path / "elsewhere"))
    (tmp_path / "elsewhere").symlink_to(redis)
    with pytest.raises(OSError):
        served_snapshot(linked, "swap", tmp_path / "backup.rdb")


@pytest.mark.parametrize(
    ("data", "named"),
    [
        ({"backups": True, "backup_on_calendar": "every tuesday"}, "backup_on_calendar"),
        ({"backup_keep": 0}, "backup_keep"),
        ({"app_name": "shop-backup"}, "app_name"),
    ],
)
def test_bad_backup_settings_are_refused_naming_the_key(data, named):
    with pytest.raises(SettingsError, match=named):
        load_settings(data)


def restore_step(step: str, data, tar: bytes = b"", redis_data="") -> None:
    """One step of the restore's app side, run here as it runs as the app."""
    subprocess.run(
        [
            sys.executable,
            "-I",
            "-c",
            RESTORE_SIDE,
            step,
            str(data),
            "20261205T030000Z",
            str(redis_data),
        ],
        input=tar,
        check=True,
        timeout=60,
    )


def test_a_restore_swaps_the_data_in_and_back_out(tmp_path):
    data, redis = tmp_path / "data", tmp_path / "redis"
    (data / "instance").mkdir(parents=True)
    redis.mkdir()
    (data / "instance/notes.txt").write_text("then")
    os.symlink("/etc/passwd", data / "link")
    archive, _ = read_as_the_app(data)
    stream = io.BytesIO()
    with tarfile.open(fileobj=stream, mode="w") as tar:  # the backup's archive, and a snapshot
        for member in archive.getmembers():
            tar.addfile(member, archive.extractfile(member) if member.isfile() else None)
        snapshot = tarfile.TarInfo("redis/dump.rdb")
        snapshot.size = 4
        tar.addfile(snapshot, io.BytesIO(b"REDI"))
    (data / "instance/notes.txt").write_text("now")
    (data / "stray").write_text("not in the backup")
    (redis / "dump.rdb").write_bytes(b"OLD!")
    restore_step("unpack", data, stream.getvalue(), redis)
    restore_step("swap", data, redis_data=redis)
    assert (data / "instance/notes.txt").read_text() == "then" and not (data / "stray").exists()
    assert (
        os.readlink(data / "link") == "/etc/passwd" and (redis / "dump.rdb").read_bytes() == b"REDI"
    )
    restore_step("back", data, redis_data=redis)  # as when the app does not come up healthy
    assert (data / "instance/notes.txt").read_text() == "now" and (data / "stray").exists()
    assert (redis / "dump.rdb").read_bytes() == b"OLD!"
    assert sorted(os.listdir(data)) == ["instance", "link", "stray"]  # nothing left beside
    assert os.listdir(redis) == ["dump.rdb"]


def test_a_restore_stops_timers_first_and_redis_last():
    settings = load_settings(
        {
            "backups": True,
            "redis": True,
            "workers": {"tasks": "rq worker"},
            "timers": {"digest": {"command": "flask digest", "on_calendar": "daily"}},
        }
    )
    units = stopped_for_restore(settings, processes(settings, True, True))
    assert units == (
        "myproject-backup.timer",
        "myproject-timer-digest.timer",
        "myproject-worker-tasks@1.service",
        "myproject.socket",
        "myproject.service",
        "myproject-redis.service",
    )


# A backup server taking in pushed backups (hostside/accept.py), on real folders here: the
# pushing user's incoming tree is the attacker's; root's store is what must hold.
NAME = "20261205T030000Z"


def pushed_backup(incoming, name: str = NAME, parts=None, app: str = "board") -> dict:
    """A backup as backup.py pushes it: its parts, then ``<name>.json``; its manifest."""
    folder = incoming / "web1" / app / name
    folder.mkdir(parents=True)
    parts = parts or {"data.tar": b"the data", "postgresql.dump": b"the dump"}
    listed = []
    for part, content in parts.items():
        (folder / part).write_bytes(content)
        listed.append({"name": part, "size": len(content), "sha256": sha256(content)})
    manifest = {"app": app, "backup": name, "parts": listed, "release": "abc"}
    (incoming / "web1" / app / f"{name}.json").write_text(json.dumps(manifest))
    return manifest


def sha256(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


def accepted(tmp_path) -> tuple[int, str, str]:
    """release_gate.py accept's exit status, stdout and stderr, for web1/board."""
    args = [f"--incoming={tmp_path / 'incoming'}", f"--store={tmp_path / 'store'}"]
    args += [f"--quarantine={tmp_path / 'quarantine'}", "--pushed=web1/board"]
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = cli_main(["accept", *args, "--pushed=web1/notes"])
    return status, out.getvalue(), err.getvalue()


@pytest.fixture
def incoming(tmp_path):
    for app in ("board", "notes"):
        (tmp_path / "incoming" / "web1" / app).mkdir(parents=True)
    return tmp_path / "incoming"


def test_a_pushed_backup_is_taken_in_checked_and_root_only(tmp_path, incoming):
    manifest = pushed_backup(incoming)
    status, said, _ = accepted(tmp_path)
    kept = tmp_path / "store/web1/board" / NAME
    assert status == 0 and f"backup web1/board/'{NAME}.json' taken in: 2 parts" in said
    assert (kept / "data.tar").read_bytes() == b"the data"
    assert json.loads((kept / "manifest.json").read_text()) == manifest
    assert {oct(p.stat().st_mode & 0o777) for p in kept.iterdir()} == {"0o600"}
    assert oct(kept.stat().st_mode & 0o777) == "0o700"
    assert list((incoming / "web1/board").iterdir()) == []  # taken away from the pusher


@pytest.mark.parametrize(
    "attack, reason",
    [
        ("wrong hash", "data.tar does not match its manifest"),
        ("part is a link", "Too many levels of symbolic links"),
        ("folder is a link", "Not a directory"),
        ("part is a FIFO", "data.tar is not a regular file"),
        ("extra file", "files the manifest does not name: ['.bashrc']"),
        ("manifest names another", "its manifest names another backup or no parts"),
        ("part escapes", "names a part that cannot be one"),
        ("manifest a list", "its manifest is not a JSON object"),
        ("manifest nested", "its manifest is not JSON"),
        ("part larger", "data.tar does not match its manifest (size)"),
        ("manifest a folder", "its manifest is not a regular file"),
    ],
)
def test_a_forged_push_is_refused_and_root_reads_nothing_through_it(
    tmp_path, incoming, attack, reason
):
    secret = tmp_path / "root-secret"
    secret.write_bytes(b"root's secret")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "data.tar").write_bytes(b"root's secret")
    manifest = pushed_backup(incoming)
    folder, index = incoming / "web1/board" / NAME, incoming / f"web1/board/{NAME}.json"
    if attack == "wrong hash":
        (folder / "data.tar").write_bytes(b"the date")
    elif attack == "part is a link":
        (folder / "data.tar").unlink()
        (folder / "data.tar").symlink_to(secret)
    elif attack == "folder is a link":
        for part in folder.iterdir():
            part.unlink()
        folder.rmdir()
        folder.symlink_to(elsewhere)
    elif attack == "part is a FIFO":
        (folder / "data.tar").unlink()
        os.mkfifo(folder / "data.tar")
    elif attack == "extra file":
        (folder / ".bashrc").write_text("evil")
    elif attack == "manifest names another":
        index.write_text(json.dumps({**manifest, "backup": "20200101T000000Z"}))
    elif attack == "manifest a list":
        index.write_text("[]")
    elif attack == "manifest nested":
        index.write_text("[" * 200_000)
    elif attack == "part larger":
        (folder / "data.tar").write_bytes(b"the data" * 100_000)
    elif attack == "manifest a folder":
        index.unlink()
        (index / "inner").mkdir(parents=True)  # a folder in it: cannot be removed, moved aside
    elif attack == "part escapes":
        forged = [{"name": "../../../root-secret", "size": 13, "sha256": sha256(b"root's secret")}]
        index.write_text(json.dumps({**manifest, "parts": forged}))
    pushed_backup(incoming, app="notes")  # the next pair's: taken in all the same
    status, out, said = accepted(tmp_path)
    assert status == 1 and reason in said, said
    assert f"backup web1/notes/'{NAME}.json' taken in" in out
    assert not (tmp_path / "store/web1/board" / NAME).exists()
    assert list((tmp_path / "store/web1/board").iterdir()) == []  # no partial left
    assert list((incoming / "web1/board").iterdir()) == []  # removed, links not followed
    assert secret.read_bytes() == b"root's secret" and (elsewhere / "data.tar").exists()


def test_a_kept_backup_is_never_replaced_and_a_linked_app_folder_is_refused(tmp_path, incoming):
    pushed_backup(incoming)
    assert accepted(tmp_path)[0] == 0
    pushed_backup(incoming, parts={"data.tar": b"forged history"})
    status, _, said = accepted(tmp_path)
    assert status == 1 and "kept already: never replaced" in said
    assert (tmp_path / "store/web1/board" / NAME / "data.tar").read_bytes() == b"the data"
    (incoming / "web1/board").rmdir()
    (incoming / "web1/board").symlink_to(tmp_path / "store/web1/board")
    status, _, said = accepted(tmp_path)
    assert status == 1 and "cannot be read safely" in said
    assert (tmp_path / "store/web1/board" / NAME / "data.tar").read_bytes() == b"the data"


class Member(SimpleNamespace):
    """An inventory host: its name and data."""


def inventory(groups: dict[str, list[Member]]) -> SimpleNamespace:
    return SimpleNamespace(get_group=lambda name, default=None: groups.get(name, default))


WEB1 = Member(name="web1.example.com", data={"private_address": "10.0.0.11"})
VAULT = Member(name="vault", data={"private_address": "10.0.0.30"})


def test_copies_need_backups_and_a_group_of_backup_servers(monkeypatch):
    with pytest.raises(SettingsError, match="backup_copy_to: myproject takes no backups"):
        load_settings({"backup_copy_to": "backup_servers"})
    settings = load_settings({"backups": True, "backup_copy_to": "offsite"})
    state = SimpleNamespace(inventory=inventory({"backup_servers": [VAULT]}))
    monkeypatch.setattr(backup_server, "state", state)
    with pytest.raises(PyinfraError, match="'offsite' is missing or empty; put the backup_serv"):
        backup_server.copy_targets(settings)
    state.inventory = inventory({"backup_servers": [VAULT], "offsite": [VAULT, WEB1]})
    with pytest.raises(PyinfraError, match=r"holds web1\.example\.com, not in the backup_servers"):
        backup_server.copy_targets(settings)
    state.inventory = inventory({"backup_servers": [VAULT], "offsite": [VAULT]})
    assert backup_server.copy_arguments(settings) == (
        " --copy-to=flask-backups@10.0.0.30 --copy-key=/etc/flask-deploy/backup-copy/id_ed25519"
        " --known-hosts=/etc/flask-deploy/backup-copy/known_hosts"
    )
    assert "--copy-to" not in backup_arguments(load_settings({"backups": True}))


def test_each_app_server_may_run_rrsync_alone_write_only_in_its_own_folder(monkeypatch):
    keys = {"web1.example.com": ("", "ssh-ed25519 AAAA1 one"), "@local/2": ("", "ssh-ed25519 B")}
    monkeypatch.setattr(backup_server, "_KEYS", keys)
    fleet = Fleet((), ("10.0.0.11", "app2.internal"), False, names=tuple(keys))
    pushing = {"web1.example.com": ["board"], "@local/2": ["x"]}
    rrsync = "/usr/bin/rrsync -wo -no-del -no-lock -munge /var/lib/flask-backups/incoming"
    assert backup_server.authorized_keys(pushing, fleet).splitlines() == [
        f'restrict,command="{rrsync}/_local_2" ssh-ed25519 B',  # a name: no from=
        f'restrict,from="10.0.0.11",command="{rrsync}/web1.example.com" ssh-ed25519 AAAA1 one',
    ]
    assert backup_server.server_folder("..") == "_."


def test_the_database_server_pushes_the_backups_of_the_apps_with_data_there(monkeypatch):
    """On a backup server of a fleet with a database server: the apps keep what they have
    there (known, not local), and the database server pushes for those apps alone, from its
    address, into its own folder."""
    copying = {"backups": True, "backup_copy_to": "backup_servers"}
    board = load_settings({**copying, "app_name": "board", "postgresql": True})
    notes = load_settings({**copying, "app_name": "notes"})
    fleet = Fleet(
        (), ("10.0.0.11",), False, names=("web1",), database_server="10.0.0.20",
        database_host="db1", receiving_backups=True,
    )  # fmt: skip
    plan = as_served(HostPlan((board, notes)), fleet)
    assert plan.apps[0].postgresql and not plan.apps[0].local_postgresql and not plan.postgresql
    assert not as_served(HostPlan((board,)), replace(fleet, database_server="")).apps[0].postgresql
    monkeypatch.setattr(backup_server, "host", SimpleNamespace(name="vault"))
    monkeypatch.setattr(backup_server, "copy_targets", lambda app: [VAULT])
    assert backup_server.senders(plan, fleet) == {"web1": ["board", "notes"], "db1": ["board"]}
    assert fleet.backed_up == ("web1", "db1") and fleet.address("db1") == "10.0.0.20"
    keys = {"web1": ("", "ssh-ed25519 A"), "db1": ("", "ssh-ed25519 D")}
    monkeypatch.setattr(backup_server, "_KEYS", keys)
    assert backup_server.key_line("db1", fleet, "-wo /in") == (
        'restrict,from="10.0.0.20",command="/usr/bin/rrsync -wo /in/db1" ssh-ed25519 D\n'
    )


def test_a_key_made_by_the_controller_is_one_ssh_reads(tmp_path):
    private, public = backup_server.new_key("web1.example.com")
    key = tmp_path / "id_ed25519"
    key.write_text(private)
    key.chmod(0o600)
    derived = subprocess.run(
        ["ssh-keygen", "-y", "-f", str(key)], capture_output=True, text=True, check=True
    ).stdout.split()
    assert derived == public.split()[:2]
    assert public.endswith(" flask-deploy-backups@web1.example.com")


def test_a_failing_backup_runs_backup_on_failure_in_a_sandbox_of_its_own(tmp_path):
    command = 'curl -fsS -d "backup of $BACKUP_APP failed: $MONITOR_SERVICE_RESULT" https://hook'
    settings = load_settings({"backups": True, "backup_on_failure": command})
    units = {Path(path).name: text for path, text in backup_units(settings).items()}
    assert "OnFailure=myproject-backup-failed.service" in units["myproject-backup.service"]
    failed = units["myproject-backup-failed.service"]
    assert f"ExecStart=/bin/sh -c {systemd_quoted(command)}" in failed
    assert "DynamicUser=yes" in failed and "ProtectSystem=strict" in failed
    assert "InaccessiblePaths=-/var/backups/flask-deploy/myproject -/var/lib/myproject" in failed
    for name, text in units.items():
        (tmp_path / name).write_text(text)
    verified = subprocess.run(
        ["systemd-analyze", "verify", str(tmp_path / "myproject-backup-failed.service")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (verified.returncode, verified.stdout + verified.stderr) == (0, "")
    plain = {Path(p).name for p in backup_units(load_settings({"backups": True}))}
    assert plain == {"myproject-backup.service", "myproject-backup.timer"}
    with pytest.raises(SettingsError, match=r"backup_on_failure: .* a command is one non-empty"):
        load_settings({"backups": True, "backup_on_failure": "a\nb"})
    with pytest.raises(SettingsError, match="backup_on_failure: myproject takes no backups"):
        load_settings({"backup_on_failure": "true"})
    with pytest.raises(SettingsError, match="ends like the release checks'"):
        load_settings({"app_name": "notes-backup-failed"})


def test_the_backup_servers_units_pass_systemd_analyze_verify(tmp_path):
    context = {
        "incoming": backup_server.INCOMING,
        "store": backup_server.STORE,
        "quarantine": backup_server.QUARANTINE,
        "pairs": ["web1/board", "web1/notes"],
        "gate": "/usr/local/lib/flask-deploy/release_gate.py",
    }
    for kind in ("service", "path", "timer"):
        text = render(f"backup-accept.{kind}.j2", **context)
        (tmp_path / f"{backup_server.ACCEPT}.{kind}").write_text(text)
    path = (tmp_path / f"{backup_server.ACCEPT}.path").read_text()
    assert "PathExistsGlob=/var/lib/flask-backups/incoming/web1/board/*.json" in path
    service = (tmp_path / f"{backup_server.ACCEPT}.service").read_text()
    assert " --pushed=web1/board --pushed=web1/notes\n" in service
    verified = subprocess.run(
        ["systemd-analyze", "verify", *map(str, sorted(tmp_path.iterdir()))],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (verified.returncode, verified.stdout + verified.stderr) == (0, "")


def test_what_a_restore_would_replace_is_read_in_one_command():
    fact = DataNow()
    command = fact.command(data="/var/lib/board", database="board", redis_data="/var/lib/b-r")
    assert "pg_database_size(" in command and "stat -c %s /var/lib/b-r/dump.rdb" in command
    # its lines (test_backups runs it on a host: restore.py --dry), and with nothing there
    assert fact.process(["files 7", "bytes 53248", "database 7660035", "redis 1123"]) == {
        "data": [7, 53248],
        "database": 7660035,
        "redis": 1123,
    }
    assert fact.process(["files 0", "bytes ", "database ", "redis "]) == {
        "data": [0, 0],
        "database": None,
        "redis": None,
    }


def test_a_restore_elsewhere_reads_the_newest_copy_offered_read_only(monkeypatch):
    future = {"backup": "29991231T235959Z"}  # pushed by the old server: never "latest"
    parts = {"parts": [{"name": "data.tar"}]}
    older_one, newest = {"backup": "20261201T030000Z", **parts}, {"backup": NAME, **parts}
    kept = {("vault", "web1", "notes"): [older_one, newest, future]}
    monkeypatch.setattr(backup_server, "kept_on", lambda *key: kept.get(key, []))
    state = SimpleNamespace(inventory=inventory({"backup_servers": [VAULT], "offsite": [VAULT]}))
    monkeypatch.setattr(backup_server, "state", state)
    settings = load_settings({"app_name": "notes", "backups": True, "backup_copy_to": "offsite"})
    assert backup_server.offered_backup(settings, "web1") == (VAULT, newest)
    older = settings.model_copy(update={"backup": "20261201T030000Z"})
    assert backup_server.offered_backup(older, "web1") == (VAULT, older_one)
    assert not backup_server.of_database_server(newest)
    assert backup_server.of_database_server({"parts": [{"name": "postgresql.dump"}]})
    with pytest.raises(PyinfraError, match="from_host: no backup 'latest' of notes from web9"):
        backup_server.offered_backup(settings, "web9")
    with pytest.raises(SettingsError, match=r"restore\.py takes the backup of notes from"):
        load_settings({"app_name": "notes", "backups": True, "from_host": "web1"})
    monkeypatch.setattr(backup_server, "_KEYS", {"web2": ("", "ssh-ed25519 C")})
    fleet = Fleet((), ("10.0.0.12",), False, names=("web2",))
    until = 1796482800  # 2026-12-05T15:00:00Z
    assert backup_server.restorer_keys("web2", fleet, until) == (
        'expiry-time="20261205150000Z",restrict,from="10.0.0.12",command="/usr/bin/rrsync'
        ' -ro -no-lock -munge /var/lib/flask-restores/outgoing/web2" ssh-ed25519 C\n'
    )
