"""Several apps on one host: per-app settings inherit the top level, and what two apps may not
share is refused before any host is touched, naming the app and the setting."""

import pytest

from deploys.config.plan import load_plan
from deploys.config.settings import SettingsError
from deploys.stack.packages import wanted_packages

NOTES = {"app_name": "notes", "app_src": "examples/notes", "app_module": "notes:create_app()"}


def two_apps(**top) -> dict:
    return {
        "apps": [
            {"app_name": "hello", "server_name": "hello.test"},
            {**NOTES, "server_name": "notes.test", "processes": 2},
        ],
        **top,
    }


def error_for(data: dict) -> str:
    with pytest.raises(SettingsError) as info:
        load_plan(data, "web1")
    return str(info.value)


def test_without_apps_the_top_level_is_the_one_app():
    plan = load_plan({"processes": 3})
    assert [(a.app_name, a.processes) for a in plan.apps] == [("myproject", 3)]
    assert plan.single("rollback.py").app_name == "myproject"


def test_apps_inherit_what_they_do_not_set():
    plan = load_plan(two_apps(processes=4, firewall_allow=["8080/tcp"]))
    hello, notes = plan.apps
    assert (hello.processes, notes.processes) == (4, 2)
    assert notes.app_module == "notes:create_app()" and hello.app_module == "wsgi:app"
    assert plan.host.firewall_allow == ["8080/tcp"]
    assert not plan.default_server and not plan.https


def test_the_apps_apt_packages_go_in_one_apt_transaction_with_ours_each_once():
    data = two_apps()
    data["apps"][0]["apt_packages"] = ["libpq5", "gettext"]
    data["apps"][1]["apt_packages"] = ["gettext", "nginx"]
    plan = load_plan(data, "web1")
    assert plan.apt_packages == ["libpq5", "gettext", "nginx"]
    assert wanted_packages(plan) == ["nginx", "python3-venv", "ufw", "libpq5", "gettext"]
    assert "gettext" not in wanted_packages(plan, "database")  # no app runs there


def test_app_selects_one_and_single_needs_it():
    assert [a.app_name for a in load_plan({**two_apps(), "app": "notes"}).selected] == ["notes"]
    with pytest.raises(SettingsError, match=r"several apps \(hello, notes\): run.py acts on one"):
        load_plan(two_apps()).single("run.py")
    assert "app: 'blog' is not an app of this host (hello, notes)" in error_for(
        {**two_apps(), "app": "blog"}
    )


def test_an_apps_bad_setting_names_the_app():
    data = two_apps()
    data["apps"][1]["processes"] = 0
    assert "apps[1] (notes): processes:" in error_for(data)


@pytest.mark.parametrize(
    "key", ["firewall", "ssh_allow", "acme_ca_bundle", "fast_facts", "command", "app"]
)
def test_host_wide_settings_are_refused_per_app(key):
    data = two_apps()
    data["apps"][0][key] = "x"
    message = error_for(data)
    assert f"apps[0] (hello): {key} is set for the whole host or run" in message
    assert f"): {key}: " not in message  # said once, not again as unknown or malformed


def test_two_apps_may_not_share_a_name_user_or_server_name():
    data = two_apps()
    data["apps"][1].update(app_name="hello", server_name=["www.test", "hello.test"])
    message = error_for(data)
    both = "apps[0] (hello) and apps[1] (hello)"
    assert f"app_name: 'hello' is claimed by {both}" in message
    assert f"app_user: 'hello' is claimed by {both}" in message
    assert f"server_name: 'hello.test' is claimed by {both}" in message


def test_app_user_clash_is_refused():
    data = two_apps()
    data["apps"][1]["app_user"] = "hello"
    assert "app_user: 'hello' is claimed by apps[0] (hello) and apps[1] (notes)" in error_for(data)


def test_at_most_one_default_server():
    data = two_apps()
    for app in data["apps"]:
        app["server_name"] = "_"
    assert "hello, notes are each the default server" in error_for(data)
    data["apps"][1]["server_name"] = "notes.test"
    assert load_plan(data).default_server


def test_an_app_cannot_be_both_deployed_and_retired():
    assert "retired_apps: notes is also in apps" in error_for(two_apps(retired_apps=["notes"]))
    assert "retired_apps: a list of app names" in error_for(two_apps(retired_apps=["../x"]))
    assert load_plan(two_apps(retired_apps=["old"])).retired == ("old",)


@pytest.mark.parametrize("apps", [[], "hello", [{"app_name": "a"}] * 101])
def test_apps_must_be_a_list_of_apps(apps):
    assert "apps: a list of 1 to 100 apps" in error_for({"apps": apps})


def test_https_anywhere_opens_the_host_for_tls():
    data = two_apps(acme_email="ops@example.com")
    data["apps"][1]["https"] = True
    plan = load_plan(data)
    assert plan.https and not plan.apps[0].https
