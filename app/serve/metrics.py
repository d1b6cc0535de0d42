"""Prometheus text exposition (format 0.0.4) of what the server counts."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from app.events import PHASES, NodeState


@dataclass
class Metrics:
    requests: Counter = field(default_factory=Counter)  # (route, status) -> count
    bytes_sent: int = 0
    dnsmasq_restarts: int = 0

    def request(self, route: str, status: int) -> None:
        self.requests[(route, status)] += 1

    def render(self, nodes: list[NodeState]) -> str:
        lines = ["# HELP bootstrap_node_http_requests_total HTTP requests by route and status.",
                 "# TYPE bootstrap_node_http_requests_total counter"]
        for (route, status), count in sorted(self.requests.items()):
            lines.append(f'bootstrap_node_http_requests_total{{route="{_esc(route)}",status="{status}"}} {count}')
        lines += ["# HELP bootstrap_node_asset_bytes_sent_total Bytes of boot assets sent.",
                  "# TYPE bootstrap_node_asset_bytes_sent_total counter",
                  f"bootstrap_node_asset_bytes_sent_total {self.bytes_sent}",
                  "# HELP bootstrap_node_nodes Nodes by their current phase.",
                  "# TYPE bootstrap_node_nodes gauge"]
        phases = Counter(n.phase or "pending" for n in nodes)
        for phase in ["pending", *PHASES]:
            lines.append(f'bootstrap_node_nodes{{phase="{phase}"}} {phases.get(phase, 0)}')
        lines += ["# HELP bootstrap_node_nodes_failed Nodes whose last report was a failure.",
                  "# TYPE bootstrap_node_nodes_failed gauge",
                  f"bootstrap_node_nodes_failed {sum(1 for n in nodes if n.error)}",
                  "# HELP bootstrap_node_dnsmasq_restarts_total Times the dnsmasq child was restarted.",
                  "# TYPE bootstrap_node_dnsmasq_restarts_total counter",
                  f"bootstrap_node_dnsmasq_restarts_total {self.dnsmasq_restarts}"]
        return "\n".join(lines) + "\n"


def _esc(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
