"""What the status page shows beyond node states — asset downloads, dnsmasq restarts, the API
coming up, the address an unknown machine booted from — gathered by following the event log.
"""

from __future__ import annotations

import urllib.parse
import weakref
from dataclasses import dataclass, field
from pathlib import Path

from app.confine import confine
from app.events import Event, EventKind, EventLog, Follower

# The install image a node downloads while it installs: "the big download".
IMAGE_SUFFIXES = ("image.bin.bz2", "image.bin", ".raw", ".raw.gz", ".raw.bz2")
DOWNLOAD_KINDS = (EventKind.BOOT_ASSET, EventKind.HTTP)  # asset events (BOOT_ASSET when the MAC is known)


@dataclass
class Download:
    file: str
    sent: int = 0  # bytes in finished responses (a resumed download adds its ranges)
    size: int | None = None  # the file's size under the assets root, when it could be read

    @property
    def percent(self) -> int | None:
        return min(100, self.sent * 100 // self.size) if self.size else None


@dataclass
class Facts:
    """What the page shows beyond node states, accumulated event by event."""

    downloads: dict[str, Download] = field(default_factory=dict)  # mac -> its latest image download
    dnsmasq_restarts: int = 0
    last_dnsmasq_restart: str = ""
    api_ready: str = ""  # when `wait` first saw the API answer
    api_host: str = ""
    unknown_addresses: dict[str, str] = field(default_factory=dict)  # mac -> address it booted from
    _follower: Follower | None = None

    def apply(self, event: Event) -> None:
        if event.kind in DOWNLOAD_KINDS and event.mac and _is_image(str(event.detail.get("file", ""))):
            self._download(event)
        elif event.kind == EventKind.DNSMASQ_RESTARTED:
            self.dnsmasq_restarts += 1
            self.last_dnsmasq_restart = event.ts
        elif event.kind == EventKind.API_READY and not self.api_ready:
            self.api_ready, self.api_host = event.ts, event.message
        elif event.kind == EventKind.DISCOVERED and event.mac:
            self.unknown_addresses.setdefault(event.mac, str(event.detail.get("ip", "")))
        elif event.kind == EventKind.REINSTALL:
            self.downloads.pop(event.mac, None)

    def _download(self, event: Event) -> None:
        file = str(event.detail["file"])
        current = self.downloads.get(event.mac)
        if current is None or current.file != file:
            current = self.downloads[event.mac] = Download(file)
        try:
            current.sent += max(0, int(event.detail.get("bytes", 0)))
        except (TypeError, ValueError):
            pass  # a hand-edited log: the figure stays what it was

    def follow(self, path: Path) -> None:
        """Apply the lines appended to `path` since the last call; a line still being written waits.
        A compacted log is a new file (its first lines only node states, which are not facts): it is
        read from its start, and the facts already gathered stay, as they do for a log cut by hand."""
        if self._follower is None or self._follower.path != path:
            self._follower = Follower(path)
        for _, raw in self._follower.lines():
            event = Event.from_json(raw.decode("utf-8", errors="replace"))
            if event is not None:
                self.apply(event)


# One Facts per EventLog, so a long-running serve reads each line once, and it goes with the log.
_FACTS: weakref.WeakKeyDictionary[EventLog, Facts] = weakref.WeakKeyDictionary()


def facts_for(log: EventLog) -> Facts:
    facts = _FACTS.setdefault(log, Facts())
    facts.follow(log.path)
    return facts


def _is_image(file: str) -> bool:
    return file.rsplit("/", 1)[-1].endswith(IMAGE_SUFFIXES)


def asset_size(assets: Path | None, url_path: str) -> int | None:
    """The size of the file `/assets/...` names under `assets`; None when it is absent or the
    path (it came from the network, via the log) would leave the root (`app.confine`)."""
    if assets is None or not url_path.startswith("/assets/"):
        return None
    target = confine(assets, urllib.parse.quote(url_path[len("/assets/"):]))
    try:
        return target.stat().st_size if target is not None and target.is_file() else None
    except OSError:
        return None
