"""Settings are validated before any host is touched, with messages naming key and fix."""

import pytest

from deploys.secrets import Secret, env_secret
from deploys.settings import Settings, SettingsError, load_settings


def error_for(**data) -> str:
    with pytest.raises(SettingsError) as info:
        load_settings(data, "web1")
    return str(info.value)


def test_defaults_reproduce_the_guide():
    s = load_settings({})
    assert (s.app_name, s.app_module, s.processes) == ("myproject", "wsgi:app", 5)
    assert s.user == "myproject"
    assert s.server_name == ["_"]


def test_pyinfra_keys_are_not_settings():
    s = load_settings({"ssh_port": 2222, "ssh_user": "admin", "_sudo": True, "processes": "3"})
    assert s.processes == 3


@pytest.mark.parametrize("name", ["my/app", "my app", "..", "../etc", "App", "", "x" * 40])
def test_bad_app_names_are_refused(name):
    message = error_for(app_name=name)
    assert "app_name" in message and "web1" in message


@pytest.mark.parametrize("name", ["exa mple.com", "example.com;", "a;b", "bad_name!"])
def test_bad_server_names_are_refused(name):
    assert "server_name" in error_for(server_name=name)


def test_several_server_names_are_allowed():
    assert load_settings({"server_name": ["example.com", "www.example.com"]}).server_name == [
        "example.com",
        "www.example.com",
    ]


@pytest.mark.parametrize("value", [0, -1, "five", 1.5])
def test_bad_process_counts_are_refused(value):
    message = error_for(processes=value)
    assert "processes" in message and repr(value) in message


def test_unknown_key_suggests_the_likely_one():
    assert "proceses: unknown setting; did you mean 'processes'?" in error_for(proceses=3)


def test_every_problem_is_reported_at_once():
    message = error_for(processes=0, app_nmae="x", server_name="a b")
    assert all(key in message for key in ("processes", "app_nmae", "server_name"))


def test_missing_app_src_is_refused(tmp_path):
    assert "app_src" in error_for(app_src=str(tmp_path / "nope"))


def test_app_module_must_exist_in_app_src(tmp_path):
    (tmp_path / "requirements.txt").write_text("flask\n")
    (tmp_path / "main.py").write_text("application = object()\n")
    assert "needs wsgi.py" in error_for(app_src=str(tmp_path))
    assert "no 'app'" in error_for(app_src=str(tmp_path), app_module="main:app")
    assert load_settings({"app_src": str(tmp_path), "app_module": "main:application"})


def test_app_module_with_a_syntax_error_is_refused(tmp_path):
    (tmp_path / "requirements.txt").write_text("")
    (tmp_path / "wsgi.py").write_text("def broken(:\n")
    assert "syntax error" in error_for(app_src=str(tmp_path))


@pytest.mark.parametrize("module", ["wsgi", "wsgi:", "wsgi:app:x", "1wsgi:app", "w-sgi:app"])
def test_malformed_app_module_is_refused(module):
    assert "module:callable" in error_for(app_module=module)


@pytest.mark.parametrize("name", ["1ABC", "A-B", "A B", ""])
def test_malformed_env_names_are_refused(name):
    assert "env" in error_for(env={name: "x"})


def test_unset_env_values_name_the_variable():
    message = error_for(env={"FLASK_SECRET_KEY": None, "OK": "x"})
    assert "env: no value for FLASK_SECRET_KEY: set it" in message


def test_env_values_are_never_echoed():
    message = error_for(env={"BAD NAME": "hunter2-secret"})
    assert "hunter2-secret" not in message


def test_settings_are_frozen():
    with pytest.raises(Exception):  # noqa: B017 - pydantic's own error type
        Settings().processes = 3  # type: ignore[misc]


@pytest.mark.parametrize("rule", ["8080/tcp", "6000:6007/udp", "Nginx HTTPS", "443"])
def test_firewall_rules_accept_ports_and_profiles(rule):
    assert load_settings({"firewall_allow": rule}).firewall_allow == [rule]


@pytest.mark.parametrize("rule", ["80; rm -rf /", "'quoted'", "8080/icmp"])
def test_firewall_rules_refuse_shell_and_junk(rule):
    assert "firewall_allow" in error_for(firewall_allow=[rule])


def test_env_secret_is_masked_in_reprs_and_none_when_unset(monkeypatch):
    monkeypatch.setenv("FLASK_SECRET_KEY", "hunter2")
    value = env_secret("FLASK_SECRET_KEY")
    assert value == "hunter2" and "hunter2" not in repr({"env": {"K": value}})
    monkeypatch.delenv("FLASK_SECRET_KEY")
    assert env_secret("FLASK_SECRET_KEY") is None
    assert load_settings({"env": {"K": Secret("x")}}).env["K"].get_secret_value() == "x"
