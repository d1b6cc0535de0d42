"""`validate --online`: checks that need the network (today: the API server's DNS name)."""

from __future__ import annotations

import dns.exception
import dns.resolver

from app.cluster.model import Cluster
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
