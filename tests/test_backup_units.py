"""Backups (#30) without a host: the scripts that read an app's data as the app and put it
back (run here on real data folders, a writer busy in the SQLite database), the backup
unit's arguments, the settings."""

from __future__ import annotations

import io
import os
import sqlite3
import subprocess
import sys
import tarfile
import threading

import pytest

from deploys.config.settings import SettingsError, load_settings
from deploys.hostside.backup import APP_SIDE, REPORT
from deploys.hostside.restore import APP_SIDE as RESTORE_SIDE
from deploys.stack.backups import backup_arguments, stopped_for_restore
from deploys.stack.workers import processes


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
