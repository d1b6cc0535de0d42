"""The boot storm's simulated machines spread over K processes (BENCH_STORM_PROCS). Real machines
each have a CPU of their own; one asyncio loop driving a thousand of them makes every TFTP round
trip wait for a turn of that loop, so the bench's own loop would be timed as the appliance's. Each
process runs a contiguous block of machines (so each block keeps the BIOS/UEFI alternation), all
power on over the same spread from one common start, and the blocks' results are merged back
into one list in machine order.

Each process also samples its loop: how long one turn takes (`await asyncio.sleep(0)` returns after
every ready callback of that turn has run), and with BENCH_STORM_PROBE=1 each TFTP block's round
trip split at the kernel's receive timestamp (SIOCGSTAMP) into the part before the DATA reached the
machine's socket (the wire and dnsmasq) and the part it waited there for the simulator."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import multiprocessing
import random
import resource
import struct
import time
import weakref
from collections.abc import Callable, Sequence
from pathlib import Path

from bench import firmware

SIOCGSTAMP = 0x8906  # linux/sockios.h: the kernel's receive time of the socket's last datagram
PROBE_EVERY = 0.01  # seconds between loop-turn samples
DEFAULT_PROCS = 1


def split(n: int, k: int) -> list[range]:
    """Machines 0..n-1 in min(k, n) contiguous blocks whose sizes differ by at most one."""
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"the number of simulator processes must be a whole number ≥ 1, not {k!r}")
    if n < 0:
        raise ValueError(f"the number of machines cannot be negative: {n}")
    k = min(k, n) or 1
    return [range(j * n // k, (j + 1) * n // k) for j in range(k)]


def merge(n: int, parts: Sequence[Sequence[firmware.Machine]]) -> list[firmware.Machine]:
    """The blocks' machines as one list in machine order; each of 0..n-1 exactly once, or ValueError."""
    machines = sorted((m for part in parts for m in part), key=lambda m: m.index)
    indices = [m.index for m in machines]
    if indices != list(range(n)):
        seen = set(indices)
        missing = sorted(set(range(n)) - seen)[:5]
        doubled = sorted({i for i in indices if indices.count(i) > 1})[:5] if len(seen) != len(indices) else []
        raise ValueError(f"shard results do not cover machines 0..{n - 1} once each: missing {missing}, "
                         f"twice {doubled}, unknown {sorted(seen - set(range(n)))[:5]}")
    return machines


def percentiles(values: Sequence[float], scale: float = 1000.0) -> dict[str, float | int | None]:
    """p50 / p99 / max of `values` (seconds) in milliseconds, and how many there were."""
    ordered = sorted(values)
    if not ordered:
        return {"n": 0, "p50_ms": None, "p99_ms": None, "max_ms": None}
    at = lambda q: round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * scale, 2)  # noqa: E731
    return {"n": len(ordered), "p50_ms": at(0.5), "p99_ms": at(0.99), "max_ms": round(ordered[-1] * scale, 2)}


class Probe:
    """One process's samples: loop turns, and per TFTP block (when probing) the wait before the
    DATA reached the socket and the wait after."""

    def __init__(self, tftp: bool) -> None:
        self.turns: list[float] = []
        self.before: list[float] = []
        self.after: list[float] = []
        self.tftp = tftp
        self._stamping: weakref.WeakSet = weakref.WeakSet()  # sockets whose receive times the kernel keeps

    def block(self, sock, sent_at: float) -> None:
        """Called as a DATA block is taken from `sock`; `sent_at` is when the packet it answers left.
        The kernel keeps a socket's receive times only from its first SIOCGSTAMP on (before that the
        call answers "now"), so a transfer's first block only switches them on and is not counted."""
        now_wall, now = time.time(), time.monotonic()
        sec, usec = struct.unpack("@ql", fcntl.ioctl(sock.fileno(), SIOCGSTAMP, bytes(16)))
        if sock not in self._stamping:
            self._stamping.add(sock)
            return
        waited = max(0.0, now_wall - (sec + usec / 1e6))
        self.after.append(waited)
        self.before.append(max(0.0, now - sent_at - waited))

    async def loop_turns(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            started = time.monotonic()
            await asyncio.sleep(0)
            self.turns.append(time.monotonic() - started)
            await asyncio.sleep(PROBE_EVERY)


async def run_block(machines: list[firmware.Machine], appliance_ip: str, began: float, spread: float,
                    deadline: float, probe: Probe) -> list[firmware.Machine]:
    """Boot `machines` from this process's loop: each powers on at a random moment of
    [began, began + spread] (monotonic time, the same clock in every process)."""
    stop = asyncio.Event()
    sampler = asyncio.ensure_future(probe.loop_turns(stop))

    async def power_on(machine):
        await asyncio.sleep(max(0.0, began + random.uniform(0, spread) - time.monotonic()))
        return await firmware.boot(machine, appliance_ip, began)

    tasks = [asyncio.ensure_future(power_on(m)) for m in machines]
    _, pending = await asyncio.wait(tasks, timeout=max(0.0, began + deadline - time.monotonic())) \
        if tasks else (set(), set())
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    stop.set()
    await sampler
    for m in machines:
        if m.done_at is None and not m.error:
            m.error = f"unfinished after {deadline:.0f} s (last step done: {list(m.steps)[-1:] or 'none'})"
    return machines


def _cpu() -> tuple[float, float, float]:
    """CPU seconds (all, kernel) and seconds runnable but waiting for a CPU (the scheduler's run queue)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime, usage.ru_stime, runqueue_s("self")


def runqueue_s(pid: int | str) -> float:
    """Seconds process `pid`'s threads have waited runnable for a CPU (/proc/PID/task/*/schedstat)."""
    total = 0
    for stat in Path(f"/proc/{pid}/task").glob("*/schedstat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            total += int(stat.read_text().split()[1])
    return total / 1e9


def _child(conn, make: Callable[[int], firmware.Machine], block: range, appliance_ip: str, spread: float,
           deadline: float, tftp_probe: bool) -> None:
    random.seed()  # a forked child would otherwise repeat its parent's (and its siblings') draws
    machines = [make(i) for i in block]
    probe = Probe(tftp_probe)
    firmware.TFTP_PROBE = probe.block if tftp_probe else None
    conn.send("ready")
    began = conn.recv()
    cpu0 = _cpu()
    asyncio.run(run_block(machines, appliance_ip, began, spread, deadline, probe))
    cpu1 = _cpu()
    conn.send((machines, [b - a for a, b in zip(cpu0, cpu1, strict=True)], probe.turns, probe.before, probe.after))
    conn.close()


def _receive(conn):
    try:
        return conn.recv()
    except EOFError:
        raise RuntimeError("a simulator process ended without its results (its traceback is above)") from None


def run(n: int, k: int, make: Callable[[int], firmware.Machine], appliance_ip: str, spread: float,
        deadline: float, tftp_probe: bool = False) -> tuple[list[firmware.Machine], float, dict]:
    """Boot machines make(0..n-1) from k forked processes started together; returns the machines in
    order, the wall time until the last process finished, and the simulator's CPU and loop samples."""
    ctx = multiprocessing.get_context("fork")
    children = []
    try:
        for block in split(n, k):
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=_child, args=(child, make, block, appliance_ip, spread, deadline, tftp_probe))
            proc.start()
            child.close()
            children.append((proc, parent))
        for _, conn in children:
            if _receive(conn) != "ready":
                raise RuntimeError("a simulator process did not start")
        began = time.monotonic()
        for _, conn in children:
            conn.send(began)
        parts, cpu, cpu_sys, waited, turns, before, after = [], 0.0, 0.0, 0.0, [], [], []
        for _, conn in children:
            machines, (used, used_sys, queued), t, b, a = _receive(conn)
            parts.append(machines)
            cpu, cpu_sys, waited = cpu + used, cpu_sys + used_sys, waited + queued
            turns += t
            before += b
            after += a
        wall = time.monotonic() - began
    finally:
        for proc, conn in children:
            conn.close()
            proc.join(timeout=30)
            if proc.is_alive():
                proc.kill()
                proc.join()
    sim = {"procs": len(children), "simulator_cpu_s": round(cpu, 2), "simulator_sys_cpu_s": round(cpu_sys, 2),
           "simulator_runqueue_s": round(waited, 2),
           "simulator_loop_turn": percentiles(turns)}
    if tftp_probe:
        sim["tftp_block_before_socket"] = percentiles(before)
        sim["tftp_block_in_socket"] = percentiles(after)
    return merge(n, parts), wall, sim


def procs_setting(text: str) -> list[int]:
    """BENCH_STORM_PROCS: one process count, or several separated by commas (each run in turn)."""
    try:
        counts = [int(part) for part in text.split(",")]
    except ValueError:
        counts = []
    if not counts or any(k < 1 for k in counts):
        raise ValueError(f"BENCH_STORM_PROCS must be whole numbers ≥ 1 separated by commas, not {text!r}")
    return counts
