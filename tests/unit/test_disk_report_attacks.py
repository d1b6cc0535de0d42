"""A disk report is data from the network (only the installing machine's own credential makes it,
but that machine runs whatever its firmware and disks say): no field of it may become a path outside
/dev, a shell word, or a number that breaks the views that print it."""

from __future__ import annotations

import pytest

from app.events.disks import Disk, disk_line, parse_disks
from app.status.discovery import disks_comment
from app.status.text import disk_entry

GOOD = {"name": "nvme0n1", "id": "nvme-Samsung_SSD_980_1TB_S64A", "size": 1000204886016, "transport": "nvme"}


def one(raw: dict) -> Disk | None:
    disks, _ = parse_disks([raw])
    return disks[0] if disks else None


@pytest.mark.parametrize("bad_id", ["../../sda", "x/../../../etc/shadow", "x$(reboot)", "x;reboot", "a b", "x`id`",
                                    "..", ".hidden"])
def test_a_by_id_name_that_is_no_udev_name_is_dropped(bad_id):
    disk = one({**GOOD, "id": bad_id})
    assert disk is not None and disk.id == "" and disk.path == "/dev/nvme0n1"


@pytest.mark.parametrize("bad_name", ["../sda", "sda/../../etc", "sd$(id)", "sda b", "..", "sdz]0;pwned"])
def test_a_kernel_name_that_is_no_kernel_name_drops_the_disk(bad_name):
    assert one({**GOOD, "name": bad_name}) is None


def test_every_path_a_report_can_suggest_stays_a_plain_dev_path():
    odd = [{**GOOD, "name": n, "id": i} for n in ("sda", "../x", "a b") for i in ("", "../../x", "ok-1", "$(x)")]
    disks, _ = parse_disks(odd)
    for disk in disks:
        assert disk.path.startswith("/dev/") and ".." not in disk.path.split("/")
        assert all(c.isalnum() or c in "/#+.:=@_-" for c in disk.path), disk.path


@pytest.mark.parametrize("size", [10 ** 400, 2 ** 64, -1])
def test_an_absurd_size_is_dropped_not_a_crash_of_every_view(size):
    disk = one({**GOOD, "size": size})
    assert disk is not None and disk.size == 0
    assert disk_line(disk) and disk_entry(disk)


def test_a_stored_absurd_size_does_not_break_discover():
    """The event log is a file: a size that got in before this check is read back through it too."""
    from app.events import NodeState
    state = NodeState(mac="52:54:00:00:00:0a", name="w")
    state.disks = parse_disks([{**GOOD, "size": 10 ** 400}])[0]
    assert "nvme0n1" in disks_comment([state])


@pytest.mark.parametrize("breaker", ["\u2028", "\u2029", "\x85", "\r"])
def test_discovers_comment_stays_a_comment_when_pasted_as_yaml(breaker):
    """YAML ends a comment at any of its line breaks, Unicode's included: a model string carrying one
    would put its own keys into the cluster.yaml the snippet is pasted into."""
    import yaml

    from app.events import NodeState
    state = NodeState(mac="52:54:00:00:00:0a", name="w")
    state.disks = parse_disks([{**GOOD, "model": f"x{breaker}install_disk: /dev/sda"}])[0]
    comment = disks_comment([state])
    assert yaml.safe_load(comment) is None, comment
