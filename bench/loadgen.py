"""A download load generator: N clients, each one thread with a blocking socket, repeatedly GET one
file for a fixed time. Records time to first byte per request and bytes received (partial
downloads at the deadline count). Keep-alive when the server allows it, reconnecting otherwise.

`pace` (bytes/s per client) makes each client read no faster than that, with a small receive
buffer so that TCP flow control pushes back on the server: the downloads then cost what they cost
behind a real NIC, instead of as much loopback copying as two cores can do.

Bodies are read with MSG_TRUNC: the kernel discards them without copying them into the client, whose
copy would be a booting machine's CPU, not the appliance's, and on a small bench machine would take
CPU from the server being measured."""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass, field


@dataclass
class ClientResult:
    ttfb: list[float] = field(default_factory=list)
    received: int = 0
    completed: int = 0
    errors: int = 0


def client_address(index: int) -> str:
    """Client i's own loopback source address (127.2.0.0/16): the server caps connections per address,
    and a rack's machines each have their own."""
    return f"127.2.{index // 250 % 250}.{index % 250 + 1}"


PACED_RCVBUF = 256 * 1024


def _hold_pace(pace: float | None, started: float, received: int) -> None:
    """Sleep until `received` bytes are no more than `pace` bytes/s since `started`."""
    if pace:
        ahead = received / pace - (time.monotonic() - started)
        if ahead > 0:
            time.sleep(ahead)


def _connect(host: str, port: int, source: str | None, pace: float | None) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if pace:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, PACED_RCVBUF)
    if source:
        sock.bind((source, 0))
    sock.settimeout(30)
    sock.connect((host, port))
    return sock


def _client(host: str, port: int, path: str, deadline: float, result: ClientResult, source: str | None,
            pace: float | None = None) -> None:
    buffer = memoryview(bytearray(4 << 20))
    sock = None
    begun = time.monotonic()
    request = f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: keep-alive\r\n\r\n".encode()
    while time.monotonic() < deadline:
        try:
            if sock is None:
                sock = _connect(host, port, source, pace)
            started = time.monotonic()
            sock.sendall(request)
            header = b""
            while b"\r\n\r\n" not in header:
                chunk = sock.recv(65536)
                if not chunk:
                    raise ConnectionError("closed")
                if not header:
                    result.ttfb.append(time.monotonic() - started)
                header += chunk
            head, _, body = header.partition(b"\r\n\r\n")
            lines = head.decode("latin-1").lower().split("\r\n")
            length = next(int(l.split(":", 1)[1]) for l in lines if l.startswith("content-length:"))
            keep = not any(l.startswith("connection:") and "close" in l for l in lines) and "http/1.1" in lines[0]
            got = len(body)
            result.received += got
            while got < length and time.monotonic() < deadline:
                _hold_pace(pace, begun, result.received)
                n = sock.recv_into(buffer, min(len(buffer), length - got), socket.MSG_TRUNC)
                if n == 0:
                    raise ConnectionError("closed mid-body")
                got += n
                result.received += n
            if got >= length:
                result.completed += 1
            if not keep or got < length:
                sock.close()
                sock = None
        except (OSError, ConnectionError, StopIteration):
            result.errors += 1
            if sock is not None:
                sock.close()
            sock = None
    if sock is not None:
        sock.close()


def run(url: str, path: str, clients: int, seconds: float, pace: float | None = None) -> list[ClientResult]:
    host, port = url.split("//", 1)[1].split(":")
    deadline = time.monotonic() + seconds
    results = [ClientResult() for _ in range(clients)]
    loopback = host.startswith("127.")
    threads = [threading.Thread(target=_client, daemon=True,
                                args=(host, int(port), path, deadline, r, client_address(i) if loopback else None, pace))
               for i, r in enumerate(results)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(seconds + 60)
    return results
