"""Attacks on a deployed host, each played for real and shown to fail: the app's own user
racing the deploy's root commands, www-data and other local users talking uwsgi to the socket
or reading files, a local user polling for secrets while a deploy writes them, a private
index's token looked for in every command line and in the journal, forged Host headers, and
the sandbox rated by systemd itself.

Tests in this module share one host and run in file order.
"""

from __future__ import annotations

import gzip
import http.server
import io
import os
import re
import subprocess
import tarfile
import threading
import time
from contextlib import contextmanager
from functools import partial
from pathlib import Path

import pytest

import testbed
from testbed.pyinfra_cli import inventory_for, pyinfra_cli
from tests.helpers import HELLO, app_saying, wait_for

APP = "myproject"
NAME = "app.test"
ATTACKS = Path(__file__).parent / "attacks"
TOOLS = "/usr/local/lib/attack-tools"  # on the host, readable by every user
CLIENT = f"python3 {TOOLS}/uwsgi_client.py"
SOCKET = f"/run/flask-deploy/{APP}.sock"
PROBE_MARK = f"/var/lib/{APP}/probe-ran"
INVENTORY = """
import os
from pathlib import Path
from testbed import read_state
hosts = [(h.name, h.pyinfra_data()) for h in read_state(Path(os.environ["TESTBED_STATE"]))]
"""
GROUP_DATA = f'''
import os
from deploys.config.secrets import Secret
server_name = "{NAME}"
health_timeout = 15
env = {{"DATABASE_URL": Secret(os.environ.get("SECRET_URL", "postgresql://app:first@db/app"))}}
'''


@pytest.fixture(scope="module")
def sec(boot, workdir):
    """A host converged with a named server and a secret in its environment, the attack
    tools on it, and a probe script that proves code ran as the app if it ever runs."""
    (host,) = boot(1)
    inventory = workdir / "security" / "sec.py"
    (inventory.parent / "group_data").mkdir(parents=True)
    inventory.write_text(INVENTORY)
    (inventory.parent / "group_data" / "sec.py").write_text(GROUP_DATA)
    host.exec(f"install -d -m 755 {TOOLS}")
    for tool in ATTACKS.glob("*.py"):
        subprocess.run(["docker", "cp", str(tool), f"{host.container}:{TOOLS}/"], check=True)
    host.exec(
        f'chmod 755 {TOOLS}/*.py; printf \'%s\\n\' \'open("{PROBE_MARK}", "w").write("x")\''
        f' \'application = lambda e, s: (s("200 OK", []), [b"PROBE"])[1]\' > {TOOLS}/probe.py'
    )
    host.inventory = str(inventory)
    deploy(host, workdir).check()
    return host


def deploy(host, workdir, *args: str, env=None, entry="deploy.py", dry=False):
    environ = {**inventory_for([host], workdir), **(env or {})}
    return pyinfra_cli(host.inventory, entry, *args, env=environ, dry=dry)


def as_user(host, user: str, command: str) -> subprocess.CompletedProcess:
    """Run a shell command on the host as ``user`` (nologin users too)."""
    return host.exec(f"runuser -u {user} -- sh -c {shq(command)}", check=False)


def shq(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"


def served(host, host_header: str = NAME) -> str | None:
    status, body = testbed.http_get(host.http_port, host_header=host_header)
    return body if status == 200 else None


def test_app_user_racing_root_commands_never_gets_another_file(sec, workdir):
    """The app swaps every name in its own runtime folder for links to /etc/shadow, again and
    again, while deploys repair a drifted socket and re-check the live release."""
    before = sec.exec("stat -c '%a %U %G %i' /etc/shadow").stdout
    loop = (
        "for i in $(seq 3000); do"
        f" for n in stats.sock {APP}.sock x; do ln -sfn /etc/shadow /run/{APP}/$n.l 2>/dev/null"
        f" && mv -Tf /run/{APP}/$n.l /run/{APP}/$n 2>/dev/null; done;"
        f" ln -sfn /etc/shadow {SOCKET} 2>/dev/null; chmod 666 {SOCKET} 2>/dev/null;"
        " sleep 0.01; done"
    )
    attacker = subprocess.Popen(
        ["docker", "exec", sec.container, "runuser", "-u", APP, "--", "sh", "-c", loop],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(3):
            sec.exec(f"chmod 666 {SOCKET}")  # drift the repair operation puts right
            deploy(sec, workdir, "--data", "health_timeout=3")  # may fail: stats are gone
    finally:
        attacker.kill()
        attacker.wait()
        sec.exec(f"pkill -u {APP} -x sh", check=False)  # the loop inside the host
    assert sec.exec("stat -c '%a %U %G %i' /etc/shadow").stdout == before
    assert as_user(sec, APP, "cat /etc/shadow").returncode != 0
    assert sec.exec(f"stat -c '%a %U %G' {SOCKET}").stdout.split() == ["660", "root", "www-data"]
    sec.exec(f"systemctl restart {APP}")  # the app put its own runtime folder in disorder
    deploy(sec, workdir).check()
    assert deploy(sec, workdir, entry="verify.py").returncode == 0


@pytest.mark.parametrize("user", ["www-data", "nobody"])
def test_uwsgi_magic_variables_never_load_code(sec, user):
    attempts = [
        f"UWSGI_FILE={TOOLS}/probe.py UWSGI_APPID=probe",
        f"UWSGI_MODULE=probe UWSGI_CALLABLE=application UWSGI_CHDIR={TOOLS}"
        " UWSGI_APPID=probe2 SCRIPT_NAME=/probe",
        "UWSGI_SCRIPT=probe UWSGI_PYHOME=/usr UWSGI_APPID=probe3",
        "UWSGI_SETENV=PYTHONPATH=/tmp",
    ]
    for attempt in attempts:
        out = as_user(sec, user, f"{CLIENT} {SOCKET} {attempt}").stdout
        if user == "www-data":  # nginx's user reaches the socket, and uWSGI refuses
            assert out.startswith("HTTP/1.1 403 Forbidden"), out
        else:  # nobody else reaches it at all
            assert out.startswith("connect failed:") and "Permission denied" in out, out
        assert "PROBE" not in out
    assert sec.exec(f"test -e {PROBE_MARK} && echo ran || echo never").stdout.strip() == "never"
    plain = as_user(sec, "www-data", f"{CLIENT} {SOCKET} HTTP_HOST={NAME}").stdout
    assert HELLO in plain  # a plain request still works


PRIVATE = {
    "code": f"cat /srv/{APP}/current/app/wsgi.py",
    "code listing": f"ls /srv/{APP}/releases",
    "env file": f"cat /etc/{APP}/env",
    "pip settings": f"cat /etc/{APP}/pip.conf",
    "pip credentials": f"cat /etc/{APP}/pip.netrc",
    "stats socket": f"{CLIENT} /run/{APP}/stats.sock | grep -v 'connect failed' && exit 0; exit 1",
    "data directory": f"ls /var/lib/{APP}",
    "deploy state": f"ls /srv/{APP}/state",
    "uploads in transit": "ls /home/deploy/.cache/flask-deploy",
}


@pytest.mark.parametrize("user", ["nobody", "www-data"])
def test_other_users_read_nothing_of_the_app(sec, user):
    readable = [what for what, cmd in PRIVATE.items() if as_user(sec, user, cmd).returncode == 0]
    assert readable == []
    assert as_user(sec, APP, PRIVATE["code"]).returncode == 0  # the app itself reads its code


def test_secret_never_readable_while_a_deploy_writes_it(sec, workdir):
    canary = f"postgresql://app:canary-{os.getpid()}-{time.time_ns()}@db/app"
    found: list[str] = []
    poller = threading.Thread(
        target=lambda: found.append(
            as_user(
                sec,
                "nobody",
                f"python3 {TOOLS}/poll_files.py {shq(canary)} 25"
                " /tmp /var/tmp /dev/shm /home /run /etc /srv /var/lib",
            ).stdout
        )
    )
    poller.start()
    time.sleep(1)
    run = deploy(sec, workdir, env={"SECRET_URL": canary}).check()
    poller.join()
    assert "App environment | Environment /etc/myproject/env" in run.changed_ops()
    assert canary not in run.output
    assert canary in sec.exec(f"cat /etc/{APP}/env").stdout  # it was written meanwhile
    report = found[0]
    assert "seen:" not in report, report
    assert int(re.search(r"reads: (\d+)", report).group(1)) > 1000  # it really polled


def fdprobe_index(root: Path) -> Path:
    """A private index in ``root`` serving one source-only package, fdprobe 0.1 (so pip
    starts a second pip to fetch its build backend), built byte for byte the same wherever
    it is built: the controller resolves against it, the host installs from it."""
    files = {
        "fdprobe-0.1/pyproject.toml": '[build-system]\nrequires = ["setuptools"]\n'
        'build-backend = "setuptools.build_meta"\n[project]\nname = "fdprobe"\n'
        'version = "0.1"\n',
        "fdprobe-0.1/PKG-INFO": "Metadata-Version: 2.1\nName: fdprobe\nVersion: 0.1\n",
        "fdprobe-0.1/fdprobe.py": "X = 1\n",
    }
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        for name, text in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(text.encode()), 0o644
            tar.addfile(info, io.BytesIO(text.encode()))
    (root / "simple" / "fdprobe").mkdir(parents=True)
    (root / "fdprobe-0.1.tar.gz").write_bytes(gzip.compress(raw.getvalue(), mtime=0))
    link = '<a href="../../fdprobe-0.1.tar.gz">fdprobe-0.1.tar.gz</a>\n'
    (root / "simple" / "fdprobe" / "index.html").write_text(link)
    return root


INDEX_PORT = 8765  # on the controller's loopback and on the host's: the same URL for both


@contextmanager
def served_on_both(sec, root: Path):
    """The index in ``root`` served at 127.0.0.1:INDEX_PORT here and on the host."""
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", INDEX_PORT), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w") as tar:
        tar.add(root, arcname="index")
    sec.exec_bytes("mkdir -p /srv && tar -x -C /srv", input=archive.getvalue())
    sec.exec(
        f"cd /srv/index && (setsid python3 -m http.server {INDEX_PORT} --bind 127.0.0.1"
        " >/dev/null 2>&1 &)"
    )
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()


def test_private_index_token_never_on_a_command_line_or_in_the_journal(sec, workdir, tmp_path):
    """A venv build against a private index with credentials (a local one on the host, and
    the same on the controller, which resolves against it: it serves one source-only package
    and nothing else, so the installer falls through to its default index for the rest and
    builds that package)."""
    token = f"tok{time.time_ns()}"
    index = fdprobe_index(tmp_path)
    since = sec.exec("date '+%Y-%m-%d %H:%M:%S'").stdout.strip()
    stop = threading.Event()
    cmdlines: list[str] = []

    def watch():
        while not stop.is_set():
            cmdlines.append(
                sec.exec("cat /proc/[0-9]*/cmdline 2>/dev/null | tr '\\0' ' '", check=False).stdout
            )
            time.sleep(0.05)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        with served_on_both(sec, index):
            run = deploy(
                sec,
                workdir,
                "--data",
                f"pip_extra_index_url=http://ci:{token}@127.0.0.1:{INDEX_PORT}/simple/",
                "--data",
                "python_packages=fdprobe==0.1",  # a new venv: its installer runs, and builds
            ).check()
    finally:
        stop.set()
        watcher.join()
    assert "Build virtualenv" in " ".join(run.changed_ops())
    assert sec.exec(f"ls /srv/{APP}/current/venv/lib/python3*/site-packages/fdprobe.py").stdout
    assert len(cmdlines) > 20 and any("pip install" in c for c in cmdlines)
    assert not [c for c in cmdlines if token in c]
    assert token not in sec.exec(f"journalctl --since {shq(since)} --no-pager").stdout
    assert token not in run.output
    assert token in sec.exec(f"cat /etc/{APP}/pip.netrc").stdout
    assert token not in sec.exec(f"cat /etc/{APP}/pip.conf /etc/{APP}/uv.toml").stdout
    settings = f"/etc/{APP}/pip.conf /etc/{APP}/pip.netrc /etc/{APP}/uv.toml"
    modes = sec.exec(f"stat -c '%a %U' {settings}").stdout
    assert modes.split() == ["600", "root"] * 3


def test_debug_output_never_shows_a_secret(sec, workdir):
    canary = f"debug-canary-{time.time_ns()}"
    run = deploy(sec, workdir, "--debug", env={"SECRET_URL": canary}, dry=True)
    assert "Will write /etc/myproject/env (contents hidden)" in run.output  # it is in play
    assert "[pyinfra.api.host] Starting deploy" in run.output  # debug logging is on
    assert canary not in run.output


def test_unknown_host_header_gets_no_app(sec):
    assert HELLO in (served(sec) or "")
    status, error = testbed.http_get(sec.http_port, host_header="evil.example")
    assert (status, error) == (None, "Remote end closed connection without response")  # 444
    head = sec.exec(f"curl -sI -H 'Host: {NAME}' http://127.0.0.1/").stdout
    assert re.search(r"^Server: nginx\r?$", head, re.MULTILINE)  # no version
    assert "X-Content-Type-Options: nosniff" in head
    assert "Referrer-Policy: strict-origin-when-cross-origin" in head


def exposure(host, unit: str) -> float | None:
    out = host.exec(f"systemd-analyze security --no-pager {unit} 2>&1 | tail -n 1", check=False)
    match = re.search(r"Overall exposure level for \S+: ([\d.]+)", out.stdout)
    return float(match.group(1)) if match else None


def test_every_unit_running_app_code_is_sandboxed(sec, workdir, tmp_path):
    """The service, and the release checks caught while they run: a release slow to import
    (8 s) that answers 500 keeps the import check, then the candidate, alive long enough."""
    scores = {APP: exposure(sec, APP)}
    app = app_saying(
        tmp_path,
        "Slow",
        "\nimport time\ntime.sleep(8)\napp.view_functions['hello'] = lambda: ('no', 500)\n",
    )
    runner = threading.Thread(target=lambda: deploy(sec, workdir, "--data", f"app_src={app}"))
    runner.start()
    for unit in (f"{APP}-import-check", f"{APP}-candidate"):
        scores[unit] = wait_for(lambda u=unit: exposure(sec, u), 60, f"{unit} to run")
    runner.join()
    print(f"\n[sandbox] systemd-analyze security: {scores}")
    assert all(score <= 2.0 for score in scores.values()), scores
    assert HELLO in (served(sec) or "")  # the broken release never went live
