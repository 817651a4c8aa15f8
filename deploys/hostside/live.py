"""``live``: which release uWSGI runs and how many workers are up, read from its stats
server on every deploy (the LiveRelease fact). files/release_gate.py answers it with this
module alone, none of the other checks' (importing is most of what ``live`` costs).

Also the reading of the stats as the app user that the other checks use (``as_user``,
``running``, ``read_stats``).
"""

import json
import marshal
import os
import pwd
import select
import socket
import time

STATS_LIMIT = 1 << 20  # bytes: the app controls what its stats server sends


def as_user(user: str, func, *args, timeout: float = 30):
    """Call ``func(*args)`` in a child process running as ``user`` (its uid and group, no
    other groups) and return its result (str, int, None, lists, dicts: passed back with
    marshal, which only this child writes); RuntimeError if the child failed or gave no
    answer within ``timeout`` seconds (the app may stop it: then it is killed). The child
    never execs: having dropped root, the kernel keeps it undumpable, so the app cannot ptrace
    it or reach into it through /proc (a process exec'd as the app outside its sandbox would
    hand the app a way out of it)."""
    entry = pwd.getpwnam(user)
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: drop root for good, then run func
        status = 1
        try:
            os.close(read_end)
            os.setgroups([])
            os.setgid(entry.pw_gid)
            os.setuid(entry.pw_uid)
            os.write(write_end, marshal.dumps(func(*args)))
            status = 0
        finally:
            os._exit(status)
    os.close(write_end)
    limit = STATS_LIMIT * 2
    try:
        data = read_within(read_end, limit, timeout)
    finally:
        os.close(read_end)
    if data is None or len(data) > limit:
        os.kill(pid, 9)  # SIGKILL (the signal module would cost more to import than this run)
    _, status = os.waitpid(pid, 0)
    if data is None:
        raise RuntimeError(f"{func.__name__} as {user} gave no answer within {timeout} s")
    if status != 0 or not data or len(data) > limit:
        raise RuntimeError(f"{func.__name__} as {user} failed (wait status {status})")
    try:
        return marshal.loads(data)
    except (EOFError, ValueError, TypeError) as err:
        raise RuntimeError(f"{func.__name__} as {user} answered nothing readable") from err


def read_within(fd: int, limit: int, timeout: float) -> bytes | None:
    """What ``fd`` gives until its end (at most ``limit`` bytes and what came with the last
    read); None when that takes longer than ``timeout`` seconds."""
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    deadline = time.monotonic() + timeout
    data = b""
    while len(data) <= limit:
        left = deadline - time.monotonic()
        if left <= 0 or not poller.poll(left * 1000):
            return None
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        data += chunk
    return data


def read_stats(stats_socket: str) -> dict | None:
    """What uWSGI's stats server says, or None when it does not answer within 5 s, sends
    more than STATS_LIMIT bytes or no JSON object."""
    deadline = time.monotonic() + 5
    data = b""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(5)
        sock.connect(stats_socket)
        while chunk := sock.recv(65536):
            data += chunk
            if len(data) > STATS_LIMIT or time.monotonic() > deadline:
                return None
            sock.settimeout(max(deadline - time.monotonic(), 0.01))
        stats = json.loads(data.decode())  # UTF-8, no other codec loaded
    except (OSError, ValueError):
        return None
    finally:
        sock.close()
    return stats if isinstance(stats, dict) else None


def workers_up(stats: dict) -> list[dict]:
    """The workers a stats answer lists with a process (the app controls its shape)."""
    workers = stats.get("workers")
    if not isinstance(workers, list):
        return []
    return [w for w in workers if isinstance(w, dict) and w.get("pid")]


def live_release(stats_socket: str) -> tuple[str | None, int]:
    """The release dir uWSGI runs (its master's cwd is the release's resolved app folder, read
    from the stats server) and how many workers are up; (None, 0) when it does not answer."""
    stats = read_stats(stats_socket)
    if stats is None or not isinstance(stats.get("cwd"), str):
        return None, 0
    return os.path.dirname(os.path.normpath(stats["cwd"])), len(workers_up(stats))


def running(stats: str, user: str) -> tuple[str | None, int]:
    """live_release of the stats socket ``stats``, read as the app user ``user`` (the socket
    is in the app's own folder)."""
    release, workers = as_user(user, live_release, stats)
    return release, workers


def print_live(stats: str, user: str) -> int:
    """``live``: print the release uWSGI runs and its workers (nothing when it is down, does
    not answer in time, or names a folder no deploy makes: our paths are printable ASCII, and
    a character root's stdout cannot encode would fail the run's fact)."""
    try:
        release, workers = running(stats, user)
    except RuntimeError:
        return 0
    if release and release.isascii() and release.isprintable():  # the app forges what it likes
        print(release, workers)
    return 0


def live_command_line(argv: list[str]) -> tuple[str, str] | None:
    """The stats socket and user of ``live --stats=S --user=U``, the way LiveRelease asks it;
    None for any other command line (the cli module parses those)."""
    if len(argv) == 3 and argv[0] == "live":
        stats, user = argv[1].removeprefix("--stats="), argv[2].removeprefix("--user=")
        if argv[1] != stats and argv[2] != user and stats and user:
            return stats, user
    return None
