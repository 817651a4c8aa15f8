"""Apps claim names on a host (a user, /etc/<app>, /var/lib/<app>): what belongs to
something else is refused before anything changes, and apps the settings no longer list are
reported, not touched."""

import pytest
from pyinfra.facts.files import Directory, FileContents
from pyinfra.facts.server import Groups

from deploys.config.layout import Layout
from deploys.config.plan import load_plan
from deploys.config.settings import SettingsError, load_settings
from deploys.ops.facts import UnitStatus
from deploys.stack.appuser import Account, PathsPresent, foreign_claims
from deploys.stack.retire import HostedApps, report_unlisted_apps
from tests.fakehost import fact

OURS = {"home": "/srv/myproject"}


def fresh(app: str = "myproject", **given) -> dict:
    """The facts foreign_claims reads on a host without any of ``app``'s names, then
    ``given`` (keyword: a fact's name, e.g. ``Account=OURS``; the arguments are the app's)."""
    layout = Layout.of(load_settings({"app_name": app}))
    taken = (layout.etc, layout.root, layout.data, layout.run_dir, layout.unit, layout.socket_unit)
    facts = {
        fact(Account, user=app): given.pop("Account", None),
        fact(Directory, path=layout.etc): given.pop("etc", None),
        fact(Directory, path=layout.data): given.pop("data", None),
        fact(PathsPresent, paths=taken): given.pop("PathsPresent", []),
        fact(Groups): given.pop("Groups", []),
    }
    for unit in layout.unit_names:
        loaded = given.get("UnitStatus", {}).get(unit, "not-found")
        facts[fact(UnitStatus, unit=unit, along=layout.units_read_together)] = {"LoadState": loaded}
    return facts


def dir_of(user: str, group: str) -> dict:
    return {"user": user, "group": group, "mode": 750}


def test_a_fresh_host_and_our_own_deployment_claim_nothing(fake):
    fake(fresh())
    assert foreign_claims(load_settings({})) == []
    fake(
        fresh(
            Account=OURS,
            etc=dir_of("root", "myproject"),
            data=dir_of("myproject", "myproject"),
        )
    )
    assert foreign_claims(load_settings({})) == []


def test_a_packages_folder_is_not_handed_to_an_app(fake):
    fake(fresh("nginx", PathsPresent=["/etc/nginx", "/var/lib/nginx"]))
    assert foreign_claims(load_settings({"app_name": "nginx"})) == [
        "app_name: /etc/nginx exists on web1 and is not this app's: pick another app_name",
        "app_name: /var/lib/nginx exists on web1 and is not this app's: pick another app_name",
    ]


def test_an_existing_user_of_something_else_is_refused(fake):
    fake(fresh("proxy", Account={"home": "/bin"}))  # Debian's
    (problem,) = foreign_claims(load_settings({"app_name": "proxy"}))
    assert problem.startswith("app_user: the user 'proxy' exists on web1 and is not")


def test_a_group_or_a_packages_unit_is_refused(fake):
    fake(fresh("systemd-journal", Groups=["adm", "systemd-journal"]))
    (problem,) = foreign_claims(load_settings({"app_name": "systemd-journal"}))
    assert "the group 'systemd-journal' exists on web1: the app would run with its" in problem
    fake(fresh("certbot", UnitStatus={"certbot.service": "loaded"}))
    problems = foreign_claims(load_settings({"app_name": "certbot"}))
    assert "app_name: systemd has a unit certbot.service on web1" in problems[0]


def test_our_own_folders_given_away_are_refused(fake):
    fake(fresh(Account=OURS, etc=dir_of("root", "adm")))
    assert foreign_claims(load_settings({})) == [
        "app_name: /etc/myproject exists on web1 and belongs to adm, not to this app: remove"
        " it or hand it to the app's user"
    ]


def test_apps_no_longer_listed_are_reported_not_touched(fake):
    host = fake(
        {
            fact(HostedApps): {"hello": "active", "notes": "active"},
            fact(FileContents, path="/etc/nginx/sites-enabled/hello"): None,  # no site
        }
    )
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
            fact(HostedApps): {"myproject": "active"},
            fact(FileContents, path="/etc/nginx/sites-enabled/myproject"): [
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
