"""Whether a release answers healthily: a GET through nginx (the gate) or on the candidate's
own socket, each answer whole by a deadline the app cannot stretch. (http.client and ssl
are imported where they are used.)"""

from __future__ import annotations

import signal
import socket
import time
from contextlib import contextmanager
from dataclasses import dataclass

READ_TIMEOUT = 10  # seconds: a connection's own timeout, past the health check's deadline
ERRORS_BEFORE_GIVING_UP = 3  # HTTP 500s in a row: the app's own error, not a slow start


@dataclass(frozen=True)
class Health:
    """What a healthy answer is: GET ``path`` with ``host_header`` gives 200 containing
    ``expect`` within ``timeout`` seconds (through nginx over HTTPS when ``https``)."""

    path: str = "/"
    host_header: str = "localhost"
    expect: str = ""
    timeout: float = 30
    https: bool = False


def through_nginx(check: Health):
    """A connection to the site through nginx: HTTPS when it serves TLS, with the site's name
    as SNI and no certificate check (the verifier does that: this asks the app, not the CA)."""
    import http.client
    import ssl

    if not check.https:
        return http.client.HTTPConnection("127.0.0.1", 80, timeout=10)
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE

    class SiteConnection(http.client.HTTPSConnection):
        """HTTPS to the local nginx, with the site's name as SNI."""

        def connect(self):
            """Connect, then TLS naming the site rather than the address."""
            raw = socket.create_connection((self.host, self.port), self.timeout)
            self.sock = context.wrap_socket(raw, server_hostname=check.host_header)

    return SiteConnection("127.0.0.1", 443, timeout=10, context=context)


def unix_connection(path: str, timeout: float):
    """HTTP over a unix socket (the candidate's uWSGI http-socket)."""
    import http.client

    class UnixHTTPConnection(http.client.HTTPConnection):
        """HTTP to a unix socket."""

        def connect(self):
            """Connect to the socket ``path``."""
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.settimeout(self.timeout)
            self.sock.connect(path)

    return UnixHTTPConnection("localhost", timeout=timeout)


@contextmanager
def within(seconds: float):
    """Raise TimeoutError in whatever blocks once ``seconds`` have passed (a socket read
    included: the app may drip its answer a byte at a time, each in time for a read's own
    timeout). Main thread only."""

    def expire(_signum, _frame):
        """The alarm's handler: time is up."""
        raise TimeoutError(f"no whole answer within {seconds:.0f} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, max(seconds, 0.1))
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def health(check: Health, connect) -> str | None:
    """None when GET check.path answers 200 (with the expected text) within the timeout; the
    problem seen otherwise. Repeated HTTP 500s end the wait early. Each attempt, the whole
    answer included, ends by the deadline (plus a read's own timeout)."""
    import http.client

    deadline = time.monotonic() + check.timeout
    errors = 0
    while True:
        conn = connect()
        try:
            with within(deadline - time.monotonic() + READ_TIMEOUT):
                conn.request("GET", check.path, headers={"Host": check.host_header})
                resp = conn.getresponse()
                body = resp.read(65536).decode("utf-8", "replace")
            if resp.status != 200:
                problem = f"HTTP {resp.status}"
            elif check.expect in body:
                problem = None
            else:
                problem = f"200 without {check.expect!r} (the page began {body[:160]!r})"
            errors = errors + 1 if resp.status == 500 else 0
        except (OSError, http.client.HTTPException) as err:
            problem = f"{type(err).__name__}: {err}"
        finally:
            conn.close()
        if problem is None or errors >= ERRORS_BEFORE_GIVING_UP or time.monotonic() > deadline:
            return problem
        time.sleep(0.5)
