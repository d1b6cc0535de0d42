"""Rules that span fields run on every field that parsed (issue 12), DNS is required (issue 15.1),
MACs keep one separator style (issue 14), and the Cluster assembled from validated fields is the one
pydantic builds from the whole file."""

from __future__ import annotations

from pathlib import Path

import jsonschema
import pytest

from app.cluster import check
from app.cluster.model import Cluster
from app.cluster.schema import cluster_schema
from app.yaml_source import parse_source
from tests.support.paths import EXAMPLE
from tests.unit.test_cluster_checks import edit, line_of, problems_for

BASE = EXAMPLE.read_text()


def column_of(text: str, needle: str, value: str) -> int:
    """1-based column of `value` on the first line containing `needle`."""
    line = text.splitlines()[line_of(text, needle) - 1]
    return line.index(value) + 1


# (description, edits, expected problems as (path, line needle, value at the column, message fragment))
CASES = [
    ("bad k8s_version elsewhere; pod subnet overlaps service subnet",
     [("k8s_version: v1.36.3", "k8s_version: 1.36"), ("pod_subnet: 10.244.0.0/16", "pod_subnet: 10.96.0.0/16")],
     [("cluster.k8s_version", "k8s_version", "1.36", "must be a version like v1.36.3"),
      ("cluster.pod_subnet", "pod_subnet", "10.96.0.0/16", "overlaps cluster.service_subnet 10.96.0.0/12")]),
    ("bad http_port; bootstrap.ip outside the network",
     [("http_port: 8080", "http_port: eighty"), ("  ip: 10.0.0.2 ", "  ip: 192.168.0.2 ")],
     [("bootstrap.http_port", "http_port", "eighty", "must be a port number"),
      ("bootstrap.ip", "192.168.0.2", "192.168.0.2", "outside network.cidr 10.0.0.0/24")]),
    ("bad DNS server; service subnet overlaps network.cidr",
     [("dns: [10.0.0.1]", "dns: [dns.example]"), ("service_subnet: 10.96.0.0/12", "service_subnet: 10.0.0.0/12")],
     [("network.dns[0]", "dns:", "dns.example", "is not an IPv4 address"),
      ("cluster.service_subnet", "service_subnet", "10.0.0.0/12", "overlaps network.cidr 10.0.0.0/24")]),
    ("bad gateway; a node outside the network",
     [("gateway: 10.0.0.1 ", "gateway: 10.0.0.300 "), ("ip: 10.0.0.22,", "ip: 10.1.0.22,")],
     [("network.gateway", "gateway", "10.0.0.300", "is not an IPv4 address"),
      ("nodes[4].ip", "worker-2", "10.1.0.22", "outside network.cidr")]),
    ("a node with a bad MAC still has its IP checked for duplicates",
     [('"52:54:00:00:00:22"', '"52:54:00:00:00:2G"'), ("ip: 10.0.0.22,", "ip: 10.0.0.21,")],
     [("nodes[4].mac", "worker-2", "\"52:54:00:00:00:2G", "not a MAC address"),
      ("nodes[4].ip", "worker-2", "10.0.0.21", "10.0.0.21 is already used by nodes[3] (worker-1)")]),
    ("a controller with a bad disk still needs the VIP",
     [("control_plane_vip: 10.0.0.10", ""),
      ("name: cp-2, role: controller, mac: \"52:54:00:00:00:12\", ip: 10.0.0.12, install_disk: /dev/disk/by-id/wwn-0x5000c500a0b1c212",
       "name: cp-2, role: controller, mac: \"52:54:00:00:00:12\", ip: 10.0.0.12, install_disk: sda")],
     [("nodes[1].install_disk", "cp-2", "sda,", "absolute device path under /dev/"),
      ("control_plane_vip", "cluster:", "cluster", "required with 3 controllers")]),
]


@pytest.mark.parametrize("desc,edits,expected", CASES, ids=[c[0] for c in CASES])
def test_cross_field_rules_still_run_beside_an_unrelated_bad_field(desc, edits, expected):
    text = BASE
    for old, new in edits:
        text = edit(old, new, text)
    cluster, problems = problems_for(text)
    assert cluster is None
    got = {(p.path, p.line, p.column) for p in problems if p.severity == "error"}
    want = {(path, line_of(text, needle), column_of(text, needle, value)) for path, needle, value, _ in expected}
    assert got == want, [p.text() for p in problems]
    for path, _, _, fragment in expected:
        assert any(p.path == path and fragment in p.message for p in problems), (path, fragment)
    assert all(p.file == "cluster.yaml" for p in problems)


def test_a_node_whose_role_failed_does_not_make_up_a_controller_problem():
    text = BASE.replace("role: controller", "role: worker").replace(
        "name: cp-1, role: worker", "name: cp-1, role: contoller", 1)
    _, problems = problems_for(text)
    assert [(p.path, p.message) for p in problems] == [
        ("nodes[0].role", "'contoller' is not one of: controller, worker; did you mean 'controller'?")]


def test_empty_nodes_list_is_an_error():
    _, problems = problems_for(edit("nodes:\n", "nodes: []\nx_nodes:\n"))
    assert any(p.path == "nodes" and "lists no machines" in p.message for p in problems)


@pytest.mark.parametrize("dns,fragment", [
    (None, "required field is missing: give at least one DNS server"),
    ("dns: []", "is empty: give at least one DNS server"),
    ("dns:", "is empty: give at least one DNS server"),
])
def test_dns_is_required_and_the_message_says_why(dns, fragment):
    text = edit("  dns: [10.0.0.1]", f"  {dns}" if dns else "")
    cluster, problems = problems_for(text)
    assert cluster is None
    [problem] = problems
    assert problem.path == "network.dns" and fragment in problem.message
    assert "Flatcar has no fallback resolver" in problem.message and "gateway" in problem.message
    assert problem.line == line_of(text, "dns:" if dns else "network:")


@pytest.mark.parametrize("mac", ["52:54-00:00-00:11", "52-54-00-00-00:11", "5254.0000-0011"])
def test_mac_with_mixed_separators_is_refused(mac):
    _, problems = problems_for(edit('"52:54:00:00:00:11"', f'"{mac}"'))
    [problem] = problems
    assert problem.path == "nodes[0].mac" and "mixes separators" in problem.message


@pytest.mark.parametrize("mac,accepted", [("52:54:00:00:00:11", True), ("52-54-00-00-00-11", True),
                                          ("5254.0000.0011", True), ("52:54-00:00-00:11", False)])
def test_schema_pattern_agrees_on_separators(mac, accepted):
    validator = jsonschema.Draft202012Validator(cluster_schema()["$defs"]["Node"]["properties"]["mac"])
    assert validator.is_valid(mac) is accepted


@pytest.mark.parametrize("mac", ["ff:ff:ff:ff:ff:ff", "01:00:5e:00:00:01"])
def test_broadcast_and_multicast_macs_stay_refused(mac):
    _, problems = problems_for(edit('"52:54:00:00:00:11"', f'"{mac}"'))
    assert [p.path for p in problems] == ["nodes[0].mac"] and "multicast" in problems[0].message


@pytest.mark.parametrize("extra", ["", "cilium: {wireguard: true}\ngitops: {repo: https://git.example.com/x.git}\n"])
def test_assembled_cluster_equals_whole_model_validation(extra):
    text = BASE.replace("cni: flannel", "cni: cilium") + extra
    source = parse_source(text, Path("cluster.yaml"))
    cluster, problems = check(source, "cluster.yaml")
    assert problems == [] and cluster is not None
    assert cluster == Cluster.model_validate(source.data)
    assert cluster.model_dump() == Cluster.model_validate(source.data).model_dump()


def test_long_values_are_cut_short_in_messages():
    _, problems = problems_for(edit("name: lab ", "name: " + "X" * 5000 + " "))
    [problem] = problems
    assert problem.path == "cluster.name" and len(problem.message) < 300 and "…" in problem.message
