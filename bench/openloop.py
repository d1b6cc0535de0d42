"""An open-loop HTTP load generator: requests go out on a fixed schedule (rate per second), whether or
not earlier ones have been answered, the way a rack of machines powering on does not wait for each
other. A closed loop (wrk) sends the next request only when one comes back, so a slow server slows
the load down and its queueing never shows in the latency (coordinated omission).

Latency is measured from the *scheduled* send time, so time a request waited because the generator
or the server fell behind counts. The generator's own lateness (actual minus scheduled send time) is
reported separately: when it is large, the generator, not the server, was the limit. Each request is
a new connection from the simulated machine's own address, as iPXE and the installer make them, so
connection setup is part of every latency.

Run as its own process (`python -m bench.openloop URL RATE SECONDS PATHS_FILE`), so that its CPU does
not share an interpreter with the download clients; prints one JSON object.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

TIMEOUT = 10.0  # a request unanswered this long is counted as a timeout


@dataclass
class Outcome:
    latencies: list[float] = field(default_factory=list)  # seconds, scheduled send -> last body byte
    lateness: list[float] = field(default_factory=list)  # seconds, scheduled -> actual send
    statuses: dict[int, int] = field(default_factory=dict)
    errors: int = 0
    timeouts: int = 0
    sent: int = 0
    seconds: float = 0.0
    connections: int = 0


def parse_head(data: bytes) -> tuple[int, int, bool] | None:
    """(status, content length, keep-alive) from a complete response head, else None."""
    end = data.find(b"\r\n\r\n")
    if end < 0:
        return None
    lines = data[:end].decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    length, keep = 0, lines[0].startswith("HTTP/1.1")
    for line in lines[1:]:
        name, _, value = line.partition(":")
        name = name.strip().lower()
        if name == "content-length":
            length = int(value)
        elif name == "connection" and "close" in value.lower():
            keep = False
    return status, end + 4 + length, keep


class Exchange(asyncio.Protocol):
    """One connection, one request, one response (`Connection: close`): what a booting machine does."""

    def __init__(self, raw: bytes, done: asyncio.Future):
        self.raw, self.done = raw, done
        self.buffer = bytearray()

    def connection_made(self, transport) -> None:
        transport.write(self.raw)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        head = parse_head(self.buffer)
        if head is not None and len(self.buffer) >= head[1] and not self.done.done():
            self.done.set_result(head[0])

    def connection_lost(self, exc) -> None:
        if not self.done.done():
            self.done.set_exception(ConnectionError("closed before a complete answer"))


def machine_address(machine: int) -> str:
    """Each simulated machine has its own loopback address (127.1.0.0/16): the server sees a rack,
    not one client, so its per-address connection cap and address-bound install windows apply as
    they would on a real L2."""
    return f"127.1.{machine // 250 % 250}.{machine % 250 + 1}"


class Generator:
    def __init__(self, host: str, port: int, request_for: Callable[[int], tuple[int, bytes]]):
        self.host, self.port, self.request_for = host, port, request_for
        self.outcome = Outcome()

    async def one(self, index: int, scheduled: float) -> None:
        out = self.outcome
        loop = asyncio.get_running_loop()
        machine, raw = self.request_for(index)
        done = loop.create_future()
        transport = None
        try:
            out.lateness.append(time.monotonic() - scheduled)
            transport, _ = await asyncio.wait_for(loop.create_connection(
                lambda: Exchange(raw, done), self.host, self.port, local_addr=(machine_address(machine), 0)), TIMEOUT)
            out.connections += 1
            status = await asyncio.wait_for(done, TIMEOUT)
        except TimeoutError:
            out.timeouts += 1
            return
        except (OSError, ConnectionError):
            out.errors += 1
            return
        finally:
            if transport is not None:
                transport.close()
        out.latencies.append(time.monotonic() - scheduled)
        out.statuses[status] = out.statuses.get(status, 0) + 1

    async def run(self, rate: float, seconds: float) -> Outcome:
        """Fire request i at start + i/rate; wake at most every millisecond and send all that are due."""
        start = time.monotonic()
        total = int(rate * seconds)
        tasks = []
        for i in range(total):
            scheduled = start + i / rate
            delay = scheduled - time.monotonic()
            if delay > 0.001:
                await asyncio.sleep(delay)
            tasks.append(asyncio.ensure_future(self.one(i, scheduled)))
            self.outcome.sent += 1
        await asyncio.gather(*tasks)
        self.outcome.seconds = time.monotonic() - start
        return self.outcome


def boot_pairs(queries: list[str], host: str, rate: float, gap: float = 0.5) -> Callable[[int], tuple[int, bytes]]:
    """Even slots: the next machine asks /ipxe (its PXE boot). Odd slots: the machine that asked /ipxe
    `gap` seconds earlier asks /ignition (its installer). Machine m is queries[m % len(queries)]."""
    lag = max(1, int(rate * gap / 2))

    def request(index: int) -> tuple[int, bytes]:
        machine, route = index // 2, "ipxe"
        if index % 2 == 1 and machine >= lag:
            machine, route = machine - lag, "ignition"
        machine %= len(queries)
        raw = f"GET /{route}?{queries[machine]} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
        return machine, raw.encode()

    return request


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def summary(out: Outcome, rate: float) -> dict:
    def ms(values, q):
        value = percentile(values, q)
        return None if value is None else round(value * 1000, 2)

    return {"offered_rps": rate, "sent": out.sent, "answered": len(out.latencies),
            "achieved_rps": round(len(out.latencies) / out.seconds, 1) if out.seconds else 0,
            "p50_ms": ms(out.latencies, 0.5), "p90_ms": ms(out.latencies, 0.9), "p99_ms": ms(out.latencies, 0.99),
            "max_ms": ms(out.latencies, 1.0), "generator_late_p99_ms": ms(out.lateness, 0.99),
            "statuses": {str(k): v for k, v in sorted(out.statuses.items())}, "errors": out.errors,
            "timeouts": out.timeouts, "connections": out.connections}


def main(url: str, rate: str, seconds: str, queries_file: str) -> None:
    host, port = url.split("//", 1)[1].split(":")
    queries = [line.strip() for line in Path(queries_file).read_text().splitlines() if line.strip()]
    gen = Generator(host, int(port), boot_pairs(queries, host, float(rate)))
    outcome = asyncio.run(gen.run(float(rate), float(seconds)))
    print(json.dumps(summary(outcome, float(rate))))


if __name__ == "__main__":
    main(*sys.argv[1:5])
