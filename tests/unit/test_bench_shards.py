"""The storm's machines split over simulator processes and merged back (bench/shards.py): every
machine booted exactly once, each process with both firmware kinds, and a lost or doubled machine
is an error, not a shorter storm."""

import contextlib
import socket
import time

import pytest

from bench.firmware import Machine
from bench.shards import Probe, merge, percentiles, procs_setting, split


def _machines(indices) -> list[Machine]:
    return [Machine(i, f"02:00:00:00:{i >> 8:02x}:{i & 255:02x}", f"10.77.1.{i}", f"ns{i}",
                    "uefi" if i % 2 else "bios") for i in indices]


@pytest.mark.parametrize(("n", "k"), [(1000, 1), (1000, 2), (1000, 3), (1000, 7), (5, 2), (3, 8), (0, 2)])
def test_split_covers_each_machine_once_in_near_equal_blocks(n, k):
    blocks = split(n, k)
    assert [i for block in blocks for i in block] == list(range(n))
    assert len(blocks) == (min(k, n) or 1)
    sizes = [len(b) for b in blocks]
    assert max(sizes) - min(sizes) <= 1


def test_each_block_boots_both_firmware_kinds_in_equal_parts():
    """Interleaving by index would give 2 processes one firmware kind each (BIOS even, UEFI odd)."""
    for block in split(1000, 2) + split(1000, 4):
        kinds = [m.firmware for m in _machines(block)]
        assert abs(kinds.count("bios") - kinds.count("uefi")) <= 1


@pytest.mark.parametrize("k", [0, -1, 1.5, "2", True])
def test_split_refuses_a_process_count_that_is_not_a_whole_number_from_one(k):
    with pytest.raises(ValueError, match="whole number"):
        split(10, k)


def test_merge_puts_the_blocks_back_in_machine_order():
    parts = [_machines(block)[::-1] for block in split(9, 3)][::-1]
    merged = merge(9, parts)
    assert [m.index for m in merged] == list(range(9))
    assert merged[4].mac == "02:00:00:00:00:04"


@pytest.mark.parametrize(("parts", "wrong"), [
    ([_machines(range(0, 5)), _machines(range(6, 10))], "missing [5]"),
    ([_machines(range(0, 6)), _machines(range(5, 10))], "twice [5]"),
    ([_machines(range(0, 10)), _machines([12])], "unknown [12]"),
])
def test_merge_refuses_a_lost_doubled_or_foreign_machine(parts, wrong):
    with pytest.raises(ValueError) as raised:
        merge(10, parts)
    assert wrong in str(raised.value)


def test_procs_setting_reads_one_or_several_counts():
    assert procs_setting("2") == [2]
    assert procs_setting("1,2,4") == [1, 2, 4]


@pytest.mark.parametrize("text", ["", "0", "two", "1,,2", "2,-1"])
def test_procs_setting_refuses_anything_else(text):
    with pytest.raises(ValueError, match="BENCH_STORM_PROCS"):
        procs_setting(text)


def test_percentiles_in_milliseconds():
    assert percentiles([0.001 * i for i in range(1, 101)]) == {"n": 100, "p50_ms": 51.0, "p99_ms": 100.0,
                                                               "max_ms": 100.0}
    assert percentiles([]) == {"n": 0, "p50_ms": None, "p99_ms": None, "max_ms": None}


SO_TIMESTAMP = 29  # Linux's SO_TIMESTAMP (and SCM_TIMESTAMP); Python's socket module does not name it


@contextlib.contextmanager
def _kernel_stamps_datagrams(deadline: float = 10.0):
    """Hold the kernel's datagram stamps on. The first socket to ask for stamps switches them on for
    the whole host (and the last to close switches them off), through deferred work: a datagram that
    arrives a moment after the switch may go unstamped. This socket asks, stays open, and waits until
    a datagram comes with a stamp (an SO_TIMESTAMP message)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as rx, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx:
        rx.bind(("127.0.0.1", 0))
        rx.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMP, 1)
        until = time.monotonic() + deadline
        while True:
            tx.sendto(b"x", rx.getsockname())
            _, ancillary, _, _ = rx.recvmsg(16, socket.CMSG_SPACE(16))
            if any(level == socket.SOL_SOCKET and kind == SO_TIMESTAMP and any(data)
                   for level, kind, data in ancillary):
                break
            if time.monotonic() > until:
                pytest.fail(f"the kernel stamped no datagram within {deadline} s")
            time.sleep(0.01)
        yield


def test_probe_splits_a_round_trip_at_the_kernels_receive_time():
    """A datagram that sat in the socket 50 ms counts as waiting for the simulator, not for the server."""
    with _kernel_stamps_datagrams(), socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as rx, \
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx:
        rx.bind(("127.0.0.1", 0))
        probe = Probe(tftp=True)
        for block in (1, 2):
            sent_at = time.monotonic()
            tx.sendto(b"\0\3\0" + bytes([block]), rx.getsockname())
            time.sleep(0.05)  # a lower bound: the datagram waits at least this long unread
            assert rx.recv(16) == b"\0\3\0" + bytes([block])
            probe.block(rx, sent_at)
    assert len(probe.after) == len(probe.before) == 1  # the first block only switched the stamps on
    assert probe.after[0] >= 0.045
    assert probe.before[0] < 0.02
