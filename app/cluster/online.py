"""`validate --online`: checks that need the network: the API server's DNS name, and each BMC."""

from __future__ import annotations

from collections.abc import Callable

import dns.exception
import dns.resolver

from app.cluster.model import BMC_WAYS, Cluster, Node
from app.cluster.problems import Problem
from app.yaml_source import Source


def check_online(cluster: Cluster, source: Source, file: str, nameserver: str | None = None,
                 timeout: float = 5.0) -> list[Problem]:
    name = cluster.cluster.api_server_name
    if not name:
        return []
    loc = ("cluster", "api_server_name")
    pos = source.pos(loc)
    expected = cluster.control_plane_address
    resolver = dns.resolver.Resolver(configure=nameserver is None)
    if nameserver:
        host, _, port = nameserver.partition(":")
        resolver.nameservers = [host]
        resolver.port = int(port or 53)
    resolver.lifetime = timeout

    def problem(message: str, severity="error") -> Problem:
        return Problem(file, pos.line, pos.column, "cluster.api_server_name", message, severity)

    try:
        answer = resolver.resolve(name, "A")
    except dns.resolver.NXDOMAIN:
        return [problem(f"{name} does not exist in DNS; add an A record pointing at {expected}")]
    except dns.resolver.NoAnswer:
        return [problem(f"{name} has no A record; add one pointing at {expected}")]
    except (dns.exception.Timeout, dns.resolver.NoNameservers) as exc:
        return [problem(f"could not resolve {name}: {exc}", "warning")]
    addresses = sorted(r.address for r in answer)
    if expected not in addresses:
        return [problem(f"{name} resolves to {', '.join(addresses)}, not to {expected} "
                        "(the control-plane VIP, or the only controller)")]
    return []


def check_bmcs(cluster: Cluster, source: Source, file: str,
               probe: Callable[[Node], str]) -> tuple[list[Problem], list[str]]:
    """Log in to the BMC of every node powered through one: what each answered (system, power
    state, boot override), or a problem at that node's `bmc`. `probe` comes from app.power (this
    package sits below it) and raises its PowerError, whose text names the BMC and its answer."""
    problems, found = [], []
    for i, node in enumerate(cluster.nodes):
        if node.bmc is None or cluster.power_of(node) not in BMC_WAYS:
            continue
        try:
            found.append(f"{node.name}: {probe(node)}")
        except Exception as exc:  # noqa: BLE001 - the probe's PowerError; its type lives above this layer
            pos = source.pos(("nodes", i, "bmc"))
            problems.append(Problem(file, pos.line, pos.column, f"nodes[{i}].bmc", str(exc)))
    return problems, found
