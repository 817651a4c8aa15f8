"""Apps claim names on a host (a user, /etc/<app>, /var/lib/<app>): what belongs to
something else is refused before anything changes, and apps the settings no longer list are
reported, not touched."""

import pytest

from deploys.appuser import foreign_claims
from deploys.plan import load_plan
from deploys.retire import report_unlisted_apps
from deploys.settings import SettingsError, load_settings

OURS = {"home": "/srv/myproject"}


def dir_of(user: str, group: str) -> dict:
    return {"user": user, "group": group, "mode": 750}


def test_a_fresh_host_and_our_own_deployment_claim_nothing(fake):
    fake()
    assert foreign_claims(load_settings({})) == []
    fake(
        {
            ("Account", None): OURS,
            ("Directory", "/etc/myproject"): dir_of("root", "myproject"),
            ("Directory", "/var/lib/myproject"): dir_of("myproject", "myproject"),
        }
    )
    assert foreign_claims(load_settings({})) == []


def test_a_packages_folder_is_not_handed_to_an_app(fake):
    fake({("PathsPresent", None): ["/etc/nginx", "/var/lib/nginx"]})
    assert foreign_claims(load_settings({"app_name": "nginx"})) == [
        "app_name: /etc/nginx exists on web1 and is not this app's: pick another app_name",
        "app_name: /var/lib/nginx exists on web1 and is not this app's: pick another app_name",
    ]


def test_an_existing_user_of_something_else_is_refused(fake):
    fake({("Account", None): {"home": "/var/lib/postgresql"}})
    (problem,) = foreign_claims(load_settings({"app_name": "postgres"}))
    assert problem.startswith("app_user: the user 'postgres' exists on web1 and is not")


def test_a_group_or_a_packages_unit_is_refused(fake):
    fake({("Groups", None): ["adm", "systemd-journal"]})
    (problem,) = foreign_claims(load_settings({"app_name": "systemd-journal"}))
    assert "the group 'systemd-journal' exists on web1: the app would run with its" in problem
    fake({("UnitStatus", None): {"LoadState": "loaded"}})
    problems = foreign_claims(load_settings({"app_name": "certbot"}))
    assert "app_name: systemd has a unit certbot.service on web1" in problems[0]


def test_our_own_folders_given_away_are_refused(fake):
    fake(
        {
            ("Account", None): OURS,
            ("Directory", "/etc/myproject"): dir_of("root", "adm"),
        }
    )
    assert foreign_claims(load_settings({})) == [
        "app_name: /etc/myproject exists on web1 and belongs to adm, not to this app: remove"
        " it or hand it to the app's user"
    ]


def test_apps_no_longer_listed_are_reported_not_touched(fake):
    host = fake({("HostedApps", None): {"hello": "active", "notes": "active"}})
    plan = load_plan(
        {"app_name": "notes", "app_src": "examples/notes", "app_module": "notes:create_app()"}
    )
    assert report_unlisted_apps(plan) == ["hello"]
    assert "app hello is on this host (active) but not in apps" in host.logs[0]
    assert "retired_apps" in host.logs[0]
    retired = load_plan({"retired_apps": ["hello", "notes"]})
    assert report_unlisted_apps(retired) == []


def test_an_unlisted_default_server_is_refused_naming_the_fix(fake):
    """Every host has one default server, a listed app or the catch-all: an old app that
    still is one would fail nginx -t at the first site change (and on disk after it)."""
    fake(
        {
            ("HostedApps", None): {"myproject": "active"},
            ("FileContents", "/etc/nginx/sites-enabled/myproject"): [
                "server {",
                "    listen 80 default_server;",
                "    listen [::]:80 default_server;",
                "    server_name _;",
            ],
        }
    )
    named = load_plan({"app_name": "notes", "server_name": ["notes.test"]})
    with pytest.raises(SettingsError) as refused:
        report_unlisted_apps(named)
    assert (
        "retired_apps: myproject is on web1, not in apps, and is the default server (answers"
        " any host name): nginx cannot have two, and this run needs the default for its"
        " catch-all (closing unknown names): add myproject to retired_apps, or list it in apps"
    ) in str(refused.value)
    with pytest.raises(SettingsError, match="needs the default for notes: add myproject"):
        report_unlisted_apps(load_plan({"app_name": "notes"}))
    assert (
        report_unlisted_apps(load_plan({"app_name": "notes", "retired_apps": ["myproject"]})) == []
    )
