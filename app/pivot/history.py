"""What each machine has been through, carried across a move: the event log's node states become the
Machines' status when provisioning moves into the cluster (`pivot`), and the Machines' status becomes
an event log again on the way back (`unpivot`).

Without it a move forgets which machines are installed, and an installed machine that PXE-boots (a
reboot with the network first in its boot order, as the appliance expects) would be handed its install
config again: its disk rewritten, a control-plane member joined twice. With it, the server on the other
side answers it "boot from your disk", as the one before would have.

Only what survives a move is carried: the phase, the timeline of phases reached, the last error, and
whether the install finished. An open install window and its credentials are not: a machine caught
mid-install PXE-boots again and gets a fresh window from the server it finds.
"""

from __future__ import annotations

from pathlib import Path

from app.cluster.machines import MACHINE
from app.events import EventLog
from app.events.model import NodeState, Phase
from app.layout import EVENTS
from app.logs import terminal_safe
from app.serve.cluster import windows
from app.serve.cluster.machine_watch import timeline

PHASES = [p.value for p in Phase]
MAX_ERROR = 2000  # characters of a last error carried back: what a node's own report may hold


def node_states(output: Path, known: dict[str, str]) -> dict[str, NodeState]:
    """MAC -> the state `output`'s event log holds for each of `known` (MAC -> node name); reads only.
    An output with no log (nothing was ever served from it) holds none."""
    if not (output / EVENTS).is_file():
        return {}
    log = EventLog(output, known)
    return {mac: state for mac, state in log.nodes.items() if mac in known}


def machine_status(state: NodeState) -> dict | None:
    """The status a new Machine starts with, from its node's state; None when the log has no phase."""
    if state.phase not in PHASES:
        return None
    status: dict = {"phase": state.phase}
    if steps := timeline(state.history):
        status["timeline"] = steps
    if state.error:
        status["lastError"] = terminal_safe(state.error)
    if state.installed:
        status[windows.FIELD] = {"installed": True}
    return status


def statuses(objects: list[dict], states: dict[str, NodeState]) -> dict[str, dict]:
    """Machine name -> the status to start it with, for the Machines among `objects` whose node the
    log knows."""
    out = {}
    for obj in objects:
        if obj["kind"] == MACHINE and (state := states.get(obj["spec"]["mac"])) is not None:
            if (status := machine_status(state)) is not None:
                out[obj["metadata"]["name"]] = status
    return out


def state_of(machine: dict) -> NodeState | None:
    """A Machine's node state as the event log would hold it (the way back); None when its status has
    nothing to carry, or a reinstall was asked for that the cluster has not acted on yet (the machine
    starts over). Only what the reader can trust, and bounded: a status is anyone's with the right to
    write it, and one oversized line would be skipped by the log's reader, taking the state with it."""
    status = machine.get("status") if isinstance(machine.get("status"), dict) else {}
    spec = machine.get("spec") or {}
    if _int(spec.get("reinstall")) > _int(status.get("observedReinstall")):
        return None
    phase = str(status.get("phase") or "")
    saved = windows.decode(machine["metadata"]["name"], "", status, 0.0)
    if phase not in PHASES and not saved.installed:
        return None
    steps = status.get("timeline") if isinstance(status.get("timeline"), list) else []
    raw = [(str(s.get("time", "")), str(s.get("phase", ""))) for s in steps if isinstance(s, dict)]
    history = [(s["time"], s["phase"]) for s in timeline(raw)]  # forward only, each phase once
    return NodeState(mac=spec["mac"], name=machine["metadata"]["name"],
                     phase=phase if phase in PHASES else Phase.INSTALLED.value,
                     error=str(status.get("lastError") or "")[:MAX_ERROR], installed=saved.installed,
                     history=history, first_seen=history[0][0] if history else "",
                     updated=history[-1][0] if history else "")


def _int(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def event_log(machines: list[dict]) -> bytes:
    """events.jsonl for the exported tree: one snapshot line per Machine with something to carry, as a
    compaction writes them (replaying it restores those states)."""
    states = [s for m in machines if (s := state_of(m)) is not None]
    return "".join(s.snapshot_event().line() for s in states).encode()
