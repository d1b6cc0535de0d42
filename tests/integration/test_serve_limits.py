"""Abuse stays cheap (threat-model.md §5), against a real `serve` process: a bounded slowloris with a
small file-descriptor limit. Idle and trickling connections are closed, a node's request still gets an
answer, and the log does not storm."""

from __future__ import annotations

import json
import resource
import socket
import subprocess
import sys
import time
import urllib.request

from tests.support.assets import serve_options
from tests.support.paths import REPO
from tests.support.processes import free_port, wait_for

NOFILE = 200  # the cap becomes NOFILE - 128 reserved = 72 connections
ATTACKERS = [f"127.0.0.{i}" for i in range(10, 20)]


def start(out, port: int, idle: float = 2) -> subprocess.Popen:
    def small_fd_limit():
        resource.setrlimit(resource.RLIMIT_NOFILE, (NOFILE, NOFILE))
    proc = subprocess.Popen(
        [sys.executable, "-m", "app", "--output", str(out), "serve", "--listen", f"127.0.0.1:{port}", "--dhcp", "none",
         "--tftp", "none", *serve_options(out.parent / "assets"), "--bind", "address", "--idle-timeout", str(idle)],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=small_fd_limit)
    wait_for(lambda: (out / "serve.json").exists() or proc.poll() is not None, what="serve to start")
    assert proc.poll() is None, proc.stderr.read()
    return proc


def trickle(address: str, port: int) -> socket.socket | None:
    s = socket.socket()
    s.settimeout(5)
    try:
        s.bind((address, 0))
        s.connect(("127.0.0.1", port))
        s.sendall(b"GET /ipxe HTTP/1.1\r\nHost: x\r\nX-Slow: ")  # never finishes its headers
    except OSError:
        s.close()
        return None
    return s


def closed_by_server(s: socket.socket) -> bool:
    s.settimeout(0.05)
    try:
        return s.recv(1) == b""
    except TimeoutError:
        return False
    except OSError:
        return True


def test_a_slowloris_is_closed_and_nodes_still_get_answers(generated, tmp_path):
    port = free_port()
    proc = start(generated, port)
    sockets = []
    try:
        for i in range(150):
            s = trickle(ATTACKERS[i % len(ATTACKERS)], port)
            if s is not None:
                sockets.append(s)
        # A node's request gets in although far more sockets than the cap are open or trickling.
        def answered():
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/boot.ipxe", timeout=2) as r:
                    return r.status == 200
            except OSError:
                return False
        wait_for(answered, 10, "a node's request to be answered during the flood")
        # Every trickling connection is closed by the server once its idle time is up.
        wait_for(lambda: all(closed_by_server(s) for s in sockets), 20, "the server to close the slow sockets")
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
            metrics = r.read().decode()
        refused = next(line for line in metrics.splitlines() if line.startswith("bootstrap_node_connections_refused"))
        assert int(refused.split()[-1]) > 0  # the cap (72 here) was enforced
    finally:
        for s in sockets:
            s.close()
        proc.terminate()
        _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 0
    assert len(stderr.splitlines()) < 40, stderr[-3000:]  # no log storm
    assert json.dumps(stderr).count("Traceback") == 0


def slow_body(address: str, port: int) -> socket.socket | None:
    """A callback whose headers are complete and whose body never is (the red team's attack, item 5)."""
    s = socket.socket()
    s.settimeout(5)
    try:
        s.bind((address, 0))
        s.connect(("127.0.0.1", port))
        s.sendall(b"POST /events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Content-Length: 1000\r\n\r\n{")
    except OSError:
        s.close()
        return None
    return s


class SlowBodies:
    """`count` callbacks whose bodies never finish, from the attackers' addresses, each sent one more
    byte at most every half second (`trickle()`): never idle, never done."""

    def __init__(self, port: int, count: int):
        self.sockets = [s for i in range(count) if (s := slow_body(ATTACKERS[i % len(ATTACKERS)], port))]
        self.last = 0.0

    def trickle(self) -> None:
        if time.monotonic() - self.last < 0.5:
            return
        self.last = time.monotonic()
        for s in self.sockets:
            try:
                s.send(b" ")
            except OSError:
                pass

    def all_closed(self) -> bool:
        self.trickle()
        return all(closed_by_server(s) for s in self.sockets)

    def close(self) -> None:
        for s in self.sockets:
            s.close()


def node_answered(port: int, bodies: SlowBodies) -> bool:
    bodies.trickle()
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/boot.ipxe", timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 0
    assert "Traceback" not in stderr, stderr[-4000:]


def test_connections_waiting_on_a_body_are_evicted_for_a_node(generated):
    """Issue #33, item 5: 66 addresses x 64 trickled bodies took every connection and a real node's was
    reset. A connection waiting on a body is evicted for a newcomer like an idle one. The body
    deadline is 60 s here, so only eviction can let the node in within the 10 s allowed."""
    port = free_port()
    proc = start(generated, port, idle=60)
    bodies = SlowBodies(port, 100)  # more than the cap of 72
    try:
        assert len(bodies.sockets) > 72
        wait_for(lambda: node_answered(port, bodies), 10, "a node's request to be answered among slow bodies")
    finally:
        bodies.close()
        stop(proc)


def test_a_slow_body_is_cut_off_at_the_deadline(generated):
    """A body must arrive whole within the idle timeout (2 s here), however steadily it trickles."""
    port = free_port()
    proc = start(generated, port)
    bodies = SlowBodies(port, 20)
    try:
        wait_for(bodies.all_closed, 20, "the server to close every slow body while it still trickled")
        assert node_answered(port, bodies)
    finally:
        bodies.close()
        stop(proc)
