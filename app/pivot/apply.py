"""Sending the rendered objects: server-side apply (field manager `bootstrap-node`), so a second
`pivot` changes nothing, and `dryRun=All` for `--dry-run=server`. The resource path of every kind
pivot renders is known here (no discovery), so our own kinds can be addressed the moment their CRDs
are Established. Nothing that runs as the ServiceAccount is applied before its admission policies
are seen in force (app/pivot/probe.py).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from app.pivot import probe
from app.pivot.guard import policy_name
from app.pivot.manifests import is_custom
from app.pivot.ownership import ForeignNamespace, claim, existing, foreign_reason, key_of
from app.wait import kube

# (apiVersion, kind) -> (plural, namespaced)
RESOURCES = {
    ("v1", "Namespace"): ("namespaces", False),
    ("v1", "ServiceAccount"): ("serviceaccounts", True),
    ("v1", "Secret"): ("secrets", True),
    ("v1", "ConfigMap"): ("configmaps", True),
    ("apiextensions.k8s.io/v1", "CustomResourceDefinition"): ("customresourcedefinitions", False),
    ("rbac.authorization.k8s.io/v1", "ClusterRole"): ("clusterroles", False),
    ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"): ("clusterrolebindings", False),
    ("rbac.authorization.k8s.io/v1", "Role"): ("roles", True),
    ("rbac.authorization.k8s.io/v1", "RoleBinding"): ("rolebindings", True),
    ("apps/v1", "Deployment"): ("deployments", True),
    ("admissionregistration.k8s.io/v1", "ValidatingAdmissionPolicy"): ("validatingadmissionpolicies", False),
    ("admissionregistration.k8s.io/v1", "ValidatingAdmissionPolicyBinding"):
        ("validatingadmissionpolicybindings", False),
    ("bootstrap-node.io/v1alpha1", "Machine"): ("machines", True),
    ("bootstrap-node.io/v1alpha1", "ProvisioningCluster"): ("provisioningclusters", True),
}
CRD_PATH = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"


class Unreachable(Exception):
    """The API server did not answer within the deadline."""


class NotInForce(Exception):
    """The admission policies were not seen in force within the deadline; nothing runs as the account."""


class KubeconfigError(Exception):
    """The kubeconfig cannot be read or names no server."""


class InsecureServer(Exception):
    """The API server would be reached over plain http; nothing was sent."""


def plain_http(option: str, server: str) -> str | None:
    """Why `server` may not be used, or None: pivot sends the CA keys and unpivot reads them back."""
    if server.startswith("https://"):
        return None
    return (f"{option} {server!r}: expected https://host:port (the cluster's CA keys travel over it, so "
            "not over plain http)")


def connect(kubeconfig: Path, server: str = ""):
    """A client for the kubeconfig's current context (its credentials; its server unless `server`)."""
    try:
        data = yaml.safe_load(kubeconfig.read_text())
        current = data.get("current-context")
        context = next(c["context"] for c in data["contexts"] if c["name"] == current)
        cluster = next(c["cluster"] for c in data["clusters"] if c["name"] == context["cluster"])
        server = server or cluster["server"]
        unverified = cluster.get("insecure-skip-tls-verify") is True
    except OSError as exc:
        raise KubeconfigError(f"{kubeconfig}: {exc.strerror}") from None
    except (yaml.YAMLError, ValueError, AttributeError, KeyError, TypeError, StopIteration):  # ValueError: not UTF-8
        raise KubeconfigError(f"{kubeconfig}: not a kubeconfig with a current context and its cluster's "
                              "server") from None
    if problem := plain_http(f"{kubeconfig}: its cluster's server", str(server)):
        raise InsecureServer(problem)
    if unverified:  # anyone between here and the server would be handed the CA keys, as over plain http
        raise InsecureServer(f"{kubeconfig}: its cluster sets insecure-skip-tls-verify: the cluster's CA keys "
                             "travel over this connection, so the server must be verified (give its CA in "
                             "certificate-authority-data)")
    try:
        return kube.api_client(kubeconfig, server)
    except Exception as exc:  # the client's own loader: bad base64, unreadable cert files, …
        raise KubeconfigError(f"{kubeconfig}: {exc}") from None


def path_of(obj: dict) -> str:
    plural, namespaced = RESOURCES[(obj["apiVersion"], obj["kind"])]
    base = "/api/v1" if obj["apiVersion"] == "v1" else f"/apis/{obj['apiVersion']}"
    meta = obj["metadata"]
    scope = f"/namespaces/{meta['namespace']}" if namespaced else ""
    return f"{base}{scope}/{plural}/{meta['name']}"


def describe(obj: dict) -> str:
    meta = obj["metadata"]
    return f"{obj['kind']} {meta['namespace'] + '/' if meta.get('namespace') else ''}{meta['name']}"


@dataclass
class Outcome:
    applied: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # server dry-run: what depends on objects not there yet
    in_force: list[str] = field(default_factory=list)  # each policy, and the denial that showed it enforced
    in_force_after: int = 0  # how many of `applied` came before the policies were seen in force
    statuses: list[str] = field(default_factory=list)  # Machines started with their node's phase from the log


class Sender:
    """Applies objects in order; a transient failure (connection refused, 5xx, a kind not served yet)
    is retried for up to `timeout` seconds per call, then raises Unreachable."""

    def __init__(self, api, timeout: float, *, sleep: Callable[[float], None] = time.sleep, poll: float = 1.0,
                 clock: Callable[[], float] = time.monotonic):
        self.api, self.timeout, self.sleep, self.poll, self.clock = api, timeout, sleep, poll, clock

    def _retry(self, action, what: str):
        deadline = self.clock() + self.timeout
        while True:
            try:
                return action()
            except kube.Transient as exc:
                if self.clock() > deadline:
                    raise Unreachable(f"{what}: {exc}") from None
                self.sleep(self.poll)

    def _exists(self, path: str) -> bool:
        return self._retry(lambda: kube.exists(self.api, path), f"GET {path}")

    def ready(self) -> None:
        self._retry(lambda: kube.readyz(self.api), "GET /readyz")

    def refuse_foreign(self, objects: list[dict], *, dry_run: bool = False) -> None:
        """Raise ForeignNamespace if a Namespace among `objects` exists and is not pivot's
        (app/pivot/ownership.py). One that does not exist is created at once (not in a dry run), so
        that it cannot be made by someone else before pivot's apply."""
        for obj in objects:
            if obj["kind"] == "Namespace":
                key = key_of(objects)
                found = self._retry(lambda o=obj: existing(self.api, path_of(o)), f"GET {path_of(obj)}")
                if found is not None:
                    reason = foreign_reason(found, key)
                elif dry_run:
                    reason = None
                else:
                    reason = self._retry(lambda o=obj, k=key: claim(self.api, o, k), f"POST {path_of(obj)}")
                if reason:
                    raise ForeignNamespace(reason)

    def apply(self, objects: list[dict], *, dry_run: bool = False, statuses: dict[str, dict] | None = None) -> Outcome:
        """Send `objects` in order; a dry run the same way, with `dryRun=All`. First of all, in both,
        the refusal of a namespace pivot does not own. `statuses`: Machine name -> the status a new
        Machine starts with (app/pivot/history.py), written right after it."""
        self.refuse_foreign(objects, dry_run=dry_run)
        outcome = Outcome()
        missing_namespaces: set[str] = set()
        crds_missing = False
        for obj in objects:
            name = describe(obj)
            if dry_run:
                namespace = obj["metadata"].get("namespace")
                if namespace and (namespace in missing_namespaces
                                  or not self._exists(f"/api/v1/namespaces/{namespace}")):
                    missing_namespaces.add(namespace)
                    outcome.skipped.append(f"{name}: namespace {namespace} does not exist yet")
                    continue
                if is_custom(obj) and (crds_missing or not self._served(obj)):
                    crds_missing = True
                    outcome.skipped.append(f"{name}: its CRD is not installed yet")
                    continue
            if runs_pods(obj) and not dry_run and not outcome.in_force:
                outcome.in_force = self.wait_in_force(obj["metadata"]["namespace"])
                outcome.in_force_after = len(outcome.applied)
            self._retry(lambda o=obj: self._apply_one(o, dry_run), name)
            outcome.applied.append(name)
            if not dry_run and obj["kind"] == "Machine" and (status := (statuses or {}).get(obj["metadata"]["name"])):
                if self._retry(lambda o=obj, st=status: self._start_status(o, st), f"{name} status"):
                    outcome.statuses.append(f"{name}: {status['phase']}")
            if obj["kind"] == "CustomResourceDefinition" and not dry_run:
                self.wait_established(obj["metadata"]["name"])
        return outcome

    def _start_status(self, obj: dict, status: dict) -> bool:
        """Write `status` onto a Machine that has none yet; True if it was written. A Machine with any
        status, or a reinstall asked for, keeps what it has: the cluster's word is newer than any output
        directory's log (a leader clears the status on a reinstall, which the log must not undo). The
        write names the version read, so a leader's write in between wins (409) over this one."""
        path = path_of(obj)
        live = kube.get(self.api, path)
        if live.get("status") or (live.get("spec") or {}).get("reinstall"):
            return False
        body = {"metadata": {"resourceVersion": live["metadata"]["resourceVersion"]}, "status": status}
        code, answer = kube.answer(self.api, "PATCH", f"{path}/status", body, kube.MERGE_PATCH,
                                   [("fieldManager", kube.FIELD_MANAGER)])
        if code == 409:
            return False
        if code >= 400:
            kind = kube.Forbidden if code == 403 else kube.Fatal
            raise kind(f"PATCH {path}/status: HTTP {code}: {answer.get('message', '')}")
        return True

    def _served(self, obj: dict) -> bool:
        plural, _ = RESOURCES[(obj["apiVersion"], obj["kind"])]
        group = obj["apiVersion"].split("/", 1)[0]
        return self._exists(f"{CRD_PATH}/{plural}.{group}")

    def _apply_one(self, obj: dict, dry_run: bool) -> dict:
        try:
            return kube.apply_at(self.api, path_of(obj), obj, dry_run=dry_run)
        except kube.Fatal as exc:
            if "HTTP 404" in str(exc) and is_custom(obj):  # Established, not yet routed: a moment more
                raise kube.Transient(f"{describe(obj)}: not served yet") from None
            raise

    def wait_established(self, name: str) -> None:
        def established() -> None:
            crd = kube.get(self.api, f"{CRD_PATH}/{name}")
            conditions = (crd.get("status") or {}).get("conditions") or []  # null until the server looks
            if not any(c.get("type") == "Established" and c.get("status") == "True" for c in conditions):
                raise kube.Transient(f"CustomResourceDefinition {name} is not Established yet")
        self._retry(established, f"CustomResourceDefinition {name}")

    def wait_in_force(self, namespace: str) -> list[str]:
        """Ask each probe until its policy denies it; raise NotInForce at the deadline, or the refusal
        of a probe that asking again will not change (kube.Forbidden, kube.Fatal)."""
        deadline = self.clock() + self.timeout
        pending = {p.resource: p for p in probe.probes(namespace)}
        last: dict[str, str] = {}
        shown: list[str] = []
        while True:
            for resource, check in list(pending.items()):
                try:
                    status, body = kube.answer(self.api, "POST", check.collection, check.body,
                                               check.headers(namespace), probe.DRY_RUN)
                except kube.Transient as exc:
                    last[resource] = str(exc)
                    continue
                found = probe.verdict(namespace, check, status, body)
                if found.state is probe.State.REFUSED:
                    kind = kube.Forbidden if status == 403 else kube.Fatal
                    raise kind(f"checking {policy_name(namespace, resource)}: {found.reason}")
                if found.state is probe.State.IN_FORCE:
                    shown.append(f"ValidatingAdmissionPolicy {policy_name(namespace, resource)} "
                                 f"({check.body['kind']} probe {found.reason})")
                    del pending[resource]
                else:
                    last[resource] = found.reason
            if not pending:
                return shown
            if self.clock() > deadline:
                raise NotInForce("; ".join(f"{policy_name(namespace, r)}: {last.get(r, 'no answer')}"
                                           for r in pending))
            self.sleep(self.poll)


def runs_pods(obj: dict) -> bool:
    """What makes pods, which hold their ServiceAccount's token."""
    return obj["kind"] in ("Pod", "Deployment", "ReplicaSet", "StatefulSet", "DaemonSet", "Job", "CronJob")
