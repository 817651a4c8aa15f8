"""Read-only facts pyinfra lacks, shared by several concerns (the verifier, logs.py, the
units). Each runs one command that changes nothing on the host; their parsers are tested on
output captured from real hosts.

Where facts live: here when more than one module reads them; otherwise beside the one
concern that does (Certificate in https.py, LiveRelease in release.py, UFW's state in
ufw.py). A file's contents come from pyinfra's own FileContents, never a hand-written cat."""

from __future__ import annotations

import json
import re
import shlex
from datetime import UTC, datetime

from pyinfra.api import FactBase

EXPOSURE_RE = re.compile(r"Overall exposure level for \S+: (\d+(?:\.\d+)?)")
UNIT_PROPERTIES = (
    "Id",
    "Names",
    "LoadState",
    "ActiveState",
    "UnitFileState",
    "MainPID",
    "ExecMainStartTimestamp",
    "NeedDaemonReload",
    "DropInPaths",
    "InvocationID",
)


class UnitStatus(FactBase):
    """A systemd unit's state: ``{"LoadState": "loaded", "ActiveState": "active",
    "UnitFileState": "enabled",
    "MainPID": 123, "ExecMainStartTimestamp": 1795522339 (unix seconds, 0 if never),
    "NeedDaemonReload": False, "DropInPaths": [the drop-in files systemd loaded],
    "InvocationID": systemd's id of its current run ("" when it never ran)}``.
    ``along``: units read in the same systemctl call; the facts of a group of units that
    each pass the whole group are one command (an app's units: one call, not three). Each
    reads its own unit's block of the output by the unit's ``Id=`` (or an alias in
    ``Names=``), whatever order systemctl shows them in."""

    def command(self, unit: str, along: tuple[str, ...] = ()) -> str:
        """One systemctl call for ``unit`` and ``along``, the same whichever unit asks."""
        props = " ".join(f"-p {p}" for p in UNIT_PROPERTIES)
        self.unit = unit
        return f"systemctl show --timestamp=unix {props} {shlex.join(sorted({unit, *along}))}"

    default = dict

    def process(self, output):
        """This unit's block of systemctl's output (blocks: one per unit, a blank line
        between), its properties typed."""
        raw = unit_blocks(output).get(self.unit, {})
        started = raw.get("ExecMainStartTimestamp", "").lstrip("@")
        return {
            "LoadState": raw.get("LoadState", ""),
            "ActiveState": raw.get("ActiveState", ""),
            "UnitFileState": raw.get("UnitFileState", ""),
            "MainPID": int(raw.get("MainPID") or 0),
            "ExecMainStartTimestamp": int(started) if started.isdigit() else 0,
            "NeedDaemonReload": raw.get("NeedDaemonReload") == "yes",
            "DropInPaths": raw.get("DropInPaths", "").split(),
            "InvocationID": raw.get("InvocationID", ""),
        }


def unit_blocks(output) -> dict[str, dict[str, str]]:
    """``systemctl show``'s properties of each unit, by each of its names (``Id=`` and the
    aliases in ``Names=``)."""
    units: dict[str, dict[str, str]] = {}
    block: dict[str, str] = {}
    for line in [*output, ""]:
        if "=" in line:
            key, value = line.split("=", 1)
            block[key] = value
        elif block:
            for name in (block.get("Id", ""), *block.get("Names", "").split()):
                units.setdefault(name, block)
            block = {}
    return units


class UserCanReadWrite(FactBase):
    """Whether ``user`` can read and write ``path`` (every parent folder traversable too),
    tested as that user with runuser, which gets no handle on the fact's output (a process
    of that user could take it over and answer in its place), and 10 s (that user could
    stop the test, and runuser with it)."""

    def command(self, path: str, user: str) -> str:
        quoted = shlex.quote(path)
        return (
            f"timeout -s KILL 10 runuser -u {shlex.quote(user)} --"
            f" sh -c 'test -r {quoted} && test -w {quoted}'"
            " </dev/null >/dev/null 2>&1 && echo yes || echo no"
        )

    @staticmethod
    def default():
        return False

    def process(self, output):
        return "".join(output).strip() == "yes"


class NginxConfigTest(FactBase):
    """``nginx -t``: ``{"ok": bool, "message": nginx's output}``; None without nginx."""

    def requires_command(self, *args, **kwargs) -> str:
        """The command this fact needs on the host (without it: its default)."""
        return "nginx"

    def command(self) -> str:
        return 'out=$(nginx -t 2>&1); echo "exit=$?"; echo "$out"'

    @staticmethod
    def default():
        return None

    def process(self, output):
        status, *message = output
        return {"ok": status.strip() == "exit=0", "message": "\n".join(message).strip()}


HTTP_PROBE = """
import http.client, signal, socket, ssl, sys, urllib.parse
url, host_header = sys.argv[1], sys.argv[2]
parts = urllib.parse.urlsplit(url)

def expire(_signum, _frame):  # the app may drip its answer: the whole of it within 20 s
    raise TimeoutError("no whole answer within 20 s")

signal.signal(signal.SIGALRM, expire)
signal.alarm(20)

class SiteConnection(http.client.HTTPSConnection):
    def connect(self):  # SNI names the site, not the address connected to
        raw = socket.create_connection((self.host, self.port), self.timeout)
        self.sock = self._context.wrap_socket(raw, server_hostname=host_header)

if parts.scheme == "https":
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE  # see TlsCertificate
    conn = SiteConnection(parts.hostname, parts.port or 443, timeout=10, context=context)
else:
    conn = http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=10)
try:
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    conn.request("GET", target, headers={"Host": host_header})
    resp = conn.getresponse()
    body = resp.read(4096).decode("utf-8", "replace")
except Exception as err:
    print(0); print(type(err).__name__, err); sys.exit(0)
print(resp.status)
for name in HEADERS:
    print(f"{name}:", resp.headers.get(name, ""))
print(body)
"""
RESPONSE_HEADERS = ("cache-control", "location", "strict-transport-security")


class HttpResponse(FactBase):
    """A GET made on the host itself, never following redirects; over https with the Host
    header as SNI and no certificate check (TlsCertificate checks certificates):
    ``{"status": 200, "headers": {RESPONSE_HEADERS: value or ""}, "body": first 4 KiB}``;
    status 0 with the error as body when nothing answered."""

    def requires_command(self, *args, **kwargs) -> str:
        """The command this fact needs on the host (without it: its default)."""
        return "python3"

    def command(self, url: str, host_header: str) -> str:
        probe = HTTP_PROBE.replace("HEADERS", repr(RESPONSE_HEADERS))
        return f"python3 -c {shlex.quote(probe)} {shlex.quote(url)} {shlex.quote(host_header)}"

    @staticmethod
    def default():
        return {"status": 0, "headers": dict.fromkeys(RESPONSE_HEADERS, ""), "body": "no python3"}

    def process(self, output):
        status, *rest = output
        headers = dict.fromkeys(RESPONSE_HEADERS, "")
        while rest and rest[0].split(":", 1)[0] in headers:
            name, value = rest.pop(0).split(":", 1)
            headers[name] = value.strip()
        return {
            "status": int(status) if status.strip().isdigit() else 0,
            "headers": headers,
            "body": "\n".join(rest),
        }


TLS_PROBE = """
import json, socket, ssl, sys
name, cafile = sys.argv[1], sys.argv[2] or None
context = ssl.create_default_context(cafile=cafile)
try:
    with socket.create_connection(("127.0.0.1", 443), timeout=10) as raw:
        with context.wrap_socket(raw, server_hostname=name) as tls:
            cert = tls.getpeercert()
except ssl.SSLCertVerificationError as err:
    print(json.dumps({"verified": False, "error": err.verify_message or str(err)}))
except OSError as err:
    print(json.dumps({"verified": False, "error": f"{type(err).__name__}: {err}"}))
else:
    print(json.dumps({
        "verified": True,
        "error": "",
        "not_after": int(ssl.cert_time_to_seconds(cert["notAfter"])),
        "names": [value for kind, value in cert.get("subjectAltName", ()) if kind == "DNS"],
    }))
"""


class TlsCertificate(FactBase):
    """The certificate nginx serves on 127.0.0.1:443 for the SNI ``server_name``, checked as a
    client checks it (chain to the system store, or to ``cafile``; name; dates):
    ``{"verified": True, "not_after": epoch, "names": [...]}`` or ``{"verified": False,
    "error": why}``."""

    def requires_command(self, *args, **kwargs) -> str:
        """The command this fact needs on the host (without it: its default)."""
        return "python3"

    def command(self, server_name: str, cafile: str) -> str:
        return (
            f"python3 -c {shlex.quote(TLS_PROBE)} {shlex.quote(server_name)} {shlex.quote(cafile)}"
        )

    @staticmethod
    def default():
        return {"verified": False, "error": "no python3"}

    def process(self, output):
        return json.loads("".join(output))


class SandboxExposure(FactBase):
    """``systemd-analyze security``'s overall exposure score of a unit (0 = fully sandboxed,
    10 = not at all), or None when systemd cannot rate it (e.g. the unit is not loaded)."""

    def command(self, unit: str) -> str:
        return f"systemd-analyze security --no-pager {shlex.quote(unit)} 2>&1 | tail -n 1"

    @staticmethod
    def default():
        return None

    def process(self, output):
        match = EXPOSURE_RE.search("\n".join(output))
        return float(match.group(1)) if match else None


class ServiceWritable(FactBase):
    """Whether the running service's processes may write ``path``: the mount covering it in
    the main process's mount namespace (its sandbox) is read-write. None when the service
    is not running."""

    def command(self, unit: str, path: str) -> str:
        return (
            f"echo {shlex.quote(path)}; pid=$(systemctl show -P MainPID {shlex.quote(unit)});"
            ' [ "${pid:-0}" -gt 0 ] && cat /proc/$pid/mountinfo || true'
        )

    @staticmethod
    def default():
        return None

    def process(self, output):
        path, *mounts = output
        covering = []
        for index, line in enumerate(mounts):
            fields = line.split()
            point = fields[4].replace("\\040", " ")
            if path == point or path.startswith(point.rstrip("/") + "/"):
                covering.append((len(point), index, fields[5].split(",")))
        if not covering:
            return None
        return "rw" in max(covering)[2]


class JournalTail(FactBase):
    """The last ``lines`` lines the units logged (journalctl, ISO timestamps), oldest first."""

    def command(self, units: list[str], lines: int) -> str:
        selected = " ".join(f"-u {shlex.quote(unit)}" for unit in units)
        return f"journalctl --no-pager -o short-iso -n {int(lines)} {selected} 2>&1 || true"

    default = list

    def process(self, output):
        return list(output)


class FileTail(FactBase):
    """The last ``lines`` lines of a file (``[]`` when it is missing)."""

    def command(self, path: str, lines: int) -> str:
        return f"tail -n {int(lines)} {shlex.quote(path)} 2>/dev/null || true"

    default = list

    def process(self, output):
        return list(output)


class TimerStatus(FactBase):
    """A timer and the service it starts, from one systemctl call: ``{"ActiveState",
    "UnitFileState", "NextElapse": unix seconds of its next run (0: none scheduled),
    "LastTrigger": unix seconds of its last (0: never), "Running": whether a run is in
    progress (systemd schedules the next once it ends), "Result": the service's last run's
    result (success, exit-code, timeout...), "ExecMainStatus": its exit status}``."""

    def command(self, timer: str) -> str:
        """``timer``: its name without suffix (``NAME.timer`` starts ``NAME.service``)."""
        props = "Id Names ActiveState UnitFileState NextElapseUSecRealtime LastTriggerUSec"
        props += " Result ExecMainStatus"
        self.timer = timer
        units = shlex.join([f"{timer}.timer", f"{timer}.service"])
        # the timers' times ignore --timestamp=: dates in the host's zone, so TZ=UTC
        return f"TZ=UTC systemctl show {' '.join(f'-p {p}' for p in props.split())} {units}"

    default = dict

    def process(self, output):
        """The timer's state, its service's last result."""
        blocks = unit_blocks(output)
        timer, service = (
            blocks.get(f"{self.timer}.timer", {}),
            blocks.get(f"{self.timer}.service", {}),
        )

        def seconds(value: str) -> int:
            try:
                when = datetime.strptime(value, "%a %Y-%m-%d %H:%M:%S UTC")
            except ValueError:  # n/a, or empty: never
                return 0
            return int(when.replace(tzinfo=UTC).timestamp())

        return {
            "ActiveState": timer.get("ActiveState", ""),
            "UnitFileState": timer.get("UnitFileState", ""),
            "NextElapse": seconds(timer.get("NextElapseUSecRealtime", "")),
            "LastTrigger": seconds(timer.get("LastTriggerUSec", "")),
            "Running": service.get("ActiveState") in ("activating", "active", "deactivating"),
            "Result": service.get("Result", ""),
            "ExecMainStatus": service.get("ExecMainStatus", ""),
        }


class AnswerAs(FactBase):
    """What a read-only command prints when ``user`` runs it (runuser: no password, no
    shell; no new privileges; killed after 10 s: the user may be the app, which may make it
    hang), and its exit status: ``{"output": [lines], "status": 0}``."""

    def command(self, user: str, argv: list[str]) -> str:
        return (
            f"timeout -s KILL 10 runuser -u {shlex.quote(user)} -- setpriv --no-new-privs"
            f' {shlex.join(argv)} 2>&1; echo "exit=$?"'
        )

    @staticmethod
    def default():
        return {"output": [], "status": None}

    def process(self, output):
        *lines, last = output or ["exit="]
        status = last.removeprefix("exit=")
        return {"output": lines, "status": int(status) if status.isdigit() else None}


class TcpListeners(FactBase):
    """The TCP addresses a unit's processes listen on, e.g. ``["127.0.0.1:5432"]`` (``ss``
    names each socket's cgroup, which ends with its unit: no process lookup, which root in a
    container may be refused)."""

    unit = ""

    def command(self, unit: str) -> str:
        self.unit = unit
        return "ss -Hltne"

    default = list

    def process(self, output):
        listening = []
        for line in output:
            fields = line.split()
            cgroups = [f for f in fields if f.startswith("cgroup:")]
            if len(fields) > 3 and cgroups and cgroups[0].endswith(f"/{self.unit}"):
                listening.append(fields[3])
        return listening


class BackupList(FactBase):
    """The app's backups on the host, oldest first, each its manifest (``[]``: none)."""

    def command(self, root: str) -> str:
        quoted = shlex.quote(root)
        return f'for m in {quoted}/*/manifest.json; do [ -f "$m" ] && cat "$m"; done; true'

    default = list

    def process(self, output):
        found = []
        for line in output:
            try:
                found.append(json.loads(line))
            except json.JSONDecodeError:
                continue
        return sorted(found, key=lambda m: m.get("backup", ""))


# the python3 of each release, for a host that has none yet (the deploy installs the release's)
RELEASE_PYTHON = {
    "debian 11": (3, 9),
    "debian 12": (3, 11),
    "debian 13": (3, 13),
    "ubuntu 22.04": (3, 10),
    "ubuntu 24.04": (3, 12),
    "ubuntu 25.04": (3, 13),
}


class HostPython(FactBase):
    """The Python the host's virtualenvs are made with: ``{"release": "debian 12",
    "python": (3, 11), "machine": "x86_64"}``; python3's own version when it is there, else
    its release's (RELEASE_PYTHON), else None."""

    def command(self) -> str:
        return (
            '. /etc/os-release 2>/dev/null; echo "release $ID $VERSION_ID";'
            ' echo "machine $(uname -m)";'
            " python3 -c 'import sys; print(\"python\", *sys.version_info[:2])' 2>/dev/null;"
            " true"
        )

    def process(self, output):
        said = dict(line.split(" ", 1) for line in output if " " in line)
        release = said.get("release", "").strip()
        numbers = said.get("python", "").split()
        found = tuple(map(int, numbers)) if len(numbers) == 2 else RELEASE_PYTHON.get(release)
        return {"release": release, "python": found, "machine": said.get("machine", "").strip()}
