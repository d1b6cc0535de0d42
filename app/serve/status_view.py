"""What the status page, `/status` and `bootstrap-node status` show: one view-model, three renderings.

`EventLog` (the lead's bottom layer) keeps node phases, alerts and discovered MACs. A few facts the
page needs are not node state — asset downloads, dnsmasq restarts, the API coming up, the address
an unknown machine booted from — so `Facts` follows the same events file for them, from where it
last stopped, the way `EventLog.follow` does.
"""

from __future__ import annotations

import os
import time
import weakref
from dataclasses import asdict, dataclass, field
from pathlib import Path

from app.events import PHASES, Event, EventLog, NodeState, Phase, epoch

# The install image a node downloads while it installs: "the big download".
IMAGE_SUFFIXES = ("image.bin.bz2", "image.bin", ".raw", ".raw.gz", ".raw.bz2")
DOWNLOAD_KINDS = ("kernel", "http")  # asset events (kind "kernel" when the MAC is known)
DNSMASQ_RESTARTED = "dnsmasq-restarted"
API_READY = "api-ready"


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
    _offset: int = 0
    _inode: int = 0

    def apply(self, event: Event) -> None:
        if event.kind in DOWNLOAD_KINDS and event.mac and _is_image(str(event.detail.get("file", ""))):
            self._download(event)
        elif event.kind == DNSMASQ_RESTARTED:
            self.dnsmasq_restarts += 1
            self.last_dnsmasq_restart = event.ts
        elif event.kind == API_READY and not self.api_ready:
            self.api_ready, self.api_host = event.ts, event.message
        elif event.kind == "discovered" and event.mac:
            self.unknown_addresses.setdefault(event.mac, str(event.detail.get("ip", "")))
        elif event.kind == "reinstall":
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
        try:
            with path.open("rb") as f:
                st = os.fstat(f.fileno())
                if st.st_ino != self._inode or st.st_size < self._offset:
                    self._inode, self._offset = st.st_ino, 0
                f.seek(self._offset)
                data = f.read()
        except FileNotFoundError:
            return
        complete = data[:data.rfind(b"\n") + 1]
        self._offset += len(complete)
        for line in complete.decode("utf-8", errors="replace").splitlines():
            event = Event.from_json(line)
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
    path (it came from the network, via the log) would leave the root."""
    if assets is None or not url_path.startswith("/assets/"):
        return None
    root = assets.resolve()
    try:
        target = (root / url_path[len("/assets/"):]).resolve()
        target.relative_to(root)
        return target.stat().st_size if target.is_file() else None
    except (OSError, ValueError):
        return None


@dataclass
class Segment:
    phase: str
    start: str  # ISO timestamp
    seconds: float  # until the next phase, or until now for the phase the node is in


@dataclass
class NodeView:
    name: str
    mac: str
    phase: str
    step: int  # 1..len(PHASES); 0 while pending
    installed: bool
    error: str
    updated: str
    first_seen: str
    segments: list[Segment]
    download: Download | None

    @property
    def ready(self) -> bool:
        return self.phase == Phase.READY

    @property
    def failed(self) -> bool:
        return bool(self.error)


@dataclass
class AlertGroup:
    reason: str
    count: int
    last_sender: str  # the address of the last logged one
    last_route: str
    last_node: str
    last_seen: str


@dataclass
class Unknown:
    mac: str
    address: str
    first_seen: str


@dataclass
class Summary:
    nodes: int
    installed: int
    failed: int
    ready: int
    api_ready: str  # ISO timestamp, "" until `wait` saw the API answer
    api_host: str
    waiting: bool  # `wait` or `init` has reported (so Ready counts mean something)


@dataclass
class StatusView:
    generated: str
    summary: Summary
    nodes: list[NodeView]
    alerts: list[AlertGroup]
    dnsmasq_restarts: int
    last_dnsmasq_restart: str
    write_failures: int
    unknown: list[Unknown]
    span: tuple[float, float] = (0.0, 0.0)  # epoch seconds the timelines share: first PXE .. now

    def as_json(self) -> dict:
        """`/status` and `status --format json`. `discovered` and `alerts` keep their first shape."""
        return {"generated": self.generated, "summary": asdict(self.summary),
                "nodes": [_node_json(n) for n in self.nodes],
                "discovered": sorted(u.mac for u in self.unknown),
                "alerts": {a.reason: a.count for a in self.alerts},
                "alert_groups": [asdict(a) for a in self.alerts],
                "dnsmasq_restarts": self.dnsmasq_restarts, "event_log_write_failures": self.write_failures,
                "unknown_machines": [asdict(u) for u in self.unknown]}


def _node_json(node: NodeView) -> dict:
    download = None
    if node.download:
        download = {**asdict(node.download), "percent": node.download.percent}
    return {"name": node.name, "mac": node.mac, "phase": node.phase, "step": f"{node.step}/{len(PHASES)}",
            "error": node.error, "installed": node.installed, "updated": node.updated,
            "first_seen": node.first_seen, "history": [{"ts": s.start, "phase": s.phase} for s in node.segments],
            "timeline": [asdict(s) for s in node.segments], "download": download}


def build(log: EventLog, assets: Path | None = None, now: float | None = None,
          facts: Facts | None = None) -> StatusView:
    """The view of `log` at `now` (epoch seconds; the clock by default)."""
    now = time.time() if now is None else now
    facts = facts if facts is not None else facts_for(log)
    states = log.snapshot()
    nodes = [_node(s, facts, assets, now) for s in states]
    known = log.known
    unknown = [Unknown(mac, facts.unknown_addresses.get(mac, ""), seen)
               for mac, seen in sorted(log.discovered.items()) if mac not in known]
    starts = [epoch(n.segments[0].start) for n in nodes if n.segments]
    summary = Summary(nodes=len(known) or len(nodes), installed=sum(n.installed for n in nodes),
                      failed=sum(n.failed for n in nodes), ready=sum(n.ready for n in nodes),
                      api_ready=facts.api_ready, api_host=facts.api_host,
                      waiting=bool(facts.api_ready) or any(n.ready for n in nodes))
    return StatusView(generated=_iso(now), summary=summary, nodes=nodes, alerts=alert_groups(log),
                      dnsmasq_restarts=facts.dnsmasq_restarts, last_dnsmasq_restart=facts.last_dnsmasq_restart,
                      write_failures=log.write_failures, unknown=unknown,
                      span=(min(starts, default=now), max(now, min(starts, default=now))))


def _node(state: NodeState, facts: Facts, assets: Path | None, now: float) -> NodeView:
    download = facts.downloads.get(state.mac)
    if download is not None:
        download = Download(download.file, download.sent, asset_size(assets, download.file))
    return NodeView(name=state.name or "(unknown)", mac=state.mac, phase=state.phase or "pending",
                    step=PHASES.index(state.phase) + 1 if state.phase in PHASES else 0,
                    installed=state.installed, error=state.error, updated=state.updated,
                    first_seen=state.first_seen, segments=segments(state.history, _end(state, now)),
                    download=download)


def _end(state: NodeState, now: float) -> float:
    """A failed node's clock stopped when it reported the failure; the others' runs on."""
    return epoch(state.updated) if state.error and state.updated else now


def segments(history: list[tuple[str, str]], now: float) -> list[Segment]:
    """Each phase from its first event to the next phase's; the last runs until `now`, except
    Ready, where the path ends."""
    out = []
    for i, (ts, phase) in enumerate(history):
        if i + 1 < len(history):
            end = epoch(history[i + 1][0])
        else:
            end = epoch(ts) if phase == Phase.READY else max(now, epoch(ts))
        out.append(Segment(phase, ts, max(0.0, end - epoch(ts))))
    return out


def alert_groups(log: EventLog) -> list[AlertGroup]:
    """Alerts by reason, most frequent first, each with its last logged sender."""
    last: dict[str, Event] = {}
    for event in list(log.recent_alerts):
        last[str(event.detail.get("reason", "alert"))] = event
    groups = []
    for reason, count in log.alerts.most_common():
        event = last.get(reason)
        detail = event.detail if event else {}
        groups.append(AlertGroup(reason=reason, count=count, last_sender=str(detail.get("remote", "")),
                                 last_route=str(detail.get("route", "")),
                                 last_node=(event.node or event.mac) if event else "",
                                 last_seen=event.ts if event else ""))
    return groups


def _iso(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


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


def last_error(node: NodeView) -> str:
    return f"failed during {node.phase}: {node.error}" if node.error else ""
