"""The rules of cluster.yaml that span fields: uniqueness, addresses inside the network, subnet
overlap, controller count, options that need another setting.

They run on whatever parsed. A `Parsed` mapping holds the fields of one section or node that passed
their own checks (absent optional fields at their defaults); a field that failed is missing from it,
and every rule that needs that field is skipped. So a bad `k8s_version` never hides an overlap of
`pod_subnet` and `service_subnet`.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from app.cluster.fields import KERNEL_DISK_NAME
from app.cluster.problems import Found
from app.yaml_source import Loc

Parsed = dict[str, Any]
Nodes = list[tuple[int, Parsed]]  # (index in `nodes`, its parsed fields)


def cross_checks(top: Parsed, nodes: Nodes, found: Found) -> None:
    spec, boot, net = (top.get(name) or {} for name in ("cluster", "bootstrap", "network"))
    for attr in ("name", "mac", "ip"):
        _unique(nodes, attr, found)
    _controllers(top, nodes, found)
    _addresses(top, boot, net, nodes, found)
    _subnets(spec, net, found)
    _arm64(nodes, found)
    _disk_names(nodes, found)
    _uefi_loader(nodes, found)
    if top.get("cilium") is not None and top.get("cni", "cilium") != "cilium":
        found.add(("cilium",), f"cilium options need `cni: cilium` (cni is {top['cni']})", key=True)


def _unique(nodes: Nodes, attr: str, found: Found) -> None:
    seen: dict[Any, tuple[int, Parsed]] = {}
    for i, node in nodes:
        if attr not in node:
            continue
        value = node[attr]
        if value in seen:
            j, other = seen[value]
            name = f" ({other['name']})" if "name" in other else ""
            found.add(("nodes", i, attr), f"{value} is already used by nodes[{j}]{name}")
        else:
            seen[value] = (i, node)


def _controllers(top: Parsed, nodes: Nodes, found: Found) -> None:
    """Only when every role parsed can we tell there is no controller, or only one."""
    every_role_known = all("role" in node for _, node in nodes)
    controllers = [i for i, node in nodes if node.get("role") == "controller"]
    vip_absent = "control_plane_vip" in top and top["control_plane_vip"] is None
    if top.get("nodes") == []:
        found.add(("nodes",), "lists no machines: at least one node, a controller, is needed")
    elif nodes and every_role_known and not controllers:
        found.add(("nodes",), "at least one node must have role: controller")
    if len(controllers) > 1 and vip_absent:
        found.add(("control_plane_vip",), f"required with {len(controllers)} controllers: "
                  "the API server needs one address that moves between them", key=True)
    elif not every_role_known:
        return
    elif len(controllers) == 1:
        found.warn(("nodes", controllers[0], "role"), "only one controller: the control plane has no redundancy")
    elif len(controllers) > 1 and len(controllers) % 2 == 0:
        found.warn(("nodes", controllers[-1], "role"), f"{len(controllers)} controllers: an even "
                   "number adds no etcd fault tolerance over one fewer; use an odd number")


ARM64_IPXE = ("arm64 nodes PXE-boot only with an arm64 iPXE binary, which Debian's ipxe package does not ship: "
              "`generate` fails until --ipxe-dir holds snp-arm64.efi (build it with `make bin-arm64-efi/snp.efi`)")


def _arm64(nodes: Nodes, found: Found) -> None:
    """Said once, at the first arm64 node: the file lives outside cluster.yaml, so `generate` checks it."""
    arm64 = [i for i, node in nodes if node.get("arch") == "arm64"]
    if arm64:
        found.warn(("nodes", arm64[0], "arch"), ARM64_IPXE)


def _disk_names(nodes: Nodes, found: Found) -> None:
    for i, node in nodes:
        disk = node.get("install_disk")
        if disk and KERNEL_DISK_NAME.fullmatch(disk) and node.get("allow_kernel_disk_name") is False:
            found.add(("nodes", i, "install_disk"), f"{disk} is a kernel name, given in probe order: BMC virtual "
                      "media, a USB stick or another controller can make it a different disk, which flatcar-install "
                      "wipes. Use the disk's /dev/disk/by-id/... (or by-path) name, or set allow_kernel_disk_name: "
                      "true on this node")


def _uefi_loader(nodes: Nodes, found: Found) -> None:
    for i, node in nodes:
        if node.get("arch") == "arm64" and (node.get("pxe") or {}).get("uefi_loader"):
            found.warn(("nodes", i, "pxe", "uefi_loader"), "unused: arm64 nodes chainload snp-arm64.efi; "
                       "pxe.uefi_loader picks the x86-64 UEFI build")


def _usable_in(ip, network: ipaddress.IPv4Network) -> str | None:
    """Why `ip` cannot be a host on `network`, or None when it can."""
    if ip not in network:
        return f"{ip} is outside network.cidr {network}"
    if network.prefixlen < 31 and ip in (network.network_address, network.broadcast_address):
        kind = "network" if ip == network.network_address else "broadcast"
        return f"{ip} is the {kind} address of {network}"
    return None


def _addresses(top: Parsed, boot: Parsed, net: Parsed, nodes: Nodes, found: Found) -> None:
    cidr = net.get("cidr")
    candidates: list[tuple[Loc, Any, str]] = [
        (("network", "gateway"), net.get("gateway"), "network.gateway"),
        (("bootstrap", "ip"), boot.get("ip"), "bootstrap.ip"),
        (("control_plane_vip",), top.get("control_plane_vip"), "control_plane_vip")]
    fixed = [(loc, ip, name) for loc, ip, name in candidates if ip is not None]
    for n, (loc, ip, _) in enumerate(fixed):
        if cidr is not None and (why := _usable_in(ip, cidr)):
            found.add(loc, why)
        for _, other, other_name in fixed[:n]:
            if ip == other:
                found.add(loc, f"{ip} is the same address as {other_name}")
    for i, node in nodes:
        if "ip" not in node:
            continue
        loc = ("nodes", i, "ip")
        if cidr is not None and (why := _usable_in(node["ip"], cidr)):
            found.add(loc, why)
        for _, ip, name in fixed:
            if node["ip"] == ip:
                found.add(loc, f"{node['ip']} is already {name}")


def _subnets(spec: Parsed, net: Parsed, found: Found) -> None:
    candidates: list[tuple[Loc, Any, str]] = [
        (("cluster", "pod_subnet"), spec.get("pod_subnet"), "cluster.pod_subnet"),
        (("cluster", "service_subnet"), spec.get("service_subnet"), "cluster.service_subnet"),
        (("network", "cidr"), net.get("cidr"), "network.cidr")]  # last: reported on the others
    nets = [(loc, subnet, name) for loc, subnet, name in candidates if subnet is not None]
    for n, (loc, subnet, _) in enumerate(nets):
        for _, other, other_name in nets[n + 1:]:
            if subnet.overlaps(other):
                found.add(loc, f"{subnet} overlaps {other_name} {other}")
