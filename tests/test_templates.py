"""The rendered configuration carries the guide's settings and the design's fixes."""

import configparser

from deploys.appservice import env_file, systemd_unit, uwsgi_ini
from deploys.nginx import nginx_site
from deploys.render import digest, folder_digest
from deploys.settings import load_settings

DEFAULTS = load_settings({})


def ini_options(text: str) -> dict:
    parser = configparser.ConfigParser()
    parser.read_string(text)
    return dict(parser["uwsgi"])


def test_uwsgi_ini_has_the_guide_and_the_fixes():
    opts = ini_options(uwsgi_ini(DEFAULTS))
    for key in (
        "strict",
        "master",
        "need-app",
        "vacuum",
        "die-on-term",
        "enable-threads",
        "single-interpreter",
    ):
        assert opts[key] == "true", key
    assert opts["module"] == "wsgi:app"
    assert opts["processes"] == "5"
    assert opts["chmod-socket"] == "660"
    assert opts["socket"] == "/run/myproject/myproject.sock"
    assert opts["binary-path"] == "/srv/myproject/current/venv/bin/python3"
    assert opts["chdir"] == "/srv/myproject/current/app"


def test_harakiri_is_below_nginx_read_timeout():
    s = load_settings({"harakiri": 45})
    assert ini_options(uwsgi_ini(s))["harakiri"] == "45"
    assert "uwsgi_read_timeout 55s;" in nginx_site(s)


def test_source_build_reloads_the_uwsgi_binary():
    s = load_settings({"uwsgi_from_source": True})
    assert ini_options(uwsgi_ini(s))["binary-path"] == "/srv/myproject/current/venv/bin/uwsgi"


def test_uwsgi_request_log_only_when_asked():
    assert ini_options(uwsgi_ini(DEFAULTS))["disable-logging"] == "true"
    assert "disable-logging" not in ini_options(uwsgi_ini(load_settings({"request_log": True})))


def test_threads_only_when_asked():
    assert "threads" not in ini_options(uwsgi_ini(DEFAULTS))
    assert ini_options(uwsgi_ini(load_settings({"threads": 4})))["threads"] == "4"


def test_unit_runs_as_app_user_with_group_www_data_and_runtime_dir():
    unit = systemd_unit(DEFAULTS)
    for line in (
        "User=myproject",
        "Group=www-data",
        "RuntimeDirectory=myproject",
        "Type=notify",
        "Restart=on-failure",
        "NoNewPrivileges=true",
        "ProtectSystem=strict",
        "PrivateTmp=true",
        "EnvironmentFile=/etc/myproject/env",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "ExecStart=/srv/myproject/current/venv/bin/uwsgi --ini /etc/myproject/uwsgi.ini",
        "WantedBy=multi-user.target",
    ):
        assert line in unit.splitlines(), line


def test_nginx_site_passes_to_the_socket():
    site = nginx_site(DEFAULTS)
    assert "uwsgi_pass unix:/run/myproject/myproject.sock;" in site
    assert "include uwsgi_params;" in site
    assert "listen 80 default_server;" in site


def test_named_site_is_not_the_default_server():
    site = nginx_site(load_settings({"server_name": ["example.com", "www.example.com"]}))
    assert "server_name example.com www.example.com;" in site
    assert "default_server" not in site


def test_env_file_quotes_values_for_systemd():
    s = load_settings({"env": {"B": 'say "hi" \\o/', "A": "x y"}})
    lines = env_file(s).splitlines()[1:]
    assert lines == ['A="x y"', 'B="say \\"hi\\" \\\\o/"']


def test_digests_are_stable_and_sensitive():
    assert digest("a", "b") == digest("a", "b") != digest("ab")


def test_folder_digest_ignores_caches(tmp_path):
    (tmp_path / "wsgi.py").write_text("app = 1\n")
    before = folder_digest(tmp_path)
    (tmp_path / "__pycache__").mkdir()
    (tmp_path / "__pycache__" / "wsgi.cpython-311.pyc").write_bytes(b"\0")
    assert folder_digest(tmp_path) == before
    (tmp_path / "wsgi.py").write_text("app = 2\n")
    assert folder_digest(tmp_path) != before
