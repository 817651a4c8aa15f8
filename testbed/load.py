"""A bounded HTTP load on a test host's published port (127.0.0.1 only), run in threads
while something else happens, recording every response."""

from __future__ import annotations

import http.client
import re
import signal
import socket
import ssl
import subprocess
import threading
import time
from dataclasses import dataclass, field


@dataclass
class Sample:
    started: float
    status: int  # 0: no response (connection error)
    body: str
    latency: float


@dataclass
class Load:
    """``with Load(port) as load: ...`` keeps ``concurrency`` clients busy until the block
    ends, ``max_seconds`` pass or ``max_requests`` are made, whichever comes first."""

    port: int
    path: str = "/"
    host_header: str = "localhost"
    concurrency: int = 8
    max_seconds: float = 180
    max_requests: int = 50_000
    pause: float = 0.01
    tls_name: str = ""  # HTTPS with this name as SNI and Host, verified against ``ca``
    ca: str = ""
    samples: list[Sample] = field(default_factory=list)
    resets: int = 0  # reused connections the server closed under a request (then retried)

    def __enter__(self) -> Load:
        self._stop = threading.Event()
        self._deadline = time.monotonic() + self.max_seconds
        self._lock = threading.Lock()
        self._threads = [
            threading.Thread(target=self._client, daemon=True) for _ in range(self.concurrency)
        ]
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)

    def _client(self) -> None:
        """One keep-alive client; a request on a reused connection that the server closed
        meanwhile (nginx's keepalive limits) is retried once on a new connection, as browsers
        do, so only real failures are counted."""
        conn = None
        while not self._stop.is_set() and time.monotonic() < self._deadline:
            with self._lock:
                if len(self.samples) >= self.max_requests:
                    return
            started = time.monotonic()
            for attempt in (1, 2):
                reused = conn is not None
                try:
                    conn = conn or self._connect()
                    conn.request(
                        "GET", self.path, headers={"Host": self.tls_name or self.host_header}
                    )
                    resp = conn.getresponse()
                    body = resp.read().decode(errors="replace")
                    sample = Sample(started, resp.status, body, time.monotonic() - started)
                    if resp.will_close:
                        conn.close()
                        conn = None
                    break
                except (OSError, http.client.HTTPException) as exc:
                    if conn is not None:
                        conn.close()
                    conn = None
                    sample = Sample(started, 0, repr(exc), time.monotonic() - started)
                    if not (reused and attempt == 1):
                        break
                    with self._lock:
                        self.resets += 1
            with self._lock:
                self.samples.append(sample)
            time.sleep(self.pause)
        if conn:
            conn.close()

    def _connect(self) -> http.client.HTTPConnection:
        """A new connection to the port: plain, or TLS with ``tls_name`` as SNI."""
        if not self.tls_name:
            return http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        context = ssl.create_default_context(cadata=self.ca)
        raw = socket.create_connection(("127.0.0.1", self.port), timeout=30)
        conn = http.client.HTTPConnection(self.tls_name)
        conn.sock = context.wrap_socket(raw, server_hostname=self.tls_name)
        return conn

    def wait_for(self, count: int, timeout: float = 30) -> None:
        """Block until at least ``count`` responses were recorded."""
        deadline = time.monotonic() + timeout
        while len(self.samples) < count and time.monotonic() < deadline:
            time.sleep(0.1)

    @property
    def failed(self) -> list[Sample]:
        return [s for s in self.samples if s.status != 200]

    @property
    def max_latency(self) -> float:
        """The slowest response's latency in seconds (0 before any)."""
        return max((s.latency for s in self.samples), default=0)

    def summary(self) -> str:
        return (
            f"{len(self.samples)} requests, {len(self.failed)} failed, {self.resets} keep-alive"
            f" resets (retried), max latency {self.max_latency * 1000:.0f} ms"
        )


WRK_STATS = {
    "requests": re.compile(r"(\d+) requests in"),
    "non_2xx": re.compile(r"Non-2xx or 3xx responses: (\d+)"),
    "socket_errors": re.compile(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)"
    ),
}


class Wrk:
    """``with Wrk(port) as wrk: ...``: wrk's keep-alive clients at full speed (``-t1 -c8``)
    on a published port of 127.0.0.1 until the block ends (interrupted: wrk then reports)
    or ``max_seconds`` pass; then ``wrk.requests``, ``wrk.errors`` (socket errors and
    non-2xx/3xx answers) and ``wrk.max_latency`` (ms)."""

    def __init__(self, port: int, connections: int = 8, max_seconds: int = 180):
        self.url = f"http://127.0.0.1:{port}/"
        self.command = ["wrk", "-t1", f"-c{connections}", f"-d{max_seconds}s", "--latency"]
        self.requests = self.errors = 0
        self.max_latency, self.output = 0.0, ""

    def __enter__(self) -> Wrk:
        self._process = subprocess.Popen(
            [*self.command, self.url], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        time.sleep(1)  # connections open and busy
        return self

    def __exit__(self, *exc) -> None:
        self._process.send_signal(signal.SIGINT)
        self.output = self._process.communicate(timeout=30)[0]
        found = {name: pattern.search(self.output) for name, pattern in WRK_STATS.items()}
        self.requests = int(found["requests"].group(1)) if found["requests"] else 0
        self.errors = sum(
            int(n)
            for name in ("non_2xx", "socket_errors")
            if found[name]
            for n in found[name].groups()
        )
        latency = re.search(r"Latency\s+\S+\s+\S+\s+(\S+)", self.output)
        self.max_latency = _milliseconds(latency.group(1)) if latency else 0.0

    def summary(self) -> str:
        return (
            f"wrk -c8 keep-alive: {self.requests} requests, {self.errors} errors,"
            f" max {self.max_latency:.0f} ms"
        )


def _milliseconds(text: str) -> float:
    """wrk's ``12.34ms`` / ``1.02s`` / ``850.00us`` in milliseconds."""
    number, unit = re.match(r"([\d.]+)(\w+)", text).groups()
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]
