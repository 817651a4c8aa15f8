"""Disposable Debian 12 (or 13) hosts for tests and demos: systemd as PID 1, SSH, sudo, Docker.

Each host is a container booted from a cached debootstrap image, reachable only on
127.0.0.1: SSH (key auth, user ``deploy`` with passwordless sudo; root takes the same key)
and HTTP/HTTPS on published ports. The runner's CA certificates are trusted inside, for apt
and pip behind a TLS-intercepting proxy.

Command line (``python -m testbed``):
    up [--hosts N | --fleet N] [--debian 12|13]
                     boot N hosts (or a load balancer and N app servers) and write
                     .testbed/local.json (read by inventories/local.py)
    down             remove the hosts that ``up`` booted
    prune            remove every test-bed container, from any run
    urls             print the HTTP, HTTPS and SSH addresses of the hosts ``up`` booted
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
STATE_DIR = REPO / ".testbed"
LOCAL_STATE = STATE_DIR / "local.json"
KEY_FILE = STATE_DIR / "id_ed25519"
LABEL = "flask-deploy.testbed"
RUN_ID = os.environ.get("TESTBED_RUN", "manual")  # labels the containers of one CI run
SUITES = {"12": "bookworm", "13": "trixie"}  # Debian release -> debootstrap suite
DEBIAN = "12"  # the default
PACKAGES = "systemd,systemd-sysv,dbus,openssh-server,sudo,iproute2,ca-certificates,curl"
# what the deploy installs on every app server (deploys/stack/packages.py): the tests whose
# subject is not a bare host's first converge boot hosts that have them (``provisioned``),
# so that each module does not unpack them again (the machine's CPU is the suite's limit)
PROVISIONED = "nginx python3-venv ufw"
RUNNER_CA_DIR = Path("/usr/local/share/ca-certificates")
SSH_USER = "deploy"
BOOT_TIMEOUT = 90

RUN_ARGS = [
    "--cap-add",
    "SYS_ADMIN",
    "--cap-add",
    "NET_ADMIN",
    "--cap-add",
    "NET_RAW",
    "--security-opt",
    "seccomp=unconfined",
    "--security-opt",
    "apparmor=unconfined",
    "--tmpfs",
    "/run",
    "--tmpfs",
    "/run/lock",
    "--tmpfs",
    "/tmp",
    "-v",
    "/sys/fs/cgroup:/sys/fs/cgroup:rw",
    "--cgroupns=host",
    "-p",
    "127.0.0.1::22",
    "-p",
    "127.0.0.1::80",
    "-p",
    "127.0.0.1::443",
]

PREPARE_SCRIPT = """
set -eu
ssh-keygen -A >/dev/null
systemctl reset-failed ssh || true
systemctl restart ssh
update-ca-certificates >/dev/null 2>&1
printf '[global]\\ncert = /etc/ssl/certs/ca-certificates.crt\\n' > /etc/pip.conf
id -u {user} >/dev/null 2>&1 || useradd --create-home --shell /bin/bash {user}
echo '{user} ALL=(ALL) NOPASSWD:ALL' > /etc/sudoers.d/{user}
chmod 440 /etc/sudoers.d/{user}
for home in /home/{user} /root; do
    install -d -m 700 "$home/.ssh"
    echo '{pubkey}' > "$home/.ssh/authorized_keys"
    chmod 600 "$home/.ssh/authorized_keys"
done
chown -R {user}: /home/{user}/.ssh
"""


class TestbedError(RuntimeError):
    """The test bed could not give a usable host; the message says what failed."""


@dataclass
class Host:
    """One booted host and how to reach it from the runner."""

    name: str
    container: str
    ssh_port: int
    http_port: int
    https_port: int
    key_file: str
    ssh_user: str = SSH_USER
    address: str = ""  # the container's own address, for traffic between test hosts

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}/"

    def pyinfra_data(self, **extra) -> dict:
        """Host data for a pyinfra inventory: SSH to 127.0.0.1 on the published port."""
        return {
            "ssh_hostname": "127.0.0.1",
            "ssh_port": self.ssh_port,
            "ssh_user": self.ssh_user,
            "ssh_key": self.key_file,
            "ssh_known_hosts_file": "/dev/null",
            "ssh_strict_host_key_checking": "off",
            **extra,
        }

    def cpu_seconds(self) -> float:
        """The CPU time the host's processes used so far (its container's cgroup, read from
        outside so that reading it costs the host nothing), for benchmarks."""
        v1 = Path(f"/sys/fs/cgroup/cpuacct/docker/{self.container}/cpuacct.usage")
        if v1.exists():
            return int(v1.read_text()) / 1e9
        for v2 in (
            Path(f"/sys/fs/cgroup/system.slice/docker-{self.container}.scope/cpu.stat"),
            Path(f"/sys/fs/cgroup/docker/{self.container}/cpu.stat"),
        ):
            if v2.exists():
                usage = dict(line.split() for line in v2.read_text().splitlines())
                return int(usage["usage_usec"]) / 1e6
        raise TestbedError(f"no CPU accounting found for container {self.container}")

    def exec(self, command: str, check: bool = True) -> subprocess.CompletedProcess:
        """Run a shell command inside the host as root (test set-up and inspection only)."""
        return _run(["docker", "exec", self.container, "bash", "-c", command], check=check)

    def exec_bytes(self, command: str, input: bytes | None = None) -> bytes:
        """A shell command's output as bytes, run inside the host as root, fed ``input``."""
        proc = subprocess.run(
            ["docker", "exec", "-i", self.container, "bash", "-c", command],
            input=input,
            capture_output=True,
            check=True,
        )
        return proc.stdout

    def ssh(self, command: str, user: str | None = None, check: bool = True):
        """Run a command over real SSH, as the deploy user unless told otherwise."""
        return _run(
            [
                "ssh",
                "-i",
                self.key_file,
                "-p",
                str(self.ssh_port),
                "-o",
                "StrictHostKeyChecking=no",
                "-o",
                "UserKnownHostsFile=/dev/null",
                "-o",
                "BatchMode=yes",
                "-o",
                "ConnectTimeout=5",
                "-o",
                "LogLevel=ERROR",
                f"{user or self.ssh_user}@127.0.0.1",
                command,
            ],
            check=check,
        )


def _run(cmd: list[str], check: bool = True, input: str | None = None):
    proc = subprocess.run(cmd, capture_output=True, text=True, input=input)
    if check and proc.returncode != 0:
        raise TestbedError(
            f"{' '.join(cmd[:4])}... exited {proc.returncode}: {proc.stderr.strip()[-2000:]}"
        )
    return proc


def docker_usable() -> None:
    """Raise TestbedError with the fix when no Docker engine answers."""
    if not shutil.which("docker"):
        raise TestbedError("docker is not installed: apt-get install docker.io (see .ci/run)")
    proc = _run(["docker", "info"], check=False)
    if proc.returncode != 0:
        raise TestbedError(
            "no Docker engine answers: start one (`setsid dockerd >/var/log/dockerd.log 2>&1 &`"
            f" as root, see .ci/run): {proc.stderr.strip()[-500:]}"
        )


def image_tag(debian: str = DEBIAN, provisioned: bool = False) -> str:
    """The base image's tag, keyed by the recipe so a changed recipe builds a new image."""
    recipe = f"{SUITES[debian]}|minbase|{PACKAGES}|v1"
    if provisioned:
        recipe += f"|{PROVISIONED}"
    return f"flask-deploy-base:{hashlib.sha256(recipe.encode()).hexdigest()[:12]}"


@contextmanager
def _machine_lock(name: str):
    """Held by one process of the machine at a time: test workers running in parallel
    build the base image and the key once, not each their own at the same time."""
    STATE_DIR.mkdir(exist_ok=True)
    with open(STATE_DIR / f"{name}.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def ensure_image(debian: str = DEBIAN, provisioned: bool = False) -> str:
    """Build the Debian ``debian`` (12 or 13) base image with debootstrap unless the cached
    one exists (``provisioned``: with the PROVISIONED packages too); return its tag."""
    docker_usable()
    with _machine_lock("image"):
        base = _ensure_image(debian)
        return _ensure_provisioned(base, debian) if provisioned else base


def _ensure_provisioned(base: str, debian: str) -> str:
    """The base image with the PROVISIONED packages installed by apt (its default mirror),
    committed from a host booted for it while it is stopped."""
    tag = image_tag(debian, provisioned=True)
    if _run(["docker", "image", "inspect", tag], check=False).returncode == 0:
        return tag
    labels = ["--label", f"{LABEL}=1", "--label", f"{LABEL}.run={RUN_ID}"]
    container = _run(["docker", "run", "-d", *labels, *RUN_ARGS, base]).stdout.strip()
    try:
        _wait_for_systemd(container)
        install = (
            "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq"
            f" {PROVISIONED} >/dev/null && apt-get clean"
        )
        _run(["docker", "exec", container, "sh", "-c", install])
        _run(["docker", "stop", "-t", "30", container])
        _run(["docker", "commit", "-c", 'CMD ["/lib/systemd/systemd"]', container, tag])
    finally:
        _run(["docker", "rm", "-f", container], check=False)
    return tag


def _ensure_image(debian: str) -> str:
    tag = image_tag(debian)
    if _run(["docker", "image", "inspect", tag], check=False).returncode == 0:
        return tag
    if not shutil.which("debootstrap"):
        raise TestbedError("debootstrap is not installed: apt-get install debootstrap")
    with tempfile.TemporaryDirectory(prefix="testbed-rootfs-", dir="/var/tmp") as tmp:
        rootfs = Path(tmp) / "rootfs"
        suite = SUITES[debian]
        _run(["debootstrap", "--variant=minbase", f"--include={PACKAGES}", suite, str(rootfs)])
        for key in (rootfs / "etc/ssh").glob("ssh_host_*"):
            key.unlink()
        tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
        imp = subprocess.run(
            ["docker", "import", "-c", 'CMD ["/lib/systemd/systemd"]', "-", tag],
            stdin=tar.stdout,
            capture_output=True,
            text=True,
        )
        tar.wait()
        if imp.returncode != 0 or tar.returncode != 0:
            raise TestbedError(f"docker import failed: {imp.stderr.strip()}")
    return tag


def ensure_key() -> str:
    """The test SSH key pair under .testbed/, made once."""
    STATE_DIR.mkdir(exist_ok=True)
    with _machine_lock("key"):
        if not KEY_FILE.exists():
            _run(
                [
                    "ssh-keygen",
                    "-q",
                    "-t",
                    "ed25519",
                    "-N",
                    "",
                    "-C",
                    "testbed",
                    "-f",
                    str(KEY_FILE),
                ]
            )
    return str(KEY_FILE)


def _published_port(container: str, port: int) -> int:
    out = _run(["docker", "port", container, f"{port}/tcp"]).stdout
    return int(out.splitlines()[0].rsplit(":", 1)[1])


def wait_for(probe, timeout: float = BOOT_TIMEOUT, what: str = "a condition"):
    """Poll ``probe`` every 0.5 s until it returns something truthy, and return that; fail
    naming ``what`` after ``timeout`` seconds (the one polling helper of tests and tools)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = probe()
        if result:
            return result
        time.sleep(0.5)
    raise TestbedError(f"timed out after {timeout}s waiting for {what}")


def _wait_for_systemd(container: str):
    def probe():
        state = _run(
            ["docker", "exec", container, "systemctl", "is-system-running"], check=False
        ).stdout.strip()
        return state in ("running", "degraded")

    wait_for(probe, what=f"systemd in {container[:12]}")


def wait_for_ssh(host: Host, timeout: float = BOOT_TIMEOUT) -> None:
    """Wait until the host accepts an SSH login, or raise TestbedError."""
    wait_for(lambda: host.ssh("true", check=False).returncode == 0, timeout, f"SSH on {host.name}")


def _boot_one(tag: str, name: str, session: str, key_file: str) -> Host:
    container = _run(
        [
            "docker",
            "run",
            "-d",
            "--name",
            name,
            "--hostname",
            name,
            "--label",
            f"{LABEL}=1",
            "--label",
            f"{LABEL}.session={session}",
            "--label",
            f"{LABEL}.run={RUN_ID}",
            *RUN_ARGS,
            tag,
        ]
    ).stdout.strip()
    try:
        _wait_for_systemd(container)
        for cert in RUNNER_CA_DIR.glob("*.crt"):
            _run(["docker", "cp", str(cert), f"{container}:{RUNNER_CA_DIR}/{cert.name}"])
        pubkey = Path(key_file + ".pub").read_text().strip()
        _run(
            ["docker", "exec", "-i", container, "bash", "-s"],
            input=PREPARE_SCRIPT.format(user=SSH_USER, pubkey=pubkey),
        )
        host = Host(
            name=name,
            container=container,
            ssh_port=_published_port(container, 22),
            http_port=_published_port(container, 80),
            https_port=_published_port(container, 443),
            key_file=key_file,
            address=_address(container),
        )
        wait_for_ssh(host)
        return host
    except BaseException:
        _run(["docker", "rm", "-f", container], check=False)
        raise


def boot(
    count: int = 1, prefix: str = "testbed", debian: str = DEBIAN, provisioned: bool = False
) -> list[Host]:
    """Boot ``count`` Debian ``debian`` hosts in parallel (``provisioned``: with the packages
    every deploy installs already there); on any failure none is left running."""
    tag = ensure_image(debian, provisioned)
    key_file = ensure_key()
    session = uuid.uuid4().hex[:8]
    prefix = prefix.replace("_", "-")  # a valid hostname, or sudo cannot resolve it
    names = [f"{prefix}-{session}-{i + 1}" for i in range(count)]
    with ThreadPoolExecutor(max_workers=max(count, 1)) as pool:
        futures = [pool.submit(_boot_one, tag, name, session, key_file) for name in names]
        hosts, errors = [], []
        for future in futures:
            try:
                hosts.append(future.result())
            except Exception as exc:
                errors.append(exc)
    if errors:
        destroy(hosts)
        raise TestbedError(f"{len(errors)} of {count} hosts failed to boot: {errors[0]}")
    return hosts


def destroy(hosts: list[Host]) -> None:
    """Remove the given hosts' containers (missing ones are fine)."""
    if hosts:
        _run(["docker", "rm", "-f", *[h.container for h in hosts]], check=False)


def prune() -> int:
    """Remove every test-bed container, e.g. after a crashed run; return how many."""
    ids = _run(["docker", "ps", "-aq", "--filter", f"label={LABEL}"], check=False).stdout.split()
    if ids:
        _run(["docker", "rm", "-f", *ids], check=False)
    return len(ids)


def _address(container: str) -> str:
    """The container's own address on Docker's network."""
    inspect = [
        "docker",
        "inspect",
        "-f",
        "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
    ]
    return _run([*inspect, container]).stdout.strip()


def reboot(host: Host) -> None:
    """Restart the host's container (a reboot), re-read its ports, wait for systemd and SSH."""
    _run(["docker", "restart", host.container])
    # Docker picks new ephemeral ports on a restart
    host.ssh_port = _published_port(host.container, 22)
    host.http_port = _published_port(host.container, 80)
    host.https_port = _published_port(host.container, 443)
    host.address = _address(host.container)
    _wait_for_systemd(host.container)
    wait_for_ssh(host)


def fleet_groups(hosts: list[Host]) -> dict[str, list[str]]:
    """The first host as the load balancer, the others as app servers: group -> host names."""
    return {"load_balancers": [hosts[0].name], "app_servers": [h.name for h in hosts[1:]]}


def local_groups(
    hosts: list[Host], fleet: bool, backup_server: bool, database_server: bool = False
) -> dict[str, list[str]]:
    """What ``up`` records: with ``database_server`` a host in ``database_servers``, with
    ``backup_server`` the last host in ``backup_servers``, the others app servers (behind
    the first as load balancer with ``fleet``); with none of them, no groups (every host an
    app server)."""
    extra = [("database_servers", database_server), ("backup_servers", backup_server)]
    roles = [group for group, wanted in extra if wanted]
    if not roles:
        return fleet_groups(hosts) if fleet else {}
    servers = hosts[: len(hosts) - len(roles)]
    others = fleet_groups(servers) if fleet else {"app_servers": [h.name for h in servers]}
    tail = hosts[len(servers) :]
    return {**others, **{group: [h.name] for group, h in zip(roles, tail, strict=True)}}


def inventory_groups(
    hosts: list[Host], groups: dict[str, list[str]] | None = None
) -> dict[str, list[tuple[str, dict]]]:
    """A pyinfra inventory's groups: ``hosts`` alone, or each group of ``groups`` (group ->
    host names) with its hosts' container addresses as ``private_address``."""
    if not groups:
        return {"hosts": [(h.name, h.pyinfra_data()) for h in hosts]}
    return {
        group: [
            (h.name, h.pyinfra_data(private_address=h.address)) for h in hosts if h.name in names
        ]
        for group, names in groups.items()
    }


def write_state(hosts: list[Host], path: Path, groups: dict[str, list[str]] | None = None):
    """Record booted hosts (and their inventory groups, if any) as JSON for an inventory."""
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {"hosts": [asdict(h) for h in hosts], "groups": groups or {}}
    path.write_text(json.dumps(state, indent=2) + "\n")


def _state(path: Path) -> dict:
    state = json.loads(path.read_text())
    return state if isinstance(state, dict) else {"hosts": state, "groups": {}}  # older files


def read_state(path: Path) -> list[Host]:
    """The hosts recorded by write_state."""
    return [Host(**entry) for entry in _state(path)["hosts"]]


def read_groups(path: Path) -> dict[str, list[str]]:
    """The inventory groups recorded by write_state (group -> host names; none: empty)."""
    return _state(path)["groups"]


def role(host: Host, groups: dict[str, list[str]]) -> str:
    """The inventory groups ``host`` is in, for messages ("" when there are none)."""
    return ", ".join(group for group, names in groups.items() if host.name in names)


def http_get(port: int, path: str = "/", host_header: str = "localhost", timeout: float = 5):
    """GET http://127.0.0.1:port/path; return (status, body), or (None, error) when unreachable."""
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path, headers={"Host": host_header})
        resp = conn.getresponse()
        return resp.status, resp.read().decode(errors="replace")
    except (OSError, http.client.HTTPException) as exc:
        return None, str(exc)
    finally:
        conn.close()


def _print_hosts(hosts: list[Host], groups: dict[str, list[str]]) -> None:
    """How to reach each host (its group and container address on a fleet)."""
    for h in hosts:
        where = f" [{role(h, groups)}, private_address {h.address}]" if groups else ""
        print(
            f"{h.name}{where}: {h.url}  https://127.0.0.1:{h.https_port}/"
            f"  ssh -i {h.key_file} -p {h.ssh_port} {h.ssh_user}@127.0.0.1"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m testbed",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="boot local hosts and write .testbed/local.json")
    size = up.add_mutually_exclusive_group()
    size.add_argument("--hosts", type=int, default=1)
    size.add_argument("--fleet", type=int, metavar="N", help="a load balancer and N app servers")
    up.add_argument("--backup-server", action="store_true", help="one more host, in backup_servers")
    up.add_argument(
        "--database-server", action="store_true", help="one more host, in database_servers"
    )
    up.add_argument("--debian", choices=sorted(SUITES), default=DEBIAN)
    sub.add_parser("down", help="remove the hosts booted by `up`")
    sub.add_parser("prune", help="remove every test-bed container")
    sub.add_parser("urls", help="print how to reach the hosts booted by `up`")
    args = parser.parse_args(argv)
    if args.command == "up" and args.fleet is not None and args.fleet < 1:
        parser.error("--fleet needs at least one app server")
    try:
        if args.command == "up":
            if LOCAL_STATE.exists():
                destroy(read_state(LOCAL_STATE))
            started = time.monotonic()
            count = (args.fleet + 1 if args.fleet else args.hosts) + args.backup_server
            count += args.database_server
            hosts = boot(count, prefix="local", debian=args.debian)
            roles = (args.backup_server, args.database_server)
            groups = local_groups(hosts, bool(args.fleet), *roles)
            write_state(hosts, LOCAL_STATE, groups)
            _print_hosts(hosts, groups)
            print(
                f"booted {len(hosts)} host(s) in {time.monotonic() - started:.1f}s;"
                f" inventory: inventories/local.py"
            )
        elif args.command == "urls":
            if LOCAL_STATE.exists():
                _print_hosts(read_state(LOCAL_STATE), read_groups(LOCAL_STATE))
        elif args.command == "down":
            if LOCAL_STATE.exists():
                destroy(read_state(LOCAL_STATE))
                LOCAL_STATE.unlink()
            print("local hosts removed")
        else:
            print(f"removed {prune()} test-bed container(s)")
    except TestbedError as exc:
        print(f"testbed: {exc}", file=sys.stderr)
        return 1
    return 0
