"""Machines that PXE-booted but are in no group, and the `nodes:` snippet that adds them."""

from __future__ import annotations

from pathlib import Path

from app.events import EventKind, NodeState, read_events
from app.status.text import disk_entry


def unknown_machines(events: Path, known: dict[str, str]) -> dict[str, str]:
    """MAC -> the address it was first seen from, for every discovered MAC not in `known`."""
    seen: dict[str, str] = {}
    for event in read_events(events):
        if event.kind == EventKind.DISCOVERED and event.mac and event.mac not in known:
            seen.setdefault(event.mac, str(event.detail.get("ip", "")))
    return seen


def nodes_snippet(machines: dict[str, str]) -> str:
    if not machines:
        return "# no unknown machines have PXE-booted\n"
    lines = ["# machines that PXE-booted but are not in cluster.yaml; name them and pick roles and IPs:",
             "nodes:"]
    for i, (mac, ip) in enumerate(machines.items(), 1):
        lines.append(f'  - {{name: node-{i}, role: worker, mac: "{mac}", ip: CHANGE_ME}}'
                     + (f"  # seen from {ip}" if ip else ""))
    return "\n".join(lines) + "\n"


def disks_comment(states: list[NodeState]) -> str:
    """The disks each node reported, as comments under the snippet: what install_disk can name."""
    reported = [s for s in states if s.disks]
    if not reported:
        return ""
    lines = ["# disks the nodes reported (set install_disk to a /dev/disk/by-id/ path: it survives a reordering):"]
    for state in reported:
        lines += [f"#   {state.name or state.mac}: {disk_entry(d)}" for d in state.disks]
    return "\n".join(lines) + "\n"
