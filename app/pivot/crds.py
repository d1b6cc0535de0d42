"""The two CustomResourceDefinitions, built here in Python rather than kept as YAML under templates/:
every enum in them (role, arch, power, UEFI loader, CNI, phase) is read from the cluster.yaml model
and the event log's `Phase`, so the server refuses exactly what `validate` refuses and a new phase
or role cannot be forgotten in a copy. They are not templates: a user who edits a CRD forks the API.
"""

from __future__ import annotations

import typing

from app.cluster.fields import DISK_PATTERN
from app.cluster.machines import (
    GROUP,
    MACHINE,
    MACHINES,
    PROVISIONING_CLUSTER,
    PROVISIONING_CLUSTERS,
    VERSION,
)
from app.cluster.model import Cluster, Node, NodePxe
from app.events.model import Phase

# Lower-case colon form (what cluster.yaml's MAC parser produces) and unicast: the first byte even.
MAC_PATTERN = r"^[0-9a-f][02468ace](:[0-9a-f]{2}){5}$"
IPV4_PATTERN = r"^((25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])\.){3}(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])$"
DNS_LABEL_RULE = "self.metadata.name.matches('^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$')"


def _choices(model, field: str) -> list[str]:
    """The values a Literal field of the model allows (an optional one too)."""
    annotation = model.model_fields[field].annotation
    for candidate in (annotation, *typing.get_args(annotation)):
        if typing.get_origin(candidate) is typing.Literal:
            return list(typing.get_args(candidate))
    raise TypeError(f"{model.__name__}.{field} is not a Literal")


def _string(description: str, **more) -> dict:
    return {"type": "string", "description": description, **more}


def _enum(description: str, values: list[str]) -> dict:
    return _string(description, enum=values)


def _time(description: str) -> dict:
    return _string(description, format="date-time")


def machine_spec() -> dict:
    bmc = {"type": "object", "description": "Its BMC. The password is never here: a file, a variable or a Secret.",
           "required": ["address", "username"],
           "properties": {
               "address": _string("host[:port], or http(s)://host[:port] for Redfish.", minLength=1),
               "username": _string("BMC user name.", minLength=1),
               "passwordFile": _string("Absolute path of a file holding the password, where the appliance runs.",
                                       pattern="^/"),
               "passwordEnv": _string("Environment variable holding the password.",
                                      pattern="^[A-Za-z_][A-Za-z0-9_]*$"),
               "passwordSecret": _string("Name of a Secret in this namespace whose `password` key holds it.",
                                         minLength=1),
               "system": _string("Redfish system path or Id; default: the only one."),
               "verifyTLS": {"type": "boolean", "description": "Redfish over https: check the BMC's certificate."}},
           "x-kubernetes-validations": [{
               "rule": "[has(self.passwordFile), has(self.passwordEnv), has(self.passwordSecret)]"
                       ".filter(x, x).size() == 1",
               "message": "give exactly one of passwordFile, passwordEnv and passwordSecret"}]}
    return {
        "type": "object",
        "required": ["mac", "role", "addresses", "installDisk"],
        "properties": {
            "mac": _string("MAC of the NIC that PXE-boots, lower case with colons. Immutable: another NIC is "
                           "another Machine.", pattern=MAC_PATTERN,
                           **{"x-kubernetes-validations": [{"rule": "self == oldSelf",
                                                            "message": "mac is immutable"}]}),
            "role": _enum("controller (control plane) or worker.", _choices(Node, "role")),
            "addresses": {"type": "array", "description": "Its static IPv4 address (one, today).", "minItems": 1,
                          "maxItems": 1, "items": _string("An IPv4 address.", pattern=IPV4_PATTERN)},
            "installDisk": _string("Disk Flatcar is installed to (wiped): /dev/disk/by-id/… or by-path/….",
                                   pattern=DISK_PATTERN),
            "allowKernelDiskName": {"type": "boolean", "description": "Accept a kernel name like /dev/sda."},
            "arch": _enum("CPU architecture.", _choices(Node, "arch")),
            "power": _enum("How it is powered; default: the cluster's.", _choices(Node, "power")),
            "uefiLoader": _enum("The iPXE build its UEFI firmware chainloads.", _choices(NodePxe, "uefi_loader")),
            "bmc": bmc,
            "reinstall": {"type": "integer", "minimum": 0, "description": "Bump to reinstall the machine: each new "
                                                                           "value lets it install once more."}},
        "x-kubernetes-validations": [{
            "rule": "self.installDisk.startsWith('/dev/disk/by-') || "
                    "(has(self.allowKernelDiskName) && self.allowKernelDiskName)",
            "message": "installDisk must be /dev/disk/by-id/… or /dev/disk/by-path/… (kernel names like /dev/sda "
                       "follow probe order); set allowKernelDiskName to accept one"}]}


def machine_status() -> dict:
    window = {"type": "object", "description": "The install window, written before anything of it is served: "
                                               "hashes and deadlines, never a secret.",
              "properties": {
                  "opened": _time("When its PXE boot opened it."),
                  "deadline": _time("When it closes unless the install finishes."),
                  "address": _string("The address that PXE-booted."),
                  "linkMAC": _string("That address's MAC in the neighbour table."),
                  "installCredentialHash": _string("sha256 of the install config's one-time credential."),
                  "callbackCredentialHash": _string("sha256 of the final config's callback credential."),
                  "callbackDeadline": _time("When that callback credential stops being accepted."),
                  "installServed": {"type": "boolean"}, "finalServed": {"type": "boolean"},
                  "contested": {"type": "boolean", "description": "A second machine asked to boot as this one."},
                  "installed": {"type": "boolean", "description": "The install reported installed: the machine "
                                                                  "boots from its disk until a reinstall."}}}
    return {"type": "object", "properties": {
        "phase": _enum("Where the machine is on its way to Ready.", [p.value for p in Phase]),
        "timeline": {"type": "array", "items": {"type": "object", "required": ["phase", "time"], "properties": {
            "phase": _string("A phase reached."), "time": _time("When.")}}},
        "installWindow": window,
        "lastError": _string("The last failure the machine reported."),
        "observedReinstall": {"type": "integer", "description": "The spec.reinstall last acted on."}}}


def cluster_spec() -> dict:
    """cluster.yaml without `nodes`: its sections are objects whose own fields docs/configuration.md
    describes; the server checks the top level and the choices, `validate` the rest."""
    section = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
    return {
        "type": "object", "required": ["cluster", "bootstrap", "network"],
        "properties": {
            "cluster": {**section, "required": ["name", "k8s_version", "flatcar_version", "ssh_authorized_key"]},
            "bootstrap": {**section, "required": ["ip"]},
            "network": {**section, "required": ["cidr", "gateway", "dns"]},
            "control_plane_vip": _string("Virtual IP of the API server.", pattern=IPV4_PATTERN),
            "cni": _enum("Pod network.", _choices(Cluster, "cni")),
            "cilium": section, "gitops": section, "pxe": section,
            "sysexts": {"type": "array", "items": section},
            "sysupdate": {"type": "boolean"},
            "reboots": _enum("Who reboots nodes for updates.", _choices(Cluster, "reboots")),
            "power": _enum("How nodes are powered on.", _choices(Cluster, "power"))}}


def _crd(kind: str, plural: str, spec: dict, status: dict, columns: list[dict], root_rules: list[dict],
         description: str) -> dict:
    schema = {"type": "object", "description": description, "required": ["spec"],
              "properties": {"apiVersion": {"type": "string"}, "kind": {"type": "string"},
                             "metadata": {"type": "object"}, "spec": spec, "status": status}}
    if root_rules:
        schema["x-kubernetes-validations"] = root_rules
    return {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": f"{plural}.{GROUP}"},
            "spec": {"group": GROUP, "scope": "Namespaced",
                     "names": {"kind": kind, "plural": plural, "singular": kind.lower(), "listKind": f"{kind}List",
                               "categories": ["bootstrap-node"]},
                     "versions": [{"name": VERSION, "served": True, "storage": True,
                                   "schema": {"openAPIV3Schema": schema},
                                   "subresources": {"status": {}},
                                   "additionalPrinterColumns": columns}]}}


def _column(name: str, path: str, kind: str = "string", priority: int = 0) -> dict:
    column = {"name": name, "type": kind, "jsonPath": path}
    return {**column, "priority": priority} if priority else column


def machine_crd() -> dict:
    # What `bootstrap-node status` shows per node: name (kubectl's own column), role, MAC, phase, age.
    columns = [_column("Role", ".spec.role"), _column("MAC", ".spec.mac"), _column("Phase", ".status.phase"),
               _column("Age", ".metadata.creationTimestamp", "date"),
               _column("Address", ".spec.addresses[0]", priority=1),
               _column("Error", ".status.lastError", priority=1)]
    rules = [{"rule": DNS_LABEL_RULE, "message": "a Machine's name is its hostname: a DNS label "
                                                 "(lower-case letters, digits and '-', at most 63)"}]
    return _crd(MACHINE, MACHINES, machine_spec(), machine_status(), columns, rules,
                "A machine the appliance provisions (a node of cluster.yaml).")


def cluster_crd() -> dict:
    columns = [_column("Kubernetes", ".spec.cluster.k8s_version"), _column("Flatcar", ".spec.cluster.flatcar_version"),
               _column("Age", ".metadata.creationTimestamp", "date")]
    status = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
    return _crd(PROVISIONING_CLUSTER, PROVISIONING_CLUSTERS, cluster_spec(), status, columns, [],
                "The cluster's settings: cluster.yaml without its nodes.")


def crds() -> list[dict]:
    return [machine_crd(), cluster_crd()]
