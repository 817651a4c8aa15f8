"""A raw uwsgi-protocol client, run on a test host as some local user: it plays a process
that talks to an app's uWSGI socket directly, bypassing nginx (standard library only).

    python3 uwsgi_client.py SOCKET [NAME=VALUE ...]

Prints the response, or ``connect failed: ...`` when the socket refuses this user.
"""

import socket
import struct
import sys


def packet(variables: dict[str, str]) -> bytes:
    """A uwsgi request: header (modifier1 0, size, modifier2 0), then length-prefixed vars."""
    body = b"".join(
        struct.pack("<H", len(k)) + k + struct.pack("<H", len(v)) + v
        for k, v in ((k.encode(), v.encode()) for k, v in variables.items())
    )
    return struct.pack("<BHB", 0, len(body), 0) + body


def request(path: str, extra: dict[str, str]) -> str:
    variables = {
        "REQUEST_METHOD": "GET",
        "REQUEST_URI": "/",
        "PATH_INFO": "/",
        "QUERY_STRING": "",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "SERVER_NAME": "localhost",
        "SERVER_PORT": "80",
        "HTTP_HOST": "localhost",
        "REMOTE_ADDR": "127.0.0.1",
        **extra,
    }
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(10)
        try:
            sock.connect(path)
        except OSError as exc:
            return f"connect failed: {exc}"
        sock.sendall(packet(variables))
        return b"".join(iter(lambda: sock.recv(65536), b"")).decode(errors="replace")


if __name__ == "__main__":
    print(request(sys.argv[1], dict(arg.split("=", 1) for arg in sys.argv[2:])))
