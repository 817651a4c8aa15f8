"""A realistic app (examples/notes: a pyproject.toml package with an app factory, SQLite in
its instance folder, an init command, migrations, a stylesheet; the sqlite3 shell among its
apt_packages) goes to a fresh host with settings only, and lives through one-off commands, a
redeploy, a rollback and a failed migration without losing data or a request."""

from __future__ import annotations

import http.client
import json
import re
import shutil
import time

import pytest

from testbed.load import Load
from testbed.pyinfra_cli import pyinfra
from tests.helpers import NOTES

APP = "notes"
NAME = "notes.test"
SETTINGS = {**NOTES, "apt_packages": ["sqlite3"]}  # the operator's sqlite3 shell beside it
MIGRATE = "flask --app notes migrate"
TIMES: dict[str, float] = {}


def data_args(**overrides) -> list[str]:
    """``--data key=value`` for the settings (JSON where pyinfra's CLI parses it)."""
    args = []
    for key, value in {**SETTINGS, **overrides}.items():
        args += ["--data", f"{key}={value if isinstance(value, str) else json.dumps(value)}"]
    return args


def run(host, workdir, entry: str = "deploy.py", *args: str, **overrides):
    started = time.monotonic()
    result = pyinfra([host], workdir, entry, *data_args(**overrides), *args)
    TIMES[entry] = time.monotonic() - started
    return result


def request(host, method: str, path: str, body: dict | None = None):
    """(status, headers, text) of a request through nginx with the app's Host header."""
    conn = http.client.HTTPConnection("127.0.0.1", host.http_port, timeout=10)
    try:
        payload = json.dumps(body) if body is not None else None
        headers = {"Host": NAME, "Content-Type": "application/json"}
        conn.request(method, path, body=payload, headers=headers)
        resp = conn.getresponse()
        return resp.status, dict(resp.getheaders()), resp.read().decode()
    finally:
        conn.close()


def notes_listed(host) -> list[str]:
    status, _, text = request(host, "GET", "/notes.json")
    assert status == 200, text
    return [note["body"] for note in json.loads(text)]


def changed_app(tmp_path, name: str, title: str, migration: str | None = None) -> str:
    """A copy of the example app with another page title and maybe one more migration."""
    app = tmp_path / name
    shutil.copytree(SETTINGS["app_src"], app, ignore=shutil.ignore_patterns("__pycache__"))
    page = app / "notes/templates/index.html"
    page.write_text(page.read_text().replace("<h1>Notes</h1>", f"<h1>{title}</h1>"))
    if migration:
        (app / f"notes/migrations/{migration[0]}.sql").write_text(migration[1])
    return str(app)


@pytest.fixture(scope="module")
def host(boot, workdir):
    (host,) = boot(1)
    return host


def test_a_fresh_host_runs_the_example_app_from_settings_only(host, workdir):
    result = run(host, workdir).check()
    print(f"\n[notes] fresh deploy: {TIMES['deploy.py']:.1f} s")
    assert "migrate: applied 0001_create_note" in result.output
    assert request(host, "GET", "/health")[2] == "ok\n"
    assert request(host, "GET", "/")[0] == 200
    owner = host.exec("stat -c '%U:%G %a' /var/lib/notes/instance/notes.sqlite").stdout
    assert owner.strip() == "notes:notes 600"  # the app's UMask: its data is its own


def test_run_py_runs_one_off_commands_like_the_app(host, workdir):
    result = run(host, workdir, "run.py", command="flask --app notes init-db").check()
    assert "Initialized the database." in result.output
    failed = run(host, workdir, "run.py", command="flask --app notes no-such-command")
    assert failed.returncode != 0
    assert "No such command 'no-such-command'" in failed.output
    whoami = run(host, workdir, "run.py", command="id -un; echo $STATE_DIRECTORY; pwd").check()
    for line in ("notes", "/var/lib/notes", "/srv/notes/releases/"):
        assert re.search(rf"\] {line}", whoami.output), whoami.output[-2000:]


def test_data_lives_through_a_redeploy_under_load(host, workdir, tmp_path):
    for body in ("first note", "second note"):
        assert request(host, "POST", "/notes", {"body": body})[0] == 201
    migration = ("0003_note_pinned", "ALTER TABLE note ADD COLUMN pinned INTEGER DEFAULT 0;")
    new = changed_app(tmp_path, "v2", "My notes", migration)
    with Load(host.http_port, path="/notes.json", host_header=NAME) as load:
        load.wait_for(50)
        result = run(host, workdir, app_src=new).check()
        load.wait_for(len(load.samples) + 100)
    print(f"\n[notes] redeploy: {TIMES['deploy.py']:.1f} s; {load.summary()}")
    assert load.failed == [], load.summary()
    assert result.output.count("migrate: applied 0003_note_pinned") == 1
    assert notes_listed(host) == ["second note", "first note"]
    assert "<h1>My notes</h1>" in request(host, "GET", "/")[2]
    again = run(host, workdir, app_src=new).check()
    assert again.changed == 0
    assert "migrate:" not in again.output  # no release command on a no-op run


def test_static_files_come_from_nginx_even_with_uwsgi_stopped(host):
    status, headers, text = request(host, "GET", "/static/style.css")
    assert status == 200 and "font-family" in text
    assert headers["Cache-Control"] == "max-age=3600"
    host.exec("systemctl stop notes.service notes.socket")
    try:
        assert request(host, "GET", "/static/style.css")[0] == 200
        assert request(host, "GET", "/")[0] == 502
    finally:
        host.exec("systemctl start notes.socket notes.service")


def test_rollback_keeps_the_data(host, workdir):
    result = run(host, workdir, "rollback.py").check()
    print(f"\n[notes] rollback: {TIMES['rollback.py']:.1f} s")
    assert f"$ {MIGRATE}" not in result.output  # no release command for an old release
    assert "<h1>Notes</h1>" in request(host, "GET", "/")[2]
    assert notes_listed(host) == ["second note", "first note"]


def test_a_failing_release_command_never_goes_live(host, workdir, tmp_path):
    broken = changed_app(tmp_path, "v3", "Broken", ("0004_broken", "ALTER TABLE nope ADD x;"))
    with Load(host.http_port, path="/", host_header=NAME) as load:
        load.wait_for(20)
        result = run(host, workdir, app_src=broken)
        load.wait_for(len(load.samples) + 50)
    assert result.returncode != 0
    assert f"release_command {MIGRATE!r} failed (exit 1)" in result.output
    assert "no such table: nope" in result.output  # the command's own output
    assert load.failed == [], load.summary()
    assert all("<h1>Notes</h1>" in s.body for s in load.samples)
    assert notes_listed(host) == ["second note", "first note"]


def test_verify_proves_data_shared_paths_and_static(host, workdir):
    result = run(host, workdir, "verify.py").check()
    for line in (
        "data directory writable by the service",
        "shared instance linked",
        "shared folder instance",
        "static /static/ served by nginx",
        "apt_packages installed",
    ):
        assert any(
            line in row and row.rstrip().endswith("PASS") for row in result.output.split("\n")
        )


def test_logs_py_shows_the_apps_journal_and_nginx_errors(host, workdir):
    request(host, "GET", "/static/missing.css")
    result = run(host, workdir, "logs.py", log_lines=200).check()
    assert "journal of notes.service" in result.output
    assert "WSGI app 0 (mountpoint='') ready" in result.output
    assert "/srv/notes/current/static/notes/static/missing.css" in result.output
