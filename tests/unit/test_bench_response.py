"""The storm's simulated machines read a whole response, an image to its last byte, over real TCP,
and reuse iPXE's connection as iPXE does (bench/response.py; loopback only): a short count would
make a failed download look like a boot."""

import asyncio
import socket
import threading

from bench.response import KEEP_BODY, Pooled, exchange


def _serve(answers: list[bytes]) -> tuple[tuple[str, int], list[int]]:
    """A server that answers each request in turn; the list it returns counts its connections."""
    listener = socket.create_server(("127.0.0.1", 0))
    connections: list[int] = []

    def run():
        answered = 0
        while answered < len(answers):
            conn, _ = listener.accept()
            connections.append(1)
            with conn:
                while answered < len(answers) and conn.recv(1024):
                    conn.sendall(answers[answered])
                    answered += 1
                    if b"Connection: close" in answers[answered - 1]:
                        break
        listener.close()

    threading.Thread(target=run, daemon=True).start()
    return listener.getsockname(), connections


def _fetch(address, count: int = 1, pool: Pooled | None = None) -> list[tuple[int, bytes]]:
    def open_socket():
        sock = socket.socket()
        sock.setblocking(False)
        return sock

    async def run():
        return [await asyncio.wait_for(exchange(open_socket, address, b"GET / HTTP/1.1\r\n\r\n", pool), 10)
                for _ in range(count)]
    return asyncio.run(run())


def test_an_image_is_read_to_its_last_byte_without_being_kept():
    length = 3 * KEEP_BODY + 5
    head = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % length
    address, _ = _serve([head + b"k" * length])
    assert _fetch(address) == [(200, b"")]


def test_an_image_cut_short_is_an_error_not_a_download():
    length = 3 * KEEP_BODY
    head = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % length
    address, _ = _serve([head + b"k" * (length - 1)])
    try:
        _fetch(address)
    except asyncio.IncompleteReadError as exc:
        assert exc.expected == 1
    else:
        raise AssertionError("a short image was taken for a whole one")


def test_ipxe_fetches_its_script_and_images_over_one_connection():
    script = b"#!ipxe\nkernel /k\n"
    image = b"i" * (KEEP_BODY + 7)
    answers = [b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(script) + script,
               b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(image) + image,
               b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(script) + script]
    address, connections = _serve(answers)
    pool = Pooled()
    assert _fetch(address, 3, pool) == [(200, script), (200, b""), (200, script)]
    assert len(connections) == 1 and pool.sock is not None
    pool.close()


def test_a_connection_the_server_closes_is_not_reused():
    body = b'{"ignition":{"version":"3.4.0"}}'
    closing = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % len(body) + body
    address, connections = _serve([closing, closing])
    pool = Pooled()
    assert _fetch(address, 2, pool) == [(200, body), (200, body)]
    assert len(connections) == 2 and pool.sock is None
