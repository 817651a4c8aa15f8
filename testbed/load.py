"""A bounded HTTP load on a test host's published port (127.0.0.1 only), run in threads
while something else happens, recording every response."""

from __future__ import annotations

import http.client
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
    samples: list[Sample] = field(default_factory=list)

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
                conn = conn or http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
                try:
                    conn.request("GET", self.path, headers={"Host": self.host_header})
                    resp = conn.getresponse()
                    body = resp.read().decode(errors="replace")
                    sample = Sample(started, resp.status, body, time.monotonic() - started)
                    if resp.will_close:
                        conn.close()
                        conn = None
                    break
                except (OSError, http.client.HTTPException) as exc:
                    conn.close()
                    conn = None
                    sample = Sample(started, 0, repr(exc), time.monotonic() - started)
                    if not (reused and attempt == 1):
                        break
            with self._lock:
                self.samples.append(sample)
            time.sleep(self.pause)
        if conn:
            conn.close()

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
            f"{len(self.samples)} requests, {len(self.failed)} failed,"
            f" max latency {self.max_latency * 1000:.0f} ms"
        )
