"""Everything `pivot` puts into the cluster, rendered from typed input by a pure function (same input,
same objects; no network, no clock), in the order it must be applied: the Namespace and CRDs first
(the rest lives in one or is one of the other), then the admission policy that narrows the RBAC,
RBAC, state, the workload and the custom objects.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import yaml

from app.cluster.machines import machine_from_node, namespace_problem, settings_from_cluster
from app.cluster.model import Cluster
from app.oci.reference import repository_key, valid_digest, valid_tag
from app.pivot.crds import crds
from app.pivot.guard import guard_objects
from app.pivot.ownership import MANAGED_BY
from app.pivot.rbac import rbac_objects
from app.pivot.state import State, state_objects
from app.pivot.workload import Workload, deployment, namespace_object

DEFAULT_NAMESPACE = "bootstrap-node"
LABEL_KEY = re.compile(r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
                       r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")
LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$")
REDACTED = "REDACTED"


class PivotInputError(ValueError):
    """An option `pivot` cannot use; the message names it."""


@dataclass(frozen=True)
class PivotInput:
    cluster: Cluster
    state: State
    image: str
    namespace: str = DEFAULT_NAMESPACE
    node_selector: tuple[str, str] = ("bootstrap-node.io/provisioning", "true")

    def __post_init__(self):
        if problem := namespace_problem("--namespace", self.namespace):
            raise PivotInputError(problem)
        key, value = self.node_selector
        if not LABEL_KEY.fullmatch(key) or not LABEL_VALUE.fullmatch(value):
            raise PivotInputError(f"--node-selector {key}={value}: not a Kubernetes label key=value")
        if not image_reference(self.image):
            raise PivotInputError(f"--image {self.image!r}: not an image reference (like "
                                  "registry.example/bootstrap-node:0.1.0, or …@sha256:<64 hex>)")


def image_reference(text: str) -> bool:
    """NAME[:TAG][@DIGEST] as a container runtime parses it. The API server takes any string without
    blanks, so a typo here would only show as pods that never pull (InvalidImageName)."""
    name, at, digest = text.partition("@")
    if at and not valid_digest(digest):
        return False
    last = name.rpartition("/")[2]
    if ":" in last:  # a tag; a colon before the last "/" is a registry's port
        name, _, tag = name.rpartition(":")
        if not valid_tag(tag):
            return False
    return repository_key(name) is not None


def parse_selector(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise PivotInputError(f"--node-selector {text!r}: expected key=value, like bootstrap-node.io/provisioning=true")
    return key, value


def labels(cluster: Cluster) -> dict[str, str]:
    return {"app.kubernetes.io/name": "bootstrap-node", MANAGED_BY: "bootstrap-node",
            "bootstrap-node.io/cluster": cluster.cluster.name}


def render(spec: PivotInput) -> list[dict]:
    """Every object, in apply order."""
    cluster, ns = spec.cluster, spec.namespace
    common = labels(cluster)
    workload = Workload(ns, spec.image, dict([spec.node_selector]), cluster.bootstrap.http_port, common)
    machines = [machine_from_node(node, ns, cluster.cluster.name, order) for order, node in enumerate(cluster.nodes)]
    # The admission policy before the RBAC it narrows (app/pivot/guard.py). The Deployment last: its
    # pods act on the Machines at once, so each must be there with its status (app/pivot/history.py).
    return [namespace_object(ns, common), *crds(), *guard_objects(ns, common), *rbac_objects(ns, common),
            *state_objects(spec.state, ns, cluster.cluster.name), settings_from_cluster(cluster, ns), *machines,
            deployment(workload)]


def is_custom(obj: dict) -> bool:
    """An object of one of our own CRDs (the server knows its kind only once they are Established)."""
    return obj["apiVersion"].startswith("bootstrap-node.io/")


def redacted(obj: dict) -> dict:
    """A Secret's values replaced by their sizes: what --dry-run prints."""
    if obj["kind"] != "Secret":
        return obj
    return {**obj, "data": {key: f"{REDACTED} ({len(value) * 3 // 4 - value[-2:].count('=')} bytes)"
                            for key, value in obj.get("data", {}).items()}}


class _NoAliases(yaml.SafeDumper):
    """Objects share dicts (a Deployment's selector is its pods' labels); print each in full, as
    kubectl would read them, instead of YAML anchors."""

    def ignore_aliases(self, data) -> bool:
        return True


def to_yaml(objects: list[dict]) -> str:
    """Multi-document YAML, Secrets redacted, with a comment line saying so."""
    docs = []
    for obj in objects:
        note = ""
        if obj["kind"] == "Secret":
            note = (f"# Secret data redacted by --dry-run: pivot sends the files' bytes "
                    f"({len(obj.get('data', {}))} keys)\n")
        docs.append(note + yaml.dump(redacted(obj), Dumper=_NoAliases, sort_keys=False, width=120, allow_unicode=True))
    return "---\n".join(docs)
