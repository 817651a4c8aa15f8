"""The rendered configuration carries the guide's settings and the design's fixes."""

import configparser

from deploys.config.fingerprint import digest
from deploys.config.settings import load_settings
from deploys.stack.appservice import (
    MAGIC_VARS,
    env_file,
    handover_unit,
    sandbox,
    socket_unit,
    systemd_unit,
    uwsgi_ini,
)
from deploys.stack.nginx import nginx_site
from deploys.stack.virtualenv import pip_config, pip_netrc, uv_config

DEFAULTS = load_settings({})


def ini_options(text: str) -> dict:
    parser = configparser.ConfigParser(strict=False)  # route-if-not repeats
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
    assert opts["socket"] == "/run/flask-deploy/myproject.sock"  # systemd's, handed over
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


def test_uwsgi_refuses_every_magic_variable():
    text = uwsgi_ini(DEFAULTS)
    for var in MAGIC_VARS:
        assert f"route-if-not = empty:${{{var}}} break:403 Forbidden" in text.splitlines(), var
    assert {"UWSGI_FILE", "UWSGI_MODULE", "UWSGI_SETENV", "UWSGI_POSTFILE"} <= set(MAGIC_VARS)


def test_unit_takes_its_socket_and_private_runtime_dir():
    unit = systemd_unit(DEFAULTS).splitlines()
    for line in (
        "Requires=myproject.socket",
        "After=network.target myproject.socket",
        "RuntimeDirectory=myproject",
        "RuntimeDirectoryMode=0700",
        "Type=notify",
        "Restart=on-failure",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "KillMode=mixed",  # SIGTERM to the master alone: a graceful stop
        # root's record of what each run loads, before each start, never failing it
        "ExecStartPre=-+/bin/sh -c 'echo \"$$INVOCATION_ID"
        ' $$(/bin/readlink -f /srv/myproject/current)"'
        " > /srv/myproject/state/service.record.new"
        " && /bin/mv -f /srv/myproject/state/service.record.new"
        " /srv/myproject/state/service.record'",
        "ExecStart=/srv/myproject/current/venv/bin/uwsgi --ini /etc/myproject/uwsgi.ini",
        "WantedBy=multi-user.target",
    ):
        assert line in unit, line


def test_handover_serves_the_same_socket_with_the_same_ini_and_its_own_stats():
    unit = handover_unit(DEFAULTS).splitlines()
    for line in (
        "Sockets=myproject.socket",
        "Requires=myproject.socket",
        "Type=notify",
        "RuntimeDirectory=myproject-handover",
        "KillMode=mixed",
        "ExecStart=/srv/myproject/current/venv/bin/uwsgi --ini /etc/myproject/uwsgi.ini"
        " --stats /run/myproject-handover/stats.sock",
    ):
        assert line in unit, line
    assert "[Install]" not in unit  # never started at boot: only during a restart
    assert unit[0] != systemd_unit(DEFAULTS).splitlines()[0]  # not an app of its own (retire.py)


def test_uwsgi_stops_gracefully_on_sigterm():
    assert "hook-master-start = unix_signal:15 gracefully_kill_them_all" in uwsgi_ini(DEFAULTS)


def test_sandbox_runs_the_app_in_its_own_group_with_a_private_umask():
    lines = sandbox(DEFAULTS).splitlines()
    assert lines[lines.index("[Service]") :][:4] == [
        "[Service]",
        "User=myproject",
        "Group=myproject",
        "UMask=0077",
    ]
    for line in (
        "EnvironmentFile=/etc/myproject/env",
        "StateDirectory=myproject",
        "StateDirectoryMode=0750",
        "NoNewPrivileges=yes",
        "CapabilityBoundingSet=",
        "ProtectSystem=strict",
        "SystemCallFilter=~@privileged @resources",
        "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6",
    ):
        assert line in lines, line
    assert not any("www-data" in line for line in lines)


def test_socket_is_made_by_systemd_for_nginx_alone():
    lines = socket_unit(DEFAULTS).splitlines()
    for line in (
        "ListenStream=/run/flask-deploy/myproject.sock",
        "SocketUser=root",
        "SocketGroup=www-data",
        "SocketMode=0660",
        "Backlog=100",
    ):
        assert line in lines, line


def test_nginx_site_passes_to_the_socket():
    site = nginx_site(DEFAULTS)
    assert "uwsgi_pass unix:/run/flask-deploy/myproject.sock;" in site
    assert "add_header X-Content-Type-Options nosniff always;" in site
    assert "add_header Referrer-Policy strict-origin-when-cross-origin always;" in site
    assert "include uwsgi_params;" in site
    assert "listen 80 default_server;" in site


def test_named_site_is_not_the_default_server():
    site = nginx_site(load_settings({"server_name": ["example.com", "www.example.com"]}))
    assert "server_name example.com www.example.com;" in site
    assert "default_server" not in site


def test_env_values_are_masked_in_reprs():
    s = load_settings({"env": {"TOKEN": "hunter2"}, "pip_index_url": "https://u:tok@x/simple"})
    assert "hunter2" not in repr(s) and "tok@" not in repr(s)
    assert 'TOKEN="hunter2"' in env_file(s)


def test_env_file_quotes_values_for_systemd():
    s = load_settings({"env": {"B": 'say "hi" \\o/', "A": "x y"}})
    lines = env_file(s).splitlines()[1:]
    assert lines == ['A="x y"', 'B="say \\"hi\\" \\\\o/"']


def test_digests_are_stable_and_sensitive():
    assert digest("a", "b") == digest("a", "b") != digest("ab")


def test_pip_gets_index_credentials_from_a_netrc_never_from_urls():
    s = load_settings(
        {
            "pip_index_url": "https://u%40x:p%3Aw@idx.example/simple",
            "pip_extra_index_url": [
                "http://ci:tok@127.0.0.1:8765/simple/",
                "https://pub.example/s",
            ],
            "pip_cert": "/etc/ssl/ca.pem",
        }
    )
    assert pip_config(s).splitlines()[3:] == [
        "index-url = https://idx.example/simple",
        "extra-index-url = http://127.0.0.1:8765/simple/ https://pub.example/s",
        "cert = /etc/ssl/ca.pem",
    ]
    assert pip_netrc(s).splitlines() == [
        "machine idx.example login u@x password p:w",
        "machine 127.0.0.1 login ci password tok",
    ]
    assert pip_netrc(DEFAULTS) == ""
    assert uv_config(s).splitlines() == [  # uv reads the credentials from the netrc too
        'index-url = "https://idx.example/simple"',
        'extra-index-url = ["http://127.0.0.1:8765/simple/", "https://pub.example/s"]',
    ]
    assert uv_config(DEFAULTS) == ""


def test_app_output_cannot_drive_the_terminal():
    from deploys.ops.output import printable

    line = "ok\t\x1b[2J\x1b]0;OWNED\x07\nFAKE\x9b"
    assert printable(line) == "ok\t\\x1b[2J\\x1b]0;OWNED\\x07\\x0aFAKE\\x9b"


def test_https_site_serves_tls_only_for_the_names_the_certificate_covers():
    from deploys.stack.nginx import nginx_site

    s = load_settings(
        {"https": True, "server_name": ["a.test", "b.test"], "acme_email": "ops@a.test"}
    )
    before = nginx_site(s)  # no certificate yet: HTTP and the challenge for every name
    assert "listen 443" not in before and "server_name a.test b.test;" in before
    assert "location ^~ /.well-known/acme-challenge/" in before and "uwsgi_pass" in before
    partial = nginx_site(s, ["a.test"])  # b.test was just added
    tls, waiting = partial.split("# names the certificate does not cover yet")
    assert "server_name a.test;" in tls and "listen 443 ssl http2;" in tls
    assert "return 301 https://$host$request_uri;" in tls
    assert "server_name b.test;" in waiting and "return 444;" in waiting
    assert "uwsgi_pass" not in waiting and "301" not in waiting
    full = nginx_site(s, ["b.test", "a.test", "old.test"])
    assert full.count("server_name a.test b.test;") == 2 and "return 444" not in full
    assert 'add_header Strict-Transport-Security "max-age=63072000" always;' in full


def test_the_catch_all_follows_every_app_of_the_host():
    from deploys.config.plan import load_plan
    from deploys.stack.nginx import CATCH_ALL, nginx_host

    named = {"app_name": "named", "server_name": "named.test", "https": True}
    https_email = {"acme_email": "ops@example.com"}
    default_too = load_plan({"apps": [{"app_name": "any"}, named], **https_email})
    shared = nginx_host(default_too)
    catch_all = shared.files[CATCH_ALL]
    assert shared.catch_all  # an app answers any name over HTTP, but TLS stays refused
    assert "listen 80" not in catch_all and "ssl_reject_handshake on;" in catch_all
    only_named = nginx_host(
        load_plan({"apps": [named, {"app_name": "b", "server_name": "b.t"}], **https_email})
    )
    assert "listen 80 default_server;" in only_named.files[CATCH_ALL]
    assert not nginx_host(load_plan({})).catch_all  # the guide's one default app: no catch-all
