"""contrib/grafana-dashboard.json asks only for what /metrics exports."""

from __future__ import annotations

import json
import re
from collections import Counter

import pytest

from app.events import PHASES, NodeState
from app.serve.guard.metrics import Metrics
from tests.support.paths import REPO

DASHBOARD = json.loads((REPO / "contrib" / "grafana-dashboard.json").read_text())
METRIC = re.compile(r"\bbootstrap_node_\w+")
BY_LABELS = re.compile(r"\bby \(([^)]*)\)")
MATCHERS = re.compile(r"\b(\w+)=~?\"([^\"]*)\"")
ADDED_BY_PROMETHEUS = {"instance", "job"}  # target labels every scraped series carries


def exported() -> dict[str, set[str]]:
    """Metric name -> its label names, from a render with every kind of series present."""
    metrics = Metrics(requests=Counter({("/ipxe", 200): 1}), alerts=Counter({"reason": 1}))
    text = metrics.render([NodeState(mac="m", phase="ready", error="x")], 1)
    series: dict[str, set[str]] = {}
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        name, _, labels = line.split(" ")[0].partition("{")
        series.setdefault(name, set()).update(re.findall(r"(\w+)=", labels))
    return series


def expressions() -> list[str]:
    exprs = [t["expr"] for p in DASHBOARD["panels"] for t in p.get("targets", [])]
    exprs += [v["query"]["query"] for v in DASHBOARD["templating"]["list"] if isinstance(v.get("query"), dict)]
    return exprs


def test_it_is_a_dashboard_with_a_prometheus_datasource_variable():
    variables = {v["name"]: v for v in DASHBOARD["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    assert DASHBOARD["title"] and DASHBOARD["uid"] and isinstance(DASHBOARD["schemaVersion"], int)
    for panel in DASHBOARD["panels"]:
        assert panel["datasource"]["uid"] == "${datasource}" and set(panel["gridPos"]) == {"x", "y", "w", "h"}
    assert len({p["id"] for p in DASHBOARD["panels"]}) == len(DASHBOARD["panels"])


@pytest.mark.parametrize("expr", expressions())
def test_every_expression_uses_exported_metrics_and_labels(expr):
    series = exported()
    names = METRIC.findall(expr)
    assert names, f"no bootstrap_node metric in {expr}"
    assert set(names) <= set(series), f"not exported: {set(names) - set(series)}"
    labels = set().union(*(series[n] for n in names)) | ADDED_BY_PROMETHEUS
    for group in BY_LABELS.findall(expr):
        assert {label.strip() for label in group.split(",")} <= labels, expr
    for label, value in MATCHERS.findall(expr):
        assert label in labels, expr
        if label == "phase":
            assert set(value.split("|")) <= {"pending", *PHASES}, expr


def test_every_exported_metric_is_on_the_dashboard():
    used = {name for expr in expressions() for name in METRIC.findall(expr)}
    assert set(exported()) - used == set()
