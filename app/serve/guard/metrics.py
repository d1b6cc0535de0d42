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
    alerts: Counter = field(default_factory=Counter)  # reason -> count (every one, logged or not)
    bad_callbacks: int = 0
    connections_refused: int = 0

    def connection_refused(self) -> None:
        self.connections_refused += 1

    def request(self, route: str, status: int) -> None:
        self.requests[(route, status)] += 1

    def alert(self, reason: str) -> None:
        self.alerts[reason] += 1

    def counters(self) -> dict:
        """Everything counted, as JSON (a worker publishes it for the others' /metrics)."""
        return {"requests": [[route, status, n] for (route, status), n in self.requests.items()],
                "bytes_sent": self.bytes_sent, "dnsmasq_restarts": self.dnsmasq_restarts,
                "alerts": dict(self.alerts), "bad_callbacks": self.bad_callbacks,
                "connections_refused": self.connections_refused}

    @classmethod
    def total(cls, parts: list[dict]) -> Metrics:
        """The sum of several workers' counters; a malformed part counts as nothing."""
        total = cls()
        for part in parts:
            try:
                for route, status, n in part.get("requests", []):
                    total.requests[(str(route), int(status))] += int(n)
                for name in ("bytes_sent", "dnsmasq_restarts", "bad_callbacks", "connections_refused"):
                    setattr(total, name, getattr(total, name) + int(part.get(name, 0)))
                total.alerts.update({str(k): int(v) for k, v in part.get("alerts", {}).items()})
            except (TypeError, ValueError, AttributeError):
                continue
        return total

    def render(self, nodes: list[NodeState], log_write_failures: int = 0) -> str:
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
                  f"bootstrap_node_dnsmasq_restarts_total {self.dnsmasq_restarts}",
                  "# HELP bootstrap_node_alerts_total Refused config requests and callbacks, by reason.",
                  "# TYPE bootstrap_node_alerts_total counter"]
        for reason, count in sorted(self.alerts.items()):
            lines.append(f'bootstrap_node_alerts_total{{reason="{_esc(reason)}"}} {count}')
        lines += ["# HELP bootstrap_node_callbacks_refused_total Progress reports without a valid credential.",
                  "# TYPE bootstrap_node_callbacks_refused_total counter",
                  f"bootstrap_node_callbacks_refused_total {self.bad_callbacks}",
                  "# HELP bootstrap_node_connections_refused_total Connections closed at once: over the cap.",
                  "# TYPE bootstrap_node_connections_refused_total counter",
                  f"bootstrap_node_connections_refused_total {self.connections_refused}",
                  "# HELP bootstrap_node_event_log_write_failures_total Events that could not be written "
                  "(a full disk); boot answers went out regardless.",
                  "# TYPE bootstrap_node_event_log_write_failures_total counter",
                  f"bootstrap_node_event_log_write_failures_total {log_write_failures}"]
        return "\n".join(lines) + "\n"


def _esc(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
