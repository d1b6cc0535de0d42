"""What the status page, `/status` and `bootstrap-node status` show: one view-model, three renderings
(`page.py`, `as_json`, `text.py`). Node phases, alerts and discovered MACs come from the `EventLog`;
what is not node state comes from `facts.py`.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from app.events import PHASES, EventLog, NodeState, Phase, epoch
from app.events.disks import Disk
from app.status.facts import Download, Facts, asset_size, facts_for


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
    disks: list[Disk] = field(default_factory=list)  # as the machine reported them

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
    last_sender: str  # the address of the last one
    last_route: str
    last_node: str
    last_seen: str
    last_mac: str = ""  # the last sender's MAC in the neighbour table ("" when it had none)
    first_sender: str = ""  # the first one's address: under a flood of repeats, likely the attacker
    first_mac: str = ""
    first_seen: str = ""


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
            "timeline": [asdict(s) for s in node.segments], "download": download,
            "disks": [d.as_dict() for d in node.disks]}


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
                    download=download, disks=list(state.disks))


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
    """Alerts by reason, most frequent first, each with its first and last sender."""
    groups = []
    for reason, count in log.alerts.most_common():
        first, last = log.alert_senders.get(reason, ({}, {}))
        groups.append(AlertGroup(reason=reason, count=count, last_sender=str(last.get("remote", "")),
                                 last_route=str(last.get("route", "")), last_node=str(last.get("node", "")),
                                 last_seen=str(last.get("ts", "")), last_mac=str(last.get("link_mac", "")),
                                 first_sender=str(first.get("remote", "")), first_mac=str(first.get("link_mac", "")),
                                 first_seen=str(first.get("ts", ""))))
    return groups


def _iso(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))
