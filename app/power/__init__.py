"""Powering nodes on: one small module per way (Wake-on-LAN today); `power_on` picks by cluster.yaml."""

from __future__ import annotations

from collections.abc import Callable

from app.cluster.model import Cluster
from app.power import wol


def power_on(cluster: Cluster, ask: Callable[[list[str]], None], say: Callable[[str], None]) -> None:
    """Wake every node, or (`power: manual`) ask a person to power them on."""
    if cluster.power == "wol":
        wol.wake([n.mac for n in cluster.nodes], str(cluster.bootstrap.ip),
                 str(cluster.network.cidr.broadcast_address))
        say(f"sent Wake-on-LAN to {len(cluster.nodes)} nodes")
        return
    ask([n.name for n in cluster.nodes])
