"""The stamps, file and unit operations, facts in and commands out: which level of
changes_applied wins and what it records, the no-op paths, secret files, atomic links,
socket repairs, daemon-reload."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pyinfra.api import FileUploadCommand
from pyinfra.facts.files import File

from deploys.ops import fileops, stamps, units
from deploys.ops.facts import UnitStatus
from deploys.ops.stamps import Level, file_hashes
from tests.fakehost import MissingFact, commands, fact

CAPTURED = Path(__file__).parent / "captured"

STAMP = "/srv/a/state/a.service.applied"
FILES = {"/etc/a/uwsgi.ini": "[uwsgi]\n"}


class Changed:
    """An operation that changed the host (as changes_applied's triggers see it)."""

    def is_complete(self) -> bool:
        return True

    def did_change(self) -> bool:
        return True


def levels(drifted: bool = False, triggers: tuple = ()) -> list[Level]:
    return [
        Level("restart", "r1", ["systemctl restart a"]),
        Level("reload", "l1", ["systemctl reload a"], triggers, drifted=lambda: drifted),
    ]


def recorded(**fingerprints) -> dict:
    return {
        ("FileContents", f"path={STAMP}"): [
            json.dumps({**fingerprints, "files": file_hashes(FILES)})
        ]
    }


def stamp_written(command) -> dict:
    assert isinstance(command, FileUploadCommand) and command.dest == STAMP
    return json.loads(command.src.getvalue())


def test_the_strongest_pending_level_runs_then_everything_is_recorded(fake):
    fake(recorded(restart="old", reload="old"))
    *run, stamp = commands(stamps.changes_applied, STAMP, levels(), FILES)
    assert run == ["systemctl restart a"]
    assert stamp_written(stamp) == {"restart": "r1", "reload": "l1", "files": file_hashes(FILES)}


def test_a_pending_reload_alone_reloads(fake):
    fake(recorded(restart="r1", reload="old"))
    assert commands(stamps.changes_applied, STAMP, levels(), FILES)[:-1] == ["systemctl reload a"]


def test_nothing_pending_runs_nothing(fake):
    host = fake(recorded(restart="r1", reload="l1"))
    assert commands(stamps.changes_applied, STAMP, levels(), FILES) == []
    assert host.noops == [f"{STAMP} is up to date"]


def test_a_changed_trigger_or_a_drifted_service_applies_again(fake):
    fake(recorded(restart="r1", reload="l1"))
    for pending in (levels(triggers=(Changed(),)), levels(drifted=True)):
        assert commands(stamps.changes_applied, STAMP, pending, FILES)[:-1] == [
            "systemctl reload a"
        ]


def test_a_stamp_without_file_hashes_is_completed_without_a_restart(fake):
    fake(
        {("FileContents", f"path={STAMP}"): [json.dumps({"restart": "r1", "reload": "l1"})]}
    )  # written before hashes
    (stamp,) = commands(stamps.changes_applied, STAMP, levels(), FILES)
    assert stamp_written(stamp)["files"] == file_hashes(FILES)


def test_on_a_first_run_the_strongest_level_runs(fake):
    fake({("FileContents", f"path={STAMP}"): None})
    assert commands(stamps.changes_applied, STAMP, levels(), FILES)[:-1] == ["systemctl restart a"]


def test_a_level_an_earlier_deploy_did_not_record_runs_only_when_its_files_changed(fake):
    new_level = [Level("restart", "r1", ["systemctl restart a"], files=tuple(FILES)), levels()[1]]
    fake(recorded(reload="l1"))  # an earlier version knew no "restart" level; same files
    (stamp,) = commands(stamps.changes_applied, STAMP, new_level, FILES)
    assert stamp_written(stamp)["restart"] == "r1"  # recorded, nothing restarted
    fake({("FileContents", f"path={STAMP}"): [json.dumps({"reload": "l1", "files": {}})]})
    # a file it applies is not the one the stamp saw applied (a run killed before applying)
    assert commands(stamps.changes_applied, STAMP, new_level, FILES)[:-1] == ["systemctl restart a"]


def test_a_secret_file_is_owned_and_private_before_it_has_content(fake):
    host = fake({("Sha256File", "path=/etc/a/env"): None})
    first, upload, last = commands(fileops.secret_file, "/etc/a/env", "K=v\n", "root", "a")
    assert host.logs == ["Will write /etc/a/env (contents hidden)"]
    assert first == "touch /etc/a/env && chown root:a /etc/a/env && chmod 640 /etc/a/env"
    assert isinstance(upload, FileUploadCommand)
    assert last == "chown root:a /etc/a/env && chmod 640 /etc/a/env"


def test_an_unchanged_secret_file_is_not_shown(fake):
    import hashlib

    host = fake({("Sha256File", "path=/etc/a/env"): hashlib.sha256(b"K=v\n").hexdigest()})
    assert commands(fileops.secret_file, "/etc/a/env", "K=v\n", "root", "a") == []
    assert host.noops == ["/etc/a/env is up to date (contents hidden)"]


def test_a_fact_the_test_does_not_give_is_an_error_naming_it(fake):
    fake({("Link", "path=/srv/a/other"): None})  # the same fact with other arguments
    with pytest.raises(MissingFact, match=r"\('Link', 'path=/srv/a/current'\)"):
        commands(fileops.link_switched, "/srv/a/current", "/srv/a/releases/2")


def test_links_switch_by_renaming_a_new_link_over_the_old(fake):
    fake({("Link", "path=/srv/a/current"): {"link_target": "/srv/a/releases/1"}})
    assert commands(fileops.link_switched, "/srv/a/current", "/srv/a/releases/2") == [
        "ln -sfn /srv/a/releases/2 /srv/a/current.new && mv -Tf /srv/a/current.new /srv/a/current"
    ]
    assert commands(fileops.link_switched, "/srv/a/current", "/srv/a/releases/1") == []


def test_a_socket_gets_its_mode_and_owner_back(fake):
    sock = "/run/flask-deploy/a.sock"
    fake({("Socket", f"path={sock}"): {"mode": 666, "user": "a", "group": "a"}})
    assert commands(fileops.socket_permissions, sock, "660", "root", "www-data") == [
        f"chmod 660 {sock}",
        f"chown root:www-data {sock}",
    ]
    fake({("Socket", f"path={sock}"): {"mode": 660, "user": "root", "group": "www-data"}})
    assert commands(fileops.socket_permissions, sock, "660", "root", "www-data") == []


def unit(name: str = "a.service", **status) -> dict:
    """The facts of a host where systemd's unit ``name`` is loaded, with ``status``."""
    return {
        fact(UnitStatus, unit=name, along=()): {"LoadState": "loaded", "DropInPaths": [], **status}
    }


def test_daemon_reload_when_systemd_has_a_stale_or_no_copy_or_misses_a_drop_in(fake):
    drop_in = "/etc/systemd/system/a.service.d/sandbox.conf"
    for status in ({"NeedDaemonReload": True}, {"LoadState": "not-found"}, {}):
        fake(unit(**status))
        reload = commands(units.unit_loaded, "a.service", (drop_in,))
        assert reload == ["systemctl daemon-reload"]
    fake(unit(DropInPaths=[drop_in]))
    assert commands(units.unit_loaded, "a.service", (drop_in,)) == []


def test_a_unit_is_started_stopped_enabled_and_disabled_from_one_read(fake):
    def status(captured: str, unit: str) -> dict:
        fact = UnitStatus()
        fact.command(unit)
        return fact.process((CAPTURED / captured).read_text().splitlines())

    fake(
        {
            fact(UnitStatus, unit="a.service", along=()): status(
                "unit-active.txt", "myproject.service"
            )
        }
    )
    assert commands(units.unit_state, "a.service", running=True, enabled=True) == []
    assert commands(units.unit_state, "a.service", running=False, enabled=False) == [
        "systemctl stop a.service",
        "systemctl disable a.service",
    ]
    assert commands(units.unit_state, "a.service", running=False) == ["systemctl stop a.service"]
    fake(
        {fact(UnitStatus, unit="a.service", along=()): status("unit-missing.txt", "nosuch.service")}
    )
    assert commands(units.unit_state, "a.service", running=False, enabled=False) == []
    assert commands(units.unit_state, "a.service", running=True, enabled=True) == [
        "systemctl start a.service",
        "systemctl enable a.service",
    ]
    fake(unit("a.timer", ActiveState="failed", UnitFileState="disabled"))
    assert commands(units.unit_state, "a.timer", enabled=True) == [
        "systemctl start a.timer",
        "systemctl enable a.timer",
    ]


def test_a_ca_bundle_the_app_could_change_is_refused(fake):
    from pyinfra.api.exceptions import PyinfraError

    from deploys.stack.https import trusted_bundle

    root_file, root_dir = {"user": "root", "mode": 644}, {"user": "root", "mode": 755}
    fake({("File", "path=/etc/ca/b.pem"): root_file, ("Directory", "path=/etc/ca"): root_dir})
    trusted_bundle("/etc/ca/b.pem")
    for facts in (
        {("File", "path=/etc/ca/b.pem"): None, ("Directory", "path=/etc/ca"): root_dir},  # missing
        {
            ("File", "path=/etc/ca/b.pem"): {"user": "app", "mode": 644},
            ("Directory", "path=/etc/ca"): root_dir,
        },
        {
            ("File", "path=/etc/ca/b.pem"): root_file,
            ("Directory", "path=/etc/ca"): {"user": "root", "mode": 777},
        },
    ):
        fake(facts)
        with pytest.raises(PyinfraError, match=r"acme_ca_bundle: /etc/ca/b\.pem"):
            trusted_bundle("/etc/ca/b.pem")


def test_a_venv_is_built_beside_the_live_one_and_marked_complete_last(fake):
    from deploys.stack.virtualenv import built_venv

    venv = "/srv/a/venvs/0123"
    fake({fact(File, path=f"{venv}/.complete", _env={}): None})
    assert commands(built_venv, venv, f"{venv}.requirements.txt", ["pyuwsgi==2.0.30.post1"]) == [
        f"rm -rf {venv} && python3 -m venv {venv}",
        f"{venv}/bin/pip install --quiet -r {venv}.requirements.txt pyuwsgi==2.0.30.post1",
        f"touch {venv}/.complete",
    ]
    uv = "/usr/local/lib/flask-deploy/uv-0.13.9/bin/uv"
    fake({fact(File, path=f"{venv}/.complete", _env={}): None})
    assert commands(built_venv, venv, f"{venv}.requirements.txt", [], exact=True, uv=uv)[1] == (
        f"{uv} pip install --quiet --python {venv}/bin/python --compile-bytecode"
        f" --require-hashes --no-deps -r {venv}.requirements.txt "
    )
    host = fake({fact(File, path=f"{venv}/.complete", _env={}): {"size": 0}})
    assert commands(built_venv, venv, f"{venv}.requirements.txt", []) == []
    assert host.noops == [f"virtualenv {venv} is complete"]
