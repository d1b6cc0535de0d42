"""Powering nodes: one small module per way (manual, wol, redfish, ipmi) behind `base.Way`.

`way_for` picks a node's way from cluster.yaml; the functions here are what the CLI and `init`
call: start (PXE once, then on), stop, wait for a state (polling with a deadline), and
`after_install`, which points an installed node's next boots at its disk (BMCs and emulators keep
`Once` as `Continuous`, so a node would otherwise PXE-boot again).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

from app.cluster.model import BMC_WAYS, Cluster, Node
from app.power.base import PowerError, PowerStatus, Way
from app.power.ipmi import Ipmi
from app.power.manual import Manual
from app.power.redfish import Redfish
from app.power.wol import WakeOnLan

POLL = 1.0


def way_for(cluster: Cluster, node: Node) -> Way:
    kind = cluster.power_of(node)
    if kind in BMC_WAYS and node.bmc is None:  # validate refuses this; a hand-built Cluster might not
        raise PowerError(node.name, f"power: {kind} needs a bmc: entry")
    if kind == "redfish":
        return Redfish(node.name, node.bmc)
    if kind == "ipmi":
        return Ipmi(node.name, node.bmc)
    if kind == "wol":
        return WakeOnLan(node.name, node.mac, str(cluster.bootstrap.ip), str(cluster.network.cidr.broadcast_address))
    return Manual(node.name)


def through_bmc(cluster: Cluster, node: Node) -> bool:
    return cluster.power_of(node) in BMC_WAYS


def start(way: Way) -> str:
    """Next boot from the network, then power on; a running machine is left running (its next
    boot will PXE)."""
    way.pxe_once()
    if way.status().power == "on":
        return "already on: left running; its next boot is a network boot (power cycle to boot now)"
    way.on()
    return "network boot once, powering on"


def cycle(way: Way, timeout: float) -> str:
    """Off, wait until it is off, then `start` (a cycle is how a node is made to PXE again)."""
    if way.status().power != "off":
        way.off()
        wait_for({way.node: way}, "off", timeout)
    return start(way)


def wait_for(ways: dict[str, Way], want: str, timeout: float, poll: float = POLL,
             sleep: Callable[[float], None] = time.sleep,
             clock: Callable[[], float] = time.monotonic) -> dict[str, PowerStatus | PowerError]:
    """Poll every way until it reports power `want`, or the deadline; what each reported last.
    A state that has not arrived by the deadline becomes a PowerError saying what it still was."""
    deadline = clock() + timeout
    last: dict[str, PowerStatus | PowerError] = {}
    pending = dict(ways)
    while pending:
        for name, way in list(pending.items()):
            try:
                last[name] = way.status()
            except PowerError as exc:
                last[name] = exc
                del pending[name]
                continue
            if last[name].power == want:
                del pending[name]
        if pending and clock() >= deadline:
            for name in pending:
                last[name] = PowerError(name, f"still {last[name].power} {timeout:.0f}s after asking for {want}")
            break
        if pending:
            sleep(poll)
    return last


def after_install(cluster: Cluster, node: Node) -> PowerStatus | None:
    """The node reported `installed`: its following boots start from the disk. Returns the boot
    override read back, or None for nodes whose boot the appliance does not control."""
    if not through_bmc(cluster, node):
        return None
    way = way_for(cluster, node)
    way.boot_disk()
    return way.status()


def probe(cluster: Cluster, node: Node) -> str:
    """Log in to the node's BMC and say what is there (for `validate --online`)."""
    return way_for(cluster, node).describe()


def power_on(cluster: Cluster, ask: Callable[[list[str]], None], say: Callable[[str], None],
             nodes: Iterable[Node] | None = None) -> list[PowerError]:
    """`init`'s power-on: BMC nodes PXE once and power on, Wake-on-LAN nodes are woken, and a
    person is asked for the rest. Failures are said (node, BMC, its answer) and returned; the
    other nodes go on."""
    chosen = list(cluster.nodes if nodes is None else nodes)
    failures: list[PowerError] = []
    by_hand: list[str] = []
    for node in chosen:
        way = way_for(cluster, node)
        if isinstance(way, Manual):
            by_hand.append(node.name)
            continue
        try:
            said = start(way) if way.name in BMC_WAYS else _wake(way)
        except PowerError as exc:
            failures.append(exc)
            say(f"power on failed: {exc}; power {node.name} on by hand")
            continue
        say(f"{node.name} ({way.name}): {said}")
    if by_hand:
        ask(by_hand)
    return failures


def _wake(way: Way) -> str:
    way.on()
    return "sent Wake-on-LAN"


__all__ = ["PowerError", "PowerStatus", "Way", "after_install", "cycle", "power_on", "probe", "start", "through_bmc",
           "wait_for", "way_for"]
