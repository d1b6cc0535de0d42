"""Short human texts for the status views: durations, sizes, a download's progress, the summary line."""

from __future__ import annotations

from app.events import epoch
from app.events.disks import Disk, disk_line
from app.status.facts import Download
from app.status.view import AlertGroup, NodeView, StatusView


def duration(seconds: float) -> str:
    """45s, 3m 07s, 1h 04m: short enough for a phase chip."""
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m {seconds % 60:02d}s"
    return f"{seconds // 3600}h {seconds % 3600 // 60:02d}m"


def size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"  # unreachable: the loop returns at GiB


def download_text(download: Download) -> str:
    name = download.file.rsplit("/", 1)[-1]
    if download.size:
        return f"{name}: {size(download.sent)} of {size(download.size)} ({download.percent}%)"
    return f"{name}: {size(download.sent)} sent"


def summary_text(view: StatusView) -> str:
    s = view.summary
    parts = [f"installed {s.installed}/{s.nodes}"]
    parts.append(f"API up since {clock(s.api_ready)}" if s.api_ready else "API not up yet")
    if s.waiting:
        parts.append(f"Ready {s.ready}/{s.nodes}")
    if s.failed:
        parts.append(f"{s.failed} failed")
    return " · ".join(parts)


def clock(ts: str) -> str:
    """09:04:05 from an ISO timestamp: the page is about today."""
    return ts[11:19] if len(ts) >= 19 and ts[10] == "T" else ts


def total(node: NodeView) -> float:
    """Seconds from the first PXE request to the last phase reached."""
    if not node.segments:
        return 0.0
    last = node.segments[-1]
    return epoch(last.start) + last.seconds - epoch(node.segments[0].start)


def senders_text(group: AlertGroup) -> str:
    """Who sent an alert group's first and last: "first from 10.0.0.66 (52:54:…) at 09:04:05, last from …"."""
    def one(which: str, address: str, mac: str, ts: str) -> str:
        if not address:
            return ""
        return f"{which} from {address}" + (f" ({mac})" if mac else "") + (f" at {clock(ts)}" if ts else "")
    first = one("first", group.first_sender, group.first_mac, group.first_seen)
    last = one("last", group.last_sender, group.last_mac, group.last_seen)
    return ", ".join(part for part in (first, last) if part)


def last_error(node: NodeView) -> str:
    return f"failed during {node.phase}: {node.error}" if node.error else ""


def disk_entry(disk: Disk) -> str:
    """/dev/disk/by-id/…: 1.0 TB, nvme, Samsung SSD 980 — and why the install would refuse it, if it would."""
    why = f" (not for install_disk: {disk.unsuitable})" if disk.unsuitable else ""
    return f"{disk.path}  {disk_line(disk)}{why}"


def disks_text(node: NodeView) -> list[str]:
    """What `status` prints under the table for a node whose install failed (the usual cause is a
    refused install_disk: these are what to set instead), line by line."""
    return [f"{node.name} reported {len(node.disks)} disks:", *(f"  {disk_entry(d)}" for d in node.disks)]
