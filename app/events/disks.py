"""The disks a machine reports in its first install callback (by-id name, size, model, transport,
removable): checked and bounded here, once, when the report arrives, and again when a stored event is
read back. A disk's model string comes from its firmware and the report from the network, so every
string is cut to a length and stripped of control characters; the page escapes it on top (HTML), the
terminal views make it terminal-safe. Pure data, no I/O."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass

MAX_DISKS = 32  # the install script sends at most this many; more is a hostile or broken report
MAX_FIELD = 64
# C0 and C1 controls and DEL (what a terminal obeys), Unicode's line and paragraph separators (YAML ends
# a line, so `discover`'s comment, at them), and the invisible and bidirectional marks (which hide or
# reorder what is shown): nothing a disk's name or model needs.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]")
_FIELDS = ("name", "id", "model", "transport")
# `name` and `id` become a path (Disk.path) that `discover` suggests for install_disk, a word of the next
# install script: a kernel name as the install script sends it, and a by-id name in udev's own characters
# (it replaces the rest with '_' or \xNN), neither starting with '.' (no '..', no '/'). Anything else is
# not what the machine's kernel and udev said: the disk (bad name) or its by-id name (bad id) is dropped.
_NAME = re.compile("[A-Za-z0-9_-]+")
_ID = re.compile("[A-Za-z0-9#+:=@_,-][A-Za-z0-9#+.:=@_,-]*")
MAX_SIZE = 2 ** 63 - 1  # bytes; past it a number only breaks the views that print it (a float overflow)


@dataclass(frozen=True)
class Disk:
    name: str  # the kernel's name: sda, nvme0n1
    id: str = ""  # its /dev/disk/by-id/ name, "" when it has none
    size: int = 0  # bytes
    model: str = ""
    transport: str = ""  # sata, nvme, usb, ...
    removable: bool = False

    @property
    def path(self) -> str:
        """What install_disk should say: the by-id path, which survives a reordering of the disks."""
        return f"/dev/disk/by-id/{self.id}" if self.id else f"/dev/{self.name}"

    @property
    def unsuitable(self) -> str:
        """Why the install script would refuse this disk, or ""."""
        if self.removable:
            return "removable"
        return "on USB" if self.transport == "usb" else ""

    def as_dict(self) -> dict:
        return asdict(self)


def _text(value: object) -> str:
    return _CONTROL.sub("", value)[:MAX_FIELD] if isinstance(value, str) else ""


def _disk(raw: dict) -> Disk | None:
    fields = {k: _text(raw.get(k)) for k in _FIELDS}
    size = raw.get("size")
    if not _NAME.fullmatch(fields["name"]):
        return None
    if not _ID.fullmatch(fields["id"]):
        fields["id"] = ""
    sized = isinstance(size, int) and not isinstance(size, bool) and 0 <= size <= MAX_SIZE
    return Disk(**fields, size=size if sized else 0, removable=raw.get("removable") is True)


def parse_disks(raw: object) -> tuple[list[Disk], int] | str:
    """A callback's `disks`: (the disks, how many past MAX_DISKS were dropped), or why it is refused.
    Entries are objects; a wrong type in a field is dropped to its empty value, not refused: the
    report's other news (its phase) matters more than one odd field."""
    if not isinstance(raw, list):
        return "disks: must be a list of objects\n"
    if not all(isinstance(d, dict) for d in raw[:MAX_DISKS]):
        return "disks: each entry must be an object {name, id, size, model, transport, removable}\n"
    disks = [d for d in (_disk(r) for r in raw[:MAX_DISKS]) if d is not None]
    return disks, max(0, len(raw) - MAX_DISKS)


def disks_detail(disks: list[Disk], dropped: int) -> dict:
    """The event detail that carries them."""
    return {"disks": [d.as_dict() for d in disks], **({"disks_dropped": dropped} if dropped else {})}


def disks_of(detail: dict) -> list[Disk] | None:
    """The disks a stored event or snapshot carries (checked again: the log is a file), or None when
    it carries none."""
    parsed = parse_disks(detail.get("disks")) if "disks" in detail else None
    return None if parsed is None or isinstance(parsed, str) else parsed[0]


def disk_line(disk: Disk) -> str:
    """nvme-Samsung_SSD_980_1TB (nvme0n1): 931.5 GiB, nvme, Samsung SSD 980 1TB"""
    facts = [_size(disk.size), disk.transport, disk.model, *(["removable"] if disk.removable else [])]
    where = f"{disk.id} ({disk.name})" if disk.id else disk.name
    return f"{where}: " + ", ".join(f for f in facts if f)


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return ""  # unreachable: the loop returns at TB
