"""Cluster mode's decisions, with no I/O and no clock of their own (docs/pivot.md, "Cluster mode"):
what a watch event on a Machine means for the served tree, which Machines' status to write, which
reinstalls are due, and when the next (coalesced) write may go out.

- A spec change bumps metadata.generation; a status write does not. So the tree is re-rendered on
  ADDED, DELETED and a MODIFIED whose generation moved, and never because of the leader's own status
  writes (which would otherwise loop: write status -> MODIFIED -> render -> ...).
- `spec.reinstall` above `status.observedReinstall` is an operator's `reinstall` of that node; the
  leader acts on it once and writes observedReinstall, so a restart or a new leader does not act
  twice. A Machine with no observedReinstall yet starts from its spec (nothing to act on).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import NamedTuple

from app.events.model import PHASES, epoch
from app.logs import terminal_safe
from app.serve.cluster.windows import timestamp


@dataclass(frozen=True)
class MachineView:
    """What cluster mode keeps of one Machine."""

    mac: str
    generation: int
    reinstall: int
    observed: int | None  # status.observedReinstall, None until the leader first wrote it
    phase: str = ""  # status.phase as the object holds it
    error: str = ""  # status.lastError likewise
    version: str = ""  # metadata.resourceVersion: what a status write that must not race names
    status: dict = field(default_factory=dict, compare=False)  # the whole status (the install window's source)

    @classmethod
    def of(cls, machine: dict) -> MachineView:
        spec, status = machine.get("spec") or {}, machine.get("status") or {}
        observed = status.get("observedReinstall")
        return cls(mac=str(spec.get("mac", "")), generation=int(machine.get("metadata", {}).get("generation") or 0),
                   reinstall=int(spec.get("reinstall") or 0), observed=int(observed) if observed is not None else None,
                   phase=str(status.get("phase") or ""), error=str(status.get("lastError") or ""),
                   version=str(machine.get("metadata", {}).get("resourceVersion") or ""),
                   status=status if isinstance(status, dict) else {})


class Act(str, Enum):
    RENDER = "render"  # the set of machines or a spec changed: render the tree again
    RELIST = "relist"  # the watch cannot go on (410 Gone, an ERROR event): list again, then watch from there
    NOTHING = "nothing"  # a status change, a bookmark, a replay of what is known


def apply_event(known: dict[str, MachineView], event: dict) -> Act:
    """Fold one watch event into `known` (name -> view) and say what it calls for."""
    kind, obj = event.get("type"), event.get("object") or {}
    if kind == "ERROR":
        return Act.RELIST  # 410 Gone among them: the resourceVersion is too old to watch from
    if kind == "BOOKMARK":
        return Act.NOTHING
    name = obj.get("metadata", {}).get("name")
    if not name or kind not in ("ADDED", "MODIFIED", "DELETED"):
        return Act.NOTHING
    before = known.get(name)
    if kind == "DELETED":
        return Act.RENDER if known.pop(name, None) is not None else Act.NOTHING
    view = MachineView.of(obj)
    if before is not None and not newer(view.version, before.version):
        return Act.NOTHING  # a write's answer already brought this version or a later one (fold_in)
    known[name] = view
    if before is None or before.generation != view.generation:
        return Act.RENDER
    return Act.NOTHING


def newer(version: str, than: str) -> bool:
    """Whether resourceVersion `version` may replace `than`. Versions are opaque to clients; the API
    server's are etcd revisions, so two numbers are compared and anything else is taken as newer."""
    if version.isdigit() and than.isdigit():
        return int(version) >= int(than)
    return True


def fold_in(known: dict[str, MachineView], machine: dict) -> bool:
    """Fold in a Machine a write (or a read) returned, ahead of its watch event; whether it was taken.
    Only a newer version of the same generation: a spec change must still reach the render through
    the watch (apply_event), which would not render a generation it already holds."""
    name = (machine.get("metadata") or {}).get("name")
    before = known.get(name) if name else None
    view = MachineView.of(machine)
    if before is None or view.generation != before.generation or not newer(view.version, before.version):
        return False
    known[name] = view
    return True


def resource_version(event: dict) -> str:
    return (event.get("object") or {}).get("metadata", {}).get("resourceVersion", "")


def gone(event: dict) -> bool:
    """An ERROR event saying the resourceVersion is too old (HTTP 410 Gone, reason Expired)."""
    status = event.get("object") or {}
    return event.get("type") == "ERROR" and (status.get("code") == 410 or status.get("reason") in ("Expired", "Gone"))


def due_reinstalls(known: dict[str, MachineView]) -> list[tuple[str, MachineView]]:
    """Machines whose spec.reinstall went past what the leader last acted on, by name."""
    return sorted((name, v) for name, v in known.items() if v.observed is not None and v.reinstall > v.observed)


class Report(NamedTuple):
    """What the event log says of one node (NodeState): its phase, last error, and `history`, each
    phase reached with the time of its first event, in the order reached."""

    phase: str
    error: str
    history: tuple[tuple[str, str], ...] = ()


def timeline(history: tuple[tuple[str, str], ...] | list[tuple[str, str]]) -> list[dict]:
    """`status.timeline` from a Report's history: forward only and each phase once (so never longer
    than the phases), times as RFC 3339 UTC. An entry that is no phase, goes backwards or whose time
    does not parse is left out: the schema and the reader get only what they can trust."""
    out: list[dict] = []
    reached = -1
    for ts, phase in history:
        at, seconds = PHASES.index(phase) if phase in PHASES else -1, epoch(ts)
        if at > reached and seconds:
            out.append({"phase": phase, "time": timestamp(seconds)})
            reached = at
    return out


def merged_timeline(stored: object, history: tuple[tuple[str, str], ...]) -> list[dict]:
    """The timeline to store: the log's, after what the Machine holds of the phases before the log's
    first. Each replica keeps its own log, so a leader that took over mid-install has seen only the
    later phases; the earlier ones' times were the previous leader's, and only the Machine kept them.
    A log with no phase (a failure is all it saw) leaves the stored timeline as it is."""
    log = timeline(history)
    first = PHASES.index(log[0]["phase"]) if log else len(PHASES)
    kept = [(str(s.get("time", "")), str(s.get("phase", ""))) for s in stored if isinstance(s, dict)
            ] if isinstance(stored, list) else []
    return timeline([(ts, phase) for ts, phase in kept if phase in PHASES and PHASES.index(phase) < first]) + log


def status_patches(known: dict[str, MachineView], phases: dict[str, tuple], limit: int) -> dict[str, dict]:
    """name -> status merge patch for the Machines whose phase, timeline, lastError or
    observedReinstall the objects do not yet hold, and for a due reinstall the removal of its install
    window, phase and timeline. `phases`: MAC -> Report (or its first two fields) from the event log;
    a MAC not in it is not written. At most `limit` per round (the rest go in the next round: the API
    server is not flooded by a rack)."""
    patches: dict[str, dict] = {}
    for name, view in sorted(known.items()):
        patch: dict = {}
        if view.mac in phases:
            phase, error, history = Report(*phases[view.mac])
            # The machine's own report (from the LAN), shown by `kubectl get -o wide` and in the Event:
            # spelled out as every terminal line of the appliance is, never obeyed.
            error = terminal_safe(error)
            if phase and phase != view.phase:
                patch["phase"] = phase
            if error != view.error and (error or view.error):
                patch["lastError"] = error or None  # merge patch: null removes it
            steps = merged_timeline(view.status.get("timeline"), history)
            if steps != (view.status.get("timeline") or []):
                patch["timeline"] = steps or None
        if view.observed is None or view.observed < view.reinstall:
            patch["observedReinstall"] = view.reinstall
        if view.observed is not None and view.observed < view.reinstall:
            # The reinstall starts the machine over for every replica: its install, phase and timeline go.
            patch.update({"installWindow": None, "phase": None, "timeline": None})
        if patch:
            patches[name] = patch
            if len(patches) >= limit:
                break
    return patches


@dataclass
class Coalescer:
    """Many marks, one action: `due(now)` says whether to act, at most once per `interval` seconds
    and only if something was marked since the last action."""

    interval: float
    _dirty: bool = False
    _last: float | None = None

    def mark(self) -> None:
        self._dirty = True

    def wait(self, now: float) -> float | None:
        """Seconds until the action is due (0: now), or None when nothing is pending."""
        if not self._dirty:
            return None
        if self._last is None:
            return 0.0
        return max(0.0, self._last + self.interval - now)

    def done(self, now: float) -> None:
        self._dirty, self._last = False, now


@dataclass
class Backoff:
    """Bounded exponential backoff for a watch that keeps failing: `first`, doubling, at most `cap`."""

    first: float = 0.5
    cap: float = 30.0
    _next: float = field(default=0.0, init=False)

    def failed(self) -> float:
        self._next = min(self.cap, self._next * 2 if self._next else self.first)
        return self._next

    def succeeded(self) -> None:
        self._next = 0.0
