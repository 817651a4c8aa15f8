"""Read-only facts the verifier needs and pyinfra lacks. Each runs one command that changes
nothing on the host; their parsers are tested on output captured from real hosts."""

from __future__ import annotations

import re
import shlex

from pyinfra.api import FactBase

EXPOSURE_RE = re.compile(r"Overall exposure level for \S+: (\d+(?:\.\d+)?)")
UNIT_PROPERTIES = (
    "LoadState",
    "ActiveState",
    "UnitFileState",
    "MainPID",
    "ExecMainStartTimestamp",
    "NeedDaemonReload",
)


class UnitStatus(FactBase):
    """A systemd unit's state: ``{"LoadState": "loaded", "ActiveState": "active",
    "UnitFileState": "enabled",
    "MainPID": 123, "ExecMainStartTimestamp": 1795522339 (unix seconds, 0 if never),
    "NeedDaemonReload": False}``."""

    def command(self, unit: str) -> str:
        props = " ".join(f"-p {p}" for p in UNIT_PROPERTIES)
        return f"systemctl show --timestamp=unix {props} {shlex.quote(unit)}"

    @staticmethod
    def default():
        return {}

    def process(self, output):
        raw = dict(line.split("=", 1) for line in output if "=" in line)
        started = raw.get("ExecMainStartTimestamp", "").lstrip("@")
        return {
            "LoadState": raw.get("LoadState", ""),
            "ActiveState": raw.get("ActiveState", ""),
            "UnitFileState": raw.get("UnitFileState", ""),
            "MainPID": int(raw.get("MainPID") or 0),
            "ExecMainStartTimestamp": int(started) if started.isdigit() else 0,
            "NeedDaemonReload": raw.get("NeedDaemonReload") == "yes",
        }


class UserCanReadWrite(FactBase):
    """Whether ``user`` can read and write ``path`` (every parent folder traversable too),
    tested as that user with runuser."""

    def command(self, path: str, user: str) -> str:
        quoted = shlex.quote(path)
        return (
            f"runuser -u {shlex.quote(user)} -- sh -c 'test -r {quoted} && test -w {quoted}'"
            " && echo yes || echo no"
        )

    @staticmethod
    def default():
        return False

    def process(self, output):
        return "".join(output).strip() == "yes"


class NginxConfigTest(FactBase):
    """``nginx -t``: ``{"ok": bool, "message": nginx's output}``; None without nginx."""

    requires_command = "nginx"

    def command(self) -> str:
        return 'out=$(nginx -t 2>&1); echo "exit=$?"; echo "$out"'

    @staticmethod
    def default():
        return None

    def process(self, output):
        status, *message = output
        return {"ok": status.strip() == "exit=0", "message": "\n".join(message).strip()}


HTTP_PROBE = """
import sys, urllib.request, urllib.error
req = urllib.request.Request(sys.argv[1], headers={"Host": sys.argv[2]})
try:
    resp = urllib.request.urlopen(req, timeout=10)
except urllib.error.HTTPError as err:
    resp = err
except Exception as err:
    print(0); print(type(err).__name__, err); sys.exit(0)
print(resp.status); print("cache-control:", resp.headers.get("Cache-Control", ""))
print(resp.read(4096).decode("utf-8", "replace"))
"""


class HttpResponse(FactBase):
    """A GET made on the host itself: ``{"status": 200, "cache_control": header or "",
    "body": first 4 KiB}``; status 0 with the error as body when nothing answered."""

    requires_command = "python3"

    def command(self, url: str, host_header: str) -> str:
        return f"python3 -c {shlex.quote(HTTP_PROBE)} {shlex.quote(url)} {shlex.quote(host_header)}"

    @staticmethod
    def default():
        return {"status": 0, "cache_control": "", "body": "python3 is not installed"}

    def process(self, output):
        status, *rest = output
        cache_control = ""
        if rest and rest[0].startswith("cache-control:"):
            cache_control = rest.pop(0).removeprefix("cache-control:").strip()
        return {
            "status": int(status) if status.strip().isdigit() else 0,
            "cache_control": cache_control,
            "body": "\n".join(rest),
        }


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

    @staticmethod
    def default():
        return []

    def process(self, output):
        return list(output)


class FileTail(FactBase):
    """The last ``lines`` lines of a file (``[]`` when it is missing)."""

    def command(self, path: str, lines: int) -> str:
        return f"tail -n {int(lines)} {shlex.quote(path)} 2>/dev/null || true"

    @staticmethod
    def default():
        return []

    def process(self, output):
        return list(output)
