"""A download load generator: N clients, each one thread with a blocking socket, repeatedly GET one
file for a fixed time. Records time to first byte per request and bytes received (partial
downloads at the deadline count). Keep-alive when the server allows it, reconnecting otherwise."""

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


def _client(host: str, port: int, path: str, deadline: float, result: ClientResult) -> None:
    buffer = memoryview(bytearray(4 << 20))
    sock = None
    request = f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: keep-alive\r\n\r\n".encode()
    while time.monotonic() < deadline:
        try:
            if sock is None:
                sock = socket.create_connection((host, port), timeout=30)
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
                n = sock.recv_into(buffer, min(len(buffer), length - got))
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


def run(url: str, path: str, clients: int, seconds: float) -> list[ClientResult]:
    host, port = url.split("//", 1)[1].split(":")
    deadline = time.monotonic() + seconds
    results = [ClientResult() for _ in range(clients)]
    threads = [threading.Thread(target=_client, args=(host, int(port), path, deadline, r), daemon=True)
               for r in results]
    for t in threads:
        t.start()
    for t in threads:
        t.join(seconds + 60)
    return results
