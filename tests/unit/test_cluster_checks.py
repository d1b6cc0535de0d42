"""Every check of `validate`: a config with one mistake, and the path, line and message it must report."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.cluster import check, load_source
from app.yaml_source import SourceError, parse_source
from tests.support.paths import EXAMPLE

BASE = EXAMPLE.read_text()


def problems_for(text: str):
    cluster, problems = check(parse_source(text, Path("cluster.yaml")), "cluster.yaml")
    return cluster, problems


def line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


def edit(old: str, new: str, text: str = BASE) -> str:
    assert old in text, old
    return text.replace(old, new, 1)


# (description, old, new, field path, text found on the reported line, message fragment)
CASES = [
    ("unknown key with suggestion", "  http_port: 8080", "  http_prot: 8080",
     "bootstrap.http_prot", "http_prot", "did you mean 'http_port'"),
    ("unknown top-level key", "control_plane_vip: 10.0.0.10", "control_plane_vip: 10.0.0.10\nextra_thing: 1",
     "extra_thing", "extra_thing", "unknown key 'extra_thing'"),
    ("type: port is a string", "http_port: 8080", "http_port: eighty",
     "bootstrap.http_port", "eighty", "must be a port number"),
    ("type: section is a list", "bootstrap:\n  ip: 10.0.0.2", "bootstrap: [1]\nbootstrap_old:\n  ip: 10.0.0.2",
     "bootstrap", "bootstrap: [1]", "must be a mapping"),
    ("name not DNS-1123", "name: lab ", "name: Lab_1 ", "cluster.name", "Lab_1", "not a DNS-1123 label"),
    ("node name not DNS-1123", "name: worker-2,", "name: worker_2,", "nodes[4].name", "worker_2", "DNS-1123"),
    ("duplicate node name", "name: worker-2,", "name: worker-1,", "nodes[4].name", "00:22",
     "worker-1 is already used by nodes[3] (worker-1)"),
    ("invalid MAC", '"52:54:00:00:00:22"', '"52:54:00:00:00:2G"', "nodes[4].mac", "00:2G", "not a MAC address"),
    ("multicast MAC", '"52:54:00:00:00:22"', '"01:00:5e:00:00:22"', "nodes[4].mac", "01:00:5e", "multicast"),
    ("duplicate MAC after normalisation", '"52:54:00:00:00:22"', '"52-54-00-00-00-11"',
     "nodes[4].mac", "52-54-00-00-00-11", "52:54:00:00:00:11 is already used by nodes[0] (cp-1)"),
    ("invalid IP", "ip: 10.0.0.22,", "ip: 10.0.0.300,", "nodes[4].ip", "10.0.0.300", "not an IPv4 address"),
    ("duplicate IP", "ip: 10.0.0.22,", "ip: 10.0.0.21,", "nodes[4].ip", "name: worker-2",
     "10.0.0.21 is already used by nodes[3] (worker-1)"),
    ("IP outside cidr", "ip: 10.0.0.22,", "ip: 10.0.1.22,", "nodes[4].ip", "10.0.1.22", "outside network.cidr"),
    ("IP is the broadcast address", "ip: 10.0.0.22,", "ip: 10.0.0.255,", "nodes[4].ip", "10.0.0.255",
     "broadcast address"),
    ("IP is the network address", "ip: 10.0.0.22,", "ip: 10.0.0.0,", "nodes[4].ip", "ip: 10.0.0.0,",
     "network address"),
    ("IP equals gateway", "ip: 10.0.0.22,", "ip: 10.0.0.1,", "nodes[4].ip", "ip: 10.0.0.1,",
     "already network.gateway"),
    ("IP equals bootstrap.ip", "ip: 10.0.0.22,", "ip: 10.0.0.2,", "nodes[4].ip", "ip: 10.0.0.2,",
     "already bootstrap.ip"),
    ("IP equals the VIP", "ip: 10.0.0.22,", "ip: 10.0.0.10,", "nodes[4].ip", "ip: 10.0.0.10,",
     "already control_plane_vip"),
    ("bootstrap.ip outside cidr", "  ip: 10.0.0.2 ", "  ip: 192.168.1.2 ", "bootstrap.ip", "192.168.1.2",
     "outside network.cidr"),
    ("gateway outside cidr", "gateway: 10.0.0.1 ", "gateway: 10.1.0.1 ", "network.gateway", "10.1.0.1",
     "outside network.cidr"),
    ("VIP outside cidr", "control_plane_vip: 10.0.0.10", "control_plane_vip: 10.9.0.10",
     "control_plane_vip", "10.9.0.10", "outside network.cidr"),
    ("VIP equals bootstrap.ip", "control_plane_vip: 10.0.0.10", "control_plane_vip: 10.0.0.2",
     "control_plane_vip", "control_plane_vip: 10.0.0.2", "same address as bootstrap.ip"),
    ("VIP missing with 3 controllers", "control_plane_vip: 10.0.0.10", "",
     "control_plane_vip", "cluster:", "required with 3 controllers"),
    ("cidr with host bits", "cidr: 10.0.0.0/24", "cidr: 10.0.0.7/24", "network.cidr", "10.0.0.7/24",
     "did you mean 10.0.0.0/24"),
    ("pod subnet overlaps service subnet", "pod_subnet: 10.244.0.0/16", "pod_subnet: 10.96.0.0/16",
     "cluster.pod_subnet", "pod_subnet", "overlaps cluster.service_subnet"),
    ("service subnet overlaps network", "service_subnet: 10.96.0.0/12", "service_subnet: 10.0.0.0/12",
     "cluster.service_subnet", "service_subnet", "overlaps network.cidr"),
    ("pod subnet invalid", "pod_subnet: 10.244.0.0/16", "pod_subnet: 10.244.0.0",
     "cluster.pod_subnet", "pod_subnet", "needs a prefix length"),
    ("k8s version without v", "k8s_version: v1.36.3", "k8s_version: 1.36.3", "cluster.k8s_version",
     "k8s_version", "did you mean 'v1.36.3'"),
    ("k8s version too old", "k8s_version: v1.36.3", "k8s_version: v1.30.9", "cluster.k8s_version",
     "k8s_version", "needs v1.31 or newer"),
    ("flatcar version not X.Y.Z", "flatcar_version: 4593.2.5", "flatcar_version: 4081.3",
     "cluster.flatcar_version", "flatcar_version", "not a number 4081.3"),
    ("flatcar version garbage", "flatcar_version: 4593.2.5", "flatcar_version: latest",
     "cluster.flatcar_version", "flatcar_version", "not a Flatcar release"),
    ("channel unknown", "flatcar_channel: stable", "flatcar_channel: stabel", "cluster.flatcar_channel",
     "stabel", "did you mean 'stable'"),
    ("SSH key unknown type", "ssh_authorized_key: ssh-ed25519", "ssh_authorized_key: ssh-foo",
     "cluster.ssh_authorized_key", "ssh-foo", "unknown SSH key type 'ssh-foo'"),
    ("SSH key body cut short", "Idr/ admin@example", " admin@example", "cluster.ssh_authorized_key",
     "admin@example", "not valid base64 key data"),
    ("SSH key body of another type", "ssh_authorized_key: ssh-ed25519", "ssh_authorized_key: ssh-rsa",
     "cluster.ssh_authorized_key", "ssh-rsa", "is a ssh-ed25519 key but the line says ssh-rsa"),
    ("extra SSH key invalid", "ssh_authorized_keys: []", "ssh_authorized_keys: [not-a-key]",
     "cluster.ssh_authorized_keys[0]", "not-a-key", "is not an SSH public key"),
    ("token malformed", "# kubeadm_token: abcdef.0123456789abcdef", "kubeadm_token: ABCDEF.0123456789abcdef",
     "cluster.kubeadm_token", "ABCDEF", "is not a kubeadm bootstrap token"),
    ("install disk not under /dev", "install_disk: /dev/disk/by-id/nvme-eui.0025385b71b2c321", "install_disk: nvme0n1",
     "nodes[3].install_disk", "nvme0n1", "absolute device path under /dev/"),
    ("install disk not simplified", "install_disk: /dev/disk/by-id/nvme-eui.0025385b71b2c321", "install_disk: /dev/../etc/passwd",
     "nodes[3].install_disk", "/dev/../etc", "absolute device path"),
    ("port out of range", "http_port: 8080", "http_port: 70000", "bootstrap.http_port", "70000",
     "outside the port range"),
    ("arch unknown", "ip: 10.0.0.22, install_disk: /dev/disk/by-id/wwn-0x5000c500a0b1c222, arch: amd64", "ip: 10.0.0.22, install_disk: /dev/disk/by-id/wwn-0x5000c500a0b1c222, arch: x86",
     "nodes[4].arch", "arch: x86", "is not one of: amd64, arm64"),
    ("role missing", "{name: worker-2, role: worker,", "{name: worker-2,", "nodes[4].role", "name: worker-2",
     "required field is missing"),
    ("api server name invalid", "api_server_name: api.lab.example.com", "api_server_name: api_lab",
     "cluster.api_server_name", "api_lab", "not a valid DNS name"),
    ("interface name invalid", "interface: eth0", "interface: this-name-is-too-long", "bootstrap.interface",
     "too-long", "not a Linux interface name"),
    ("cilium options without cni: cilium", "cni: flannel", "cni: flannel\ncilium: {wireguard: true}",
     "cilium", "cilium: {wireguard", "cilium options need `cni: cilium`"),
    ("cni unknown", "cni: flannel", "cni: calico", "cni", "calico", "is not one of: flannel, cilium, none"),
    ("gitops repo not a URL", "cni: flannel", "cni: flannel\ngitops: {repo: not a url}", "gitops.repo",
     "gitops:", "is not a Git repository URL"),
    ("gitops without repo", "cni: flannel", "cni: flannel\ngitops: {revision: main}", "gitops.repo",
     "gitops:", "required field is missing"),
    ("cilium option typo", "cni: flannel", "cni: cilium\ncilium: {wireguard: true, kpr: true}", "cilium.kpr",
     "kpr", "unknown key 'kpr'"),
    ("duplicate YAML key", "  http_port: 8080", "  http_port: 8080\n  http_port: 8081", "bootstrap.http_port",
     "8081", "key appears twice"),
]


@pytest.mark.parametrize("desc,old,new,path,on_line,message", CASES, ids=[c[0] for c in CASES])
def test_each_mistake_is_reported_at_its_line(desc, old, new, path, on_line, message):
    text = edit(old, new)
    cluster, problems = problems_for(text)
    errors = [p for p in problems if p.severity == "error"]
    assert cluster is None, f"{desc}: config was accepted"
    matching = [p for p in errors if p.path == path and message in p.message]
    assert matching, f"{desc}: expected {path}: ...{message}... in {[p.text() for p in errors]}"
    assert matching[0].line == line_of(text, on_line), matching[0].text()
    assert matching[0].file == "cluster.yaml"


def test_example_is_valid_and_warning_free():
    cluster, problems = problems_for(BASE)
    assert cluster is not None and problems == []
    assert [n.name for n in cluster.controllers] == ["cp-1", "cp-2", "cp-3"]
    assert cluster.bootstrap_node.name == "cp-1"


def test_five_different_mistakes_are_all_reported_in_one_run():
    text = BASE
    for old, new in [("name: lab ", "name: LAB "), ("http_port: 8080", "http_port: 0"),
                     ('"52:54:00:00:00:13"', '"52:54:00:00:00:12"'), ("ip: 10.0.0.21,", "ip: 10.1.0.21,"),
                     ("k8s_version: v1.36.3", "k8s_version: v1.29.0")]:
        text = edit(old, new, text)
    _, problems = problems_for(text)
    got = {(p.path, p.line) for p in problems}
    assert got == {("cluster.name", line_of(text, "LAB")), ("bootstrap.http_port", line_of(text, "http_port")),
                   ("nodes[2].mac", line_of(text, "cp-3")), ("nodes[3].ip", line_of(text, "10.1.0.21")),
                   ("cluster.k8s_version", line_of(text, "v1.29.0"))}


def test_column_points_at_the_value():
    text = edit("http_port: 8080", "http_port: 0")
    _, problems = problems_for(text)
    line = text.splitlines()[problems[0].line - 1]
    assert line[problems[0].column - 1:].startswith("0")


def test_unquoted_mac_is_not_read_as_a_base60_number():
    text = edit('mac: "52:54:00:00:00:11"', "mac: 52:54:00:00:00:11")
    cluster, problems = problems_for(text)
    assert cluster is not None, [p.text() for p in problems]
    assert cluster.nodes[0].mac == "52:54:00:00:00:11"


def test_mac_forms_are_normalised():
    text = edit('"52:54:00:00:00:22"', '"5254.0000.00AB"')
    cluster, _ = problems_for(text)
    assert cluster.nodes[4].mac == "52:54:00:00:00:ab"


@pytest.mark.parametrize("count,fragment", [(1, "only one controller"), (2, "even number")])
def test_controller_count_warnings(count, fragment):
    text = BASE
    for name in ["cp-3", "cp-2"][: 3 - count]:
        text = edit(f"name: {name}, role: controller", f"name: {name}, role: worker", text)
    cluster, problems = problems_for(text)
    assert cluster is not None
    assert [p.severity for p in problems] == ["warning"] and fragment in problems[0].message


def test_no_controller_is_an_error_on_nodes():
    text = BASE.replace("role: controller", "role: worker")
    cluster, problems = problems_for(text)
    assert cluster is None
    assert [(p.path, p.line) for p in problems if "at least one node" in p.message] == [
        ("nodes", line_of(text, "name: cp-1"))]


def test_single_controller_needs_no_vip():
    text = edit("control_plane_vip: 10.0.0.10", "")
    for name in ["cp-2", "cp-3"]:
        text = edit(f"name: {name}, role: controller", f"name: {name}, role: worker", text)
    cluster, _ = problems_for(text)
    assert cluster is not None and cluster.api_host == "api.lab.example.com"
    assert cluster.control_plane_address == "10.0.0.11"


def test_yaml_syntax_error_carries_its_line():
    text = edit("  http_port: 8080", "  http_port: [8080")
    with pytest.raises(SourceError) as exc:
        parse_source(text, Path("x"))
    assert exc.value.pos is not None and exc.value.pos.line > line_of(text, "http_port") - 1
    assert "YAML syntax error" in exc.value.message


def test_missing_file_is_a_source_error(tmp_path):
    with pytest.raises(SourceError, match="file not found"):
        load_source(tmp_path / "nope.yaml")


def test_top_level_not_a_mapping():
    cluster, problems = problems_for("- just\n- a list\n")
    assert cluster is None and "must be a mapping" in problems[0].message


def test_missing_sections_are_named():
    _, problems = problems_for("cluster: {}\n")
    paths = {p.path for p in problems}
    assert {"bootstrap", "network", "nodes", "cluster.name", "cluster.k8s_version"} <= paths


def test_arm64_nodes_are_told_they_need_an_arm64_ipxe_build():
    text = edit('ip: 10.0.0.22, install_disk: /dev/disk/by-id/wwn-0x5000c500a0b1c222, arch: amd64}', 'ip: 10.0.0.22, install_disk: /dev/disk/by-id/wwn-0x5000c500a0b1c222, arch: arm64}')
    cluster, problems = problems_for(text)
    assert cluster is not None  # valid: the binary lives outside cluster.yaml; generate checks it
    (arm,) = [p for p in problems if "arm64" in p.message]
    assert arm.severity == "warning" and arm.path == "nodes[4].arch" and "snp-arm64.efi" in arm.message
    assert arm.line == line_of(text, "worker-2")
