"""The storm's simulated machines read a whole response, an image to its last byte, over real TCP
(bench/response.py; loopback only): a short count would make a failed download look like a boot."""

import asyncio
import socket
import threading

from bench.response import KEEP_BODY, Response


def _serve_once(payload: bytes) -> tuple[str, int]:
    listener = socket.create_server(("127.0.0.1", 0))

    def answer():
        conn, _ = listener.accept()
        with conn:
            conn.recv(1024)
            conn.sendall(payload)
        listener.close()

    threading.Thread(target=answer, daemon=True).start()
    return listener.getsockname()


async def _fetch(address) -> tuple[int, bytes]:
    loop = asyncio.get_running_loop()
    sock = socket.socket()
    sock.setblocking(False)
    with sock:
        await loop.sock_connect(sock, address)
        await loop.sock_sendall(sock, b"GET / HTTP/1.1\r\n\r\n")
        done = loop.create_future()
        loop.add_reader(sock.fileno(), Response(done).readable, sock)
        try:
            return await asyncio.wait_for(done, 10)
        finally:
            loop.remove_reader(sock.fileno())


def test_an_image_is_read_to_its_last_byte_without_being_kept():
    length = 3 * KEEP_BODY + 5
    head = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % length
    assert asyncio.run(_fetch(_serve_once(head + b"k" * length))) == (200, b"")


def test_an_image_cut_short_is_an_error_not_a_download():
    length = 3 * KEEP_BODY
    head = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % length
    try:
        asyncio.run(_fetch(_serve_once(head + b"k" * (length - 1))))
    except asyncio.IncompleteReadError as exc:
        assert exc.expected == 1
    else:
        raise AssertionError("a short image was taken for a whole one")


def test_a_config_is_kept_whole():
    body = b'{"ignition":{"version":"3.4.0"}}'
    raw = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body
    assert asyncio.run(_fetch(_serve_once(raw))) == (200, body)
