"""Settings are validated before any host is touched, with messages naming key and fix."""

import pytest
from pydantic import ValidationError

from deploys.config.dependencies import python_problem
from deploys.config.secrets import Secret, env_secret
from deploys.config.settings import Settings, SettingsError, load_settings


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


@pytest.mark.parametrize(
    "name",
    [
        "my/app",
        "my app",
        "..",
        "../etc",
        "App",
        "",
        "x" * 40,
        "default",
        "flask-deploy",
        "a-command",
    ],
)
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


@pytest.mark.parametrize(
    "module", ["wsgi", "wsgi:", "wsgi:app:x", "1wsgi:app", "w-sgi:app", "m:f(x)", "m:f(", "m:()"]
)
def test_malformed_app_module_is_refused(module):
    assert "is not of the form module:app or module:factory()" in error_for(app_module=module)


NOTES = "examples/notes"


def notes(**data):
    """Settings for the example app, with ``data`` on top."""
    return {"app_src": NOTES, "app_module": "notes:create_app()", **data}


def test_the_example_app_deploys_with_settings_only():
    s = load_settings(
        notes(shared_paths="instance", static={"/static/": "notes/static/"}, release_command="x")
    )
    assert s.requirements_text == "# [project].dependencies of pyproject.toml\nflask==3.1.3\n"
    assert (s.shared_paths, s.static, s.release_command) == (
        ["instance"],
        {"/static": "notes/static"},
        ["x"],
    )
    assert s.shared_folders == ["instance"] and s.source_root == ""


def test_a_factory_given_as_the_app_says_what_to_write():
    message = error_for(**notes(app_module="notes:create_app"))
    assert "app_module: notes:create_app is a function of (test_config=None), not a WSGI app" in (
        message
    )
    assert "write app_module = 'notes:create_app()'" in message


def test_a_factory_that_needs_arguments_is_refused(tmp_path):
    (tmp_path / "requirements.txt").write_text("flask\n")
    (tmp_path / "app.py").write_text("def make(config, debug=False):\n    pass\n")
    message = error_for(app_src=str(tmp_path), app_module="app:make()")
    assert "app_module: make() needs arguments (config) but uWSGI calls it with none" in message


def test_a_missing_factory_is_refused():
    assert "defines or imports no 'make_app'" in error_for(**notes(app_module="notes:make_app()"))


def test_a_plain_wsgi_function_is_an_app(tmp_path):
    (tmp_path / "requirements.txt").write_text("")
    (tmp_path / "wsgi.py").write_text("def app(environ, start_response):\n    return []\n")
    assert load_settings({"app_src": str(tmp_path)}).app_module == "wsgi:app"


def test_src_layout_modules_are_found(tmp_path):
    (tmp_path / "requirements.txt").write_text("")
    (tmp_path / "src/shop").mkdir(parents=True)
    (tmp_path / "src/shop/__init__.py").write_text("def create_app():\n    pass\n")
    s = load_settings({"app_src": str(tmp_path), "app_module": "shop:create_app()"})
    assert s.source_root == "src"


@pytest.mark.parametrize("name", ["pyproject.toml", "setup.py", "setup.cfg"])
def test_a_project_file_is_not_a_requirements_file(name):
    message = error_for(**notes(requirements=name))
    assert f"requirements: {name} is not a requirements file: leave requirements unset" in message


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("[project]", "line 2 is not a pip requirement: '[project]'"),
        ("-r base.txt", "names another file, which is not uploaded"),
        ("./libs/mylib", "a local path does not exist on the host"),
    ],
)
def test_requirements_files_are_read_before_any_host(tmp_path, line, problem):
    (tmp_path / "wsgi.py").write_text("app = 1\n")
    (tmp_path / "reqs.txt").write_text(f"flask==3.1.3\n{line}\n")
    message = error_for(app_src=str(tmp_path), requirements="reqs.txt")
    assert problem in message and "requirements:" in message


def test_requirements_files_accept_what_pip_accepts(tmp_path):
    (tmp_path / "wsgi.py").write_text("app = 1\n")
    (tmp_path / "requirements.txt").write_text(
        "# pinned\n--index-url https://idx.example/simple\nflask==3.1.3 # web\n"
        'requests[socks]>=2; python_version >= "3.8"\n-e git+https://g.example/x.git#egg=x\n'
    )
    assert "flask==3.1.3" in load_settings({"app_src": str(tmp_path)}).requirements_text


@pytest.mark.parametrize(
    ("pyproject", "pinned", "python", "problem"),
    [
        ('requires-python = ">=3.12"', "", (3, 11), "requires-python = '>=3.12' and the host's"),
        ('requires-python = ">=3.12"', "", (3, 13), None),
        ('requires-python = ">=3.9,<3.12"', "", (3, 13), "Python is 3.13: deploy to a host"),
        ('requires-python = "~=3.11.4"', "", (3, 11), None),  # its patch level unknown here
        ('requires-python = "3.12"', "", (3, 12), "is no version specifier"),
        ("", "3.12\n", (3, 11), ".python-version names 3.12 and the host's Python is 3.11"),
        ("", "# pinned\ncpython-3.11.9\n", (3, 11), None),
        ("", "", (3, 11), None),
    ],
)
def test_the_apps_python_is_checked_against_the_hosts(tmp_path, pyproject, pinned, python, problem):
    (tmp_path / "pyproject.toml").write_text(f'[project]\nname = "x"\n{pyproject}\n')
    if pinned:
        (tmp_path / ".python-version").write_text(pinned)
    found = python_problem(tmp_path, python)
    assert (found is None) if problem is None else (problem in found), found


@pytest.mark.parametrize(
    ("names", "refused"),
    [
        (["libpq5", "gettext", "g++", "libxml2-dev", "python3.11-dev"], None),
        (["nginx-"], "'nginx-' is not allowed"),  # apt would remove nginx
        (["libpq5=15.8-0"], "'libpq5=15.8-0' is not allowed"),
        (["LibPQ"], "'LibPQ' is not allowed"),
    ],
)
def test_apt_packages_are_debian_package_names(names, refused):
    if refused is None:
        assert load_settings({"apt_packages": names}).apt_packages == names
    else:
        assert refused in error_for(apt_packages=names) and "apt_packages" in error_for(
            apt_packages=names
        )


def test_an_app_without_dependencies_says_what_to_add(tmp_path):
    (tmp_path / "wsgi.py").write_text("app = 1\n")
    assert "has neither requirements.txt nor a pyproject.toml" in error_for(app_src=str(tmp_path))
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\ndynamic = ["dependencies"]\n')
    assert "declares its dependencies dynamic" in error_for(app_src=str(tmp_path))


@pytest.mark.parametrize("path", ["../data", "/var/lib/x", "a/../../b", "", "a b", "~/x"])
def test_shared_paths_stay_inside_the_app(path):
    message = error_for(**notes(shared_paths=[path]))
    assert "shared_paths:" in message and "relative, no .., no leading /" in message


def test_shared_paths_do_not_nest():
    assert "holds another shared path" in error_for(**notes(shared_paths=["a", "a/b"]))


@pytest.mark.parametrize(
    ("static", "problem"),
    [
        ({"/static": "notes/nope"}, "static: /static -> notes/nope: no such folder"),
        ({"/static": "../etc"}, "static: '../etc' is not allowed"),
        ({"/": "notes/static"}, "static: URL prefix '/' is not allowed"),
        ({"/s;x": "notes/static"}, "URL prefix '/s;x' is not allowed"),
        ({"/s": "instance"}, "is inside the shared path 'instance'"),
        ({"/s": "notes"}, "holds the shared path 'notes/static/up'"),
    ],
)
def test_bad_static_folders_are_refused(static, problem):
    shared = ["instance"] if "instance" in static.values() else ["notes/static/up"]
    assert problem in error_for(**notes(static=static, shared_paths=shared))


def test_a_static_folder_with_the_apps_code_is_refused():
    message = error_for(**notes(static={"/static": "notes"}))
    assert "static: /static -> notes holds the app's code (notes/__init__.py)" in message


def test_a_symbolic_link_in_the_app_is_refused_before_any_host(tmp_path):
    (tmp_path / "requirements.txt").write_text("flask\n")
    (tmp_path / "wsgi.py").write_text("app = 1\n")
    (tmp_path / "key.txt").symlink_to("/etc/hostname")
    assert "app_src: " in error_for(app_src=str(tmp_path))


def test_a_static_folder_nothing_of_which_ships_is_refused():
    message = error_for(**notes(static={"/static": "notes/static"}, exclude=["*.css"]))
    assert "no file of it is shipped (ignored by .gitignore or exclude?)" in message


def test_release_commands_are_single_lines():
    assert "a command is one non-empty line" in error_for(release_command=["a\nb"])


@pytest.mark.parametrize("name", ["1ABC", "A-B", "A B", ""])
def test_malformed_env_names_are_refused(name):
    assert "env" in error_for(env={name: "x"})


@pytest.mark.parametrize(
    "name", ["LD_PRELOAD", "LD_LIBRARY_PATH", "GCONV_PATH", "PATH", "INVOCATION_ID", "IFS"]
)
def test_env_names_that_steer_how_programs_start_are_refused(name):
    """The unit's one root command (the record of what each run loads) reads the env file."""
    assert f"env name {name!r} is reserved" in error_for(env={name: "/var/lib/myproject/x"})


def test_unset_env_values_name_the_variable():
    message = error_for(env={"FLASK_SECRET_KEY": None, "OK": "x"})
    assert "env: no value for FLASK_SECRET_KEY: set it" in message


def test_env_values_are_never_echoed():
    message = error_for(env={"BAD NAME": "hunter2-secret"})
    assert "hunter2-secret" not in message


def test_settings_are_frozen():
    with pytest.raises(ValidationError, match="frozen"):
        Settings().processes = 3  # type: ignore[misc]


@pytest.mark.parametrize(("value", "fast"), [(True, True), (False, False), ("false", False)])
def test_the_speed_layer_is_on_unless_turned_off(value, fast):
    assert load_settings({}).fast_facts is True
    assert load_settings({"fast_facts": value}).fast_facts is fast  # --data fast_facts=false


def test_the_speed_layer_switch_is_a_yes_or_no():
    assert "fast_facts" in error_for(fast_facts="sometimes")


@pytest.mark.parametrize("rule", ["8080/tcp", "6000:6007/udp", "Nginx HTTPS", "443"])
def test_firewall_rules_accept_ports_and_profiles(rule):
    assert load_settings({"firewall_allow": rule}).firewall_allow == [rule]


@pytest.mark.parametrize("rule", ["80; rm -rf /", "'quoted'", "8080/icmp"])
def test_firewall_rules_refuse_shell_and_junk(rule):
    assert "firewall_allow" in error_for(firewall_allow=[rule])


def test_env_secret_is_masked_in_reprs(monkeypatch):
    monkeypatch.setenv("FLASK_SECRET_KEY", "hunter2")
    value = env_secret("FLASK_SECRET_KEY")
    assert value == "hunter2" and "hunter2" not in repr({"env": {"K": value}})
    assert load_settings({"env": {"K": Secret("x")}}).env["K"].get_secret_value() == "x"


def test_an_unset_env_secret_names_the_variable_to_export(monkeypatch):
    monkeypatch.delenv("QUILL_SECRET_KEY", raising=False)
    message = error_for(env={"FLASK_SECRET_KEY": env_secret("QUILL_SECRET_KEY")})
    assert "env: no value for FLASK_SECRET_KEY (read from $QUILL_SECRET_KEY, not set here)" in (
        message
    )


def test_entry_points_that_write_no_secrets_run_without_them(monkeypatch):
    monkeypatch.delenv("QUILL_SECRET_KEY", raising=False)
    data = {"env": {"A": env_secret("QUILL_SECRET_KEY"), "B": "b"}}
    assert list(load_settings(data, secrets=False).env) == ["B"]


def test_names_are_kept_as_nginx_and_certbot_compare_them():
    names = load_settings({"server_name": ["App.Test.", "app.test", "www.app.test"]}).server_name
    assert names == ["app.test", "www.app.test"]


@pytest.mark.parametrize("name", ["app-.test", "-a.test", "a..test", "x" * 254, "a_b.test"])
def test_names_that_are_not_dns_names_are_refused(name):
    assert "server_name" in error_for(server_name=name)


def test_https_needs_names_a_ca_can_check_and_an_email():
    https = {"https": True, "acme_email": "ops@a.test"}
    for name in ("_", "*.a.test", "192.0.2.1"):
        assert "server_name" in error_for(**https, server_name=name)
    assert "at most 100" in error_for(**https, server_name=[f"n{i}.a.test" for i in range(101)])
    assert "acme_email: https = true needs" in error_for(https=True, server_name="a.test")
    for email in ("nobody", "--server=https://x@x.com"):
        message = error_for(https=True, server_name="a.test", acme_email=email)
        assert "is not an email address" in message
    assert "https URL of an ACME directory" in error_for(acme_server="http://ca.example/dir")
