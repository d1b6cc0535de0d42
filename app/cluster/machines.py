"""cluster.yaml as Kubernetes objects: a node is a `Machine`, the rest of the file one
`ProvisioningCluster` (group bootstrap-node.io, v1alpha1). The one place that converts between them.

It lives here, beside the model, rather than in app/pivot/: `pivot` (layer 4) writes these objects,
and a cluster-mode `serve` (layer 3) will read them, so the conversion must sit below both.

Field names: a Machine's spec is spelled the Kubernetes way (camelCase, an `addresses` list); a
ProvisioningCluster's spec is cluster.yaml's own text without `nodes` (snake_case), so that
docs/configuration.md describes it and no second spelling of forty settings has to be kept in step.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from app.cluster.model import Cluster, Node

GROUP = "bootstrap-node.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
MACHINE, MACHINES = "Machine", "machines"
PROVISIONING_CLUSTER, PROVISIONING_CLUSTERS = "ProvisioningCluster", "provisioningclusters"
CLUSTER_LABEL = f"{GROUP}/cluster"
ROLE_LABEL = f"{GROUP}/role"
ORDER_ANNOTATION = f"{GROUP}/order"  # a node's index in cluster.yaml: its first controller runs kubeadm init

# Machine.spec.bmc <-> cluster.yaml's bmc: the BMC password never travels; only where to read it.
BMC_FIELDS = {"address": "address", "username": "username", "password_file": "passwordFile",
              "password_env": "passwordEnv", "system": "system", "verify_tls": "verifyTLS"}


NAMESPACE = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")  # a DNS label


def namespace_problem(option: str, namespace: str) -> str | None:
    """Why `namespace` cannot hold the appliance, or None. Kubernetes' own namespaces are refused:
    the ServiceAccount may `get` any Secret in its namespace (docs/pivot.md, "Who else may write in the
    namespace"), which in kube-system would be every controller's token."""
    if not NAMESPACE.fullmatch(namespace):
        return f"{option} {namespace!r}: a namespace is a DNS label (a-z, 0-9, '-', at most 63)"
    if namespace == "default" or namespace.startswith("kube-"):
        return (f"{option} {namespace!r}: a namespace of Kubernetes' own; the appliance's ServiceAccount reads "
                "Secrets in its namespace, so give it one of its own (default: bootstrap-node)")
    return None


class MachineError(ValueError):
    """A Machine (or ProvisioningCluster) that cluster.yaml cannot express; the message says which and why."""


def machine_from_node(node: Node, namespace: str, cluster_name: str, order: int, reinstall: int = 0) -> dict:
    """The Machine for one cluster.yaml node, the `order`-th. Optional fields at their default are
    left out, so the object holds what the user wrote. `reinstall` too: `pivot` applies with force,
    and a 0 it owned would undo a user's bump at the next pivot (the leader reads a missing one as 0)."""
    spec: dict[str, Any] = {"mac": node.mac, "role": node.role, "addresses": [str(node.ip)],
                            "installDisk": node.install_disk, "arch": node.arch}
    if reinstall:
        spec["reinstall"] = reinstall
    if node.allow_kernel_disk_name:
        spec["allowKernelDiskName"] = True
    if node.power is not None:
        spec["power"] = node.power
    if node.pxe is not None and node.pxe.uefi_loader is not None:
        spec["uefiLoader"] = node.pxe.uefi_loader
    if node.bmc is not None:
        bmc = node.bmc.model_dump(exclude_none=True)
        spec["bmc"] = {BMC_FIELDS[key]: value for key, value in bmc.items()}
    return {"apiVersion": API_VERSION, "kind": MACHINE,
            "metadata": {"name": node.name, "namespace": namespace,
                         "labels": {CLUSTER_LABEL: cluster_name, ROLE_LABEL: node.role},
                         "annotations": {ORDER_ANNOTATION: str(order)}},
            "spec": spec}


def node_from_machine(machine: dict, secret_files: Mapping[str, str] | None = None) -> Node:
    """The cluster.yaml node a Machine describes; MachineError when it cannot be one. A BMC password
    in a Secret becomes the file `secret_files` names for that Secret (cluster mode writes them:
    app/pivot/bmc.py); without one, cluster.yaml cannot say where the password is."""
    name = machine.get("metadata", {}).get("name", "?")
    spec = machine.get("spec") or {}
    addresses = spec.get("addresses") or []
    if len(addresses) != 1:
        raise MachineError(f"Machine {name}: cluster.yaml holds one address per node, this one has {len(addresses)}")
    bmc = spec.get("bmc")
    if bmc is not None and "passwordSecret" in bmc:
        if bmc["passwordSecret"] not in (secret_files or {}):
            raise MachineError(f"Machine {name}: its BMC password is in Secret {bmc['passwordSecret']!r}; cluster.yaml "
                               "reads passwords from a file or the environment: set bmc.passwordFile or passwordEnv")
        bmc = {**{k: v for k, v in bmc.items() if k != "passwordSecret"},
               "passwordFile": (secret_files or {})[bmc["passwordSecret"]]}
    values: dict[str, Any] = {"name": name, "role": spec.get("role"), "mac": spec.get("mac"), "ip": addresses[0],
                              "install_disk": spec.get("installDisk"), "arch": spec.get("arch", "amd64"),
                              "allow_kernel_disk_name": spec.get("allowKernelDiskName", False),
                              "power": spec.get("power")}
    if bmc is not None:
        values["bmc"] = {key: bmc[field] for key, field in BMC_FIELDS.items() if field in bmc}
    if spec.get("uefiLoader") is not None:
        values["pxe"] = {"uefi_loader": spec["uefiLoader"]}
    try:
        return Node(**values)
    except ValidationError as exc:
        raise MachineError(f"Machine {name}: {_first_error(exc)}") from None


def settings_from_cluster(cluster: Cluster, namespace: str) -> dict:
    """The ProvisioningCluster: cluster.yaml without its nodes, named for the cluster, and without
    `kubeadm_token`: a secret has no place in an object RBAC treats as configuration. The token is
    not lost: `generate` wrote it to credentials/bootstrap-token, which moves as a Secret."""
    spec = cluster.model_dump(mode="json", exclude={"nodes": True, "cluster": {"kubeadm_token"}}, exclude_none=True)
    return {"apiVersion": API_VERSION, "kind": PROVISIONING_CLUSTER,
            "metadata": {"name": cluster.cluster.name, "namespace": namespace,
                         "labels": {CLUSTER_LABEL: cluster.cluster.name}},
            "spec": spec}


def cluster_from_objects(settings: dict, machines: list[dict],
                         secret_files: Mapping[str, str] | None = None) -> Cluster:
    """cluster.yaml back from its objects, the nodes in the order given (`node_order` sorts them)."""
    nodes = [node_from_machine(m, secret_files) for m in machines]
    try:
        return Cluster(**{**(settings.get("spec") or {}), "nodes": nodes})
    except ValidationError as exc:
        name = settings.get("metadata", {}).get("name", "?")
        raise MachineError(f"ProvisioningCluster {name}: {_first_error(exc)}") from None


def node_order(machines: list[dict]) -> list[dict]:
    """Machines in cluster.yaml's order: by their order annotation, then (added later, by kubectl
    apply) by name after them."""
    def key(machine: dict) -> tuple[int, str]:
        order = machine.get("metadata", {}).get("annotations", {}).get(ORDER_ANNOTATION, "")
        return (int(order) if order.isdigit() else 1 << 30, machine["metadata"]["name"])
    return sorted(machines, key=key)


def _first_error(exc: ValidationError) -> str:
    error = exc.errors()[0]
    where = ".".join(str(p) for p in error["loc"])
    return f"{where}: {error['msg']}" if where else error["msg"]
