"""The release operations, facts in, commands out (pyinfra's own style of operation test):
the order of the unpack's commands, the sandboxed app commands, and the no-op paths."""

from __future__ import annotations

from pyinfra.api import FileUploadCommand, FunctionCommand

from deploys.config.layout import Layout
from deploys.config.settings import load_settings
from deploys.release import gate
from deploys.release import upload as release_files
from tests.fakehost import commands

NOTES = {
    "app_name": "notes",
    "app_src": "examples/notes",
    "app_module": "notes:create_app()",
    "shared_paths": ["instance", "uploads/avatars"],
    "static": {"/static": "notes/static"},
    "release_command": ["flask --app notes migrate"],
}
RELEASE = "/srv/notes/releases/0123456789abcdef"


def shown_text(command) -> str:
    assert isinstance(command, FunctionCommand)
    return command.args[0]


def test_unpack_links_shared_paths_only_after_chgrp_and_copies_static_for_nginx(fake):
    fake({("File", f"path={RELEASE}/.unpacked"): None})
    s = load_settings(NOTES)
    layout = Layout.of(s)
    prepare, upload, unpack = commands(
        release_files.release_unpacked,
        RELEASE,
        s.app_files,
        "notes",
        {p: layout.shared(p) for p in s.shared_paths},
        ["notes/static"],
    )
    assert prepare == (
        f"rm -rf {RELEASE}/app {RELEASE}/app.new {RELEASE}/static {RELEASE}/static.new"
        f" && install -d -m 750 {RELEASE}/app.new && chmod 711 {RELEASE}"
        f" && install -m 600 /dev/null {RELEASE}/app.tar.gz"
    )
    assert isinstance(upload, FileUploadCommand)
    steps = unpack.split(" && ")
    chgrp = steps.index(f"chgrp -R notes {RELEASE}/app.new")
    links = [i for i, step in enumerate(steps) if step.startswith("ln -sn")]
    assert steps[links[0]] == f"ln -sn /var/lib/notes/instance {RELEASE}/app.new/instance"
    assert steps[links[1]] == (
        f"ln -sn /var/lib/notes/uploads/avatars {RELEASE}/app.new/uploads/avatars"
    )
    assert min(links) > chgrp  # no recursive root command ever meets a link to the app's data
    assert f"mkdir -p {RELEASE}/app.new/uploads" in steps[:chgrp]
    assert f"cp -R {RELEASE}/app.new/notes/static/. {RELEASE}/static.new/notes/static/" in steps
    assert f"chgrp -R www-data {RELEASE}/static.new" in steps
    assert steps[-2:] == [f"mv {RELEASE}/app.new {RELEASE}/app", f"touch {RELEASE}/.unpacked"]


def test_an_unpacked_release_is_left_alone(fake):
    host = fake({("File", f"path={RELEASE}/.unpacked"): {"size": 0}})
    s = load_settings(NOTES)
    assert commands(release_files.release_unpacked, RELEASE, s.app_files, "notes", {}, []) == []
    assert host.noops == [f"{RELEASE} is unpacked"]


def test_missing_shared_folders_are_made_by_the_app_in_its_sandbox(fake):
    fake(
        {
            ("Directory", "path=/var/lib/notes/instance"): {"mode": 750},
            ("Directory", "path=/var/lib/notes/uploads/avatars"): None,
        }
    )
    s = load_settings(NOTES)
    (command,) = commands(release_files.shared_folders, Layout.of(s), s, RELEASE)
    assert command == (
        "python3 /usr/local/lib/flask-deploy/release_gate.py run"
        f" --release={RELEASE} --module='notes:create_app()' --user=notes"
        " --sandbox=/etc/systemd/system/notes.service.d/sandbox.conf --workdir=/"
        " -- 'mkdir -p -m 750 -- /var/lib/notes/uploads/avatars'"
    )


def test_existing_shared_folders_need_nothing(fake):
    present = {"mode": 750}
    host = fake(
        {
            ("Directory", "path=/var/lib/notes/instance"): present,
            ("Directory", "path=/var/lib/notes/uploads/avatars"): present,
        }
    )
    s = load_settings(NOTES)
    assert commands(release_files.shared_folders, Layout.of(s), s, RELEASE) == []
    assert host.noops == ["the shared folders exist"]


def test_release_check_runs_the_release_commands_and_shows_their_output(fake):
    fake({("Link", "path=/srv/notes/current"): None})
    s = load_settings(NOTES)
    (command,) = commands(gate.release_checked, Layout.of(s), RELEASE, s, s.release_command)
    text = shown_text(command)
    assert text.startswith(
        f"python3 /usr/local/lib/flask-deploy/release_gate.py check --release={RELEASE}"
    )
    assert " --command='flask --app notes migrate' --path=/ " in text


def test_a_live_release_is_not_checked_again(fake):
    host = fake({("Link", "path=/srv/notes/current"): {"link_target": RELEASE}})
    s = load_settings(NOTES)
    assert commands(gate.release_checked, Layout.of(s), RELEASE, s, ["x"]) == []
    assert host.noops == [f"{RELEASE} is live already"]


def test_one_off_commands_run_in_the_live_release(fake):
    fake()
    s = load_settings(NOTES)
    (command,) = commands(gate.app_command, Layout.of(s), s, "flask --app notes init-db")
    assert shown_text(command) == (
        "python3 /usr/local/lib/flask-deploy/release_gate.py run --release=/srv/notes/current"
        " --module='notes:create_app()' --user=notes"
        " --sandbox=/etc/systemd/system/notes.service.d/sandbox.conf"
        " -- 'flask --app notes init-db'"
    )
    assert command.args[1]["_sudo"] is True  # run like every other command


def test_the_restart_names_the_service_its_handover_and_their_stats(fake):
    fake()
    s = load_settings(NOTES)
    assert gate.restart_command(Layout.of(s), s) == (
        "python3 /usr/local/lib/flask-deploy/release_gate.py restart --timeout=30"
        " --current=/srv/notes/current --service=notes.service --stats=/run/notes/stats.sock"
        " --handover=notes-handover.service --handover-stats=/run/notes-handover/stats.sock"
        " --user=notes --processes=5 --record=/srv/notes/state/service.record"
    )
