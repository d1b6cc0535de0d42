"""The appliance's ServiceAccount and exactly what day 2 needs of the API, nothing more: no `*`, no
cluster-admin, no `escalate`, `bind` or `impersonate`.

- kube-system (Role `bootstrap-node:<namespace>:day-2`): create Secrets (the bootstrap tokens it mints, and
  kubeadm-certs the first time); read and replace kubeadm-certs by name; keep the Role and RoleBinding
  that let joining nodes read kubeadm-certs, by name. Kubernetes cannot limit `create` by name (the
  name is not known to the authorizer before the object exists), so `create` on Secrets in kube-system
  is the one wide grant: it can create a Secret there, never read one but kubeadm-certs. Creating a
  Role or RoleBinding there is bounded by the API server's escalation check: it can grant only what
  it holds itself.
- its own namespace (Role `bootstrap-node`): its Machines and ProvisioningClusters (read; write
  status), its Lease (by name; `create` again unnamed), Events, its ConfigMaps by name, and `get` on
  any Secret there: its state Secret, and the BMC passwords Machines name in `bmc.passwordSecret`,
  which users add whenever they add a Machine (a list of names fixed at pivot time would refuse the
  next one). Not `list` or `watch`: it reads a Secret only by a name it was given. The namespace is
  the appliance's own, and whoever may write in it is as good as cluster-admin anyway
  (docs/pivot.md, "Who else may write in the namespace"); the PKI stays readable only by this
  account and cluster admins.
- cluster-wide (ClusterRole `bootstrap-node:<namespace>:nodes`): nodes get/list/watch (whether a
  machine joined).

The kube-system Role and the ClusterRole, and their bindings, exist once per name in the whole
cluster, so each carries the namespace pivot used: a pivot into a second namespace then adds its own
instead of rebinding the first one's to its account, and each account stays confined by its own
admission policies (app/pivot/guard.py, also one set per namespace). The per-cluster names an older
pivot used are in app/pivot/legacy.py.
"""

from __future__ import annotations

from app.cluster.machines import GROUP, MACHINES, PROVISIONING_CLUSTERS
from app.pivot.state import CREDENTIALS_SECRET, RECORD_CONFIGMAP, TEMPLATES_CONFIGMAP

SERVICE_ACCOUNT = "bootstrap-node"
LEASE = "bootstrap-node"  # the leader-election Lease (serve --lease-name)
OWN_ROLE = "bootstrap-node"
# The names a pivot before per-namespace names gave its kube-system Role and its ClusterRole (and their
# bindings): one per cluster, bound to the account of whichever namespace was pivoted last.
LEGACY_DAY2_ROLE = "bootstrap-node:day-2"
LEGACY_NODES_ROLE = "bootstrap-node:nodes"
KUBE_SYSTEM = "kube-system"
CERTS_SECRET = "kubeadm-certs"
CERTS_ROLE = f"kubeadm:{CERTS_SECRET}"  # kubeadm's name for the Role joining nodes read it through
RBAC_API = "rbac.authorization.k8s.io"
READ = ["get", "list", "watch"]


def day2_role(namespace: str) -> str:
    """The kube-system Role (and RoleBinding) of the account in `namespace`."""
    return f"bootstrap-node:{namespace}:day-2"


def nodes_role(namespace: str) -> str:
    """The ClusterRole (and ClusterRoleBinding) of the account in `namespace`."""
    return f"bootstrap-node:{namespace}:nodes"


def _rule(group: str, resources: list[str], verbs: list[str], names: list[str] | None = None) -> dict:
    rule = {"apiGroups": [group], "resources": resources, "verbs": verbs}
    return {**rule, "resourceNames": names} if names else rule


def day2_rules() -> list[dict]:
    return [
        _rule("", ["secrets"], ["create"]),  # not limitable by name: see the module's docstring
        _rule("", ["secrets"], ["get", "update", "patch"], [CERTS_SECRET]),
        _rule(RBAC_API, ["roles", "rolebindings"], ["create"]),
        _rule(RBAC_API, ["roles", "rolebindings"], ["get", "update", "patch"], [CERTS_ROLE]),
    ]


def own_rules() -> list[dict]:
    return [
        _rule(GROUP, [MACHINES, PROVISIONING_CLUSTERS], READ),
        _rule(GROUP, [f"{MACHINES}/status", f"{PROVISIONING_CLUSTERS}/status"], ["get", "update", "patch"]),
        _rule("coordination.k8s.io", ["leases"], ["create"]),
        _rule("coordination.k8s.io", ["leases"], ["get", "update", "patch"], [LEASE]),
        _rule("", ["events"], ["create", "patch"]),
        _rule("events.k8s.io", ["events"], ["create", "patch"]),
        # Any Secret here by name, none listed: the ones Machines name in bmc.passwordSecret are the
        # user's to add at any time (see the module's docstring).
        _rule("", ["secrets"], ["get"]),
        _rule("", ["secrets"], ["watch"], [CREDENTIALS_SECRET]),
        _rule("", ["configmaps"], ["get", "watch"], [RECORD_CONFIGMAP, TEMPLATES_CONFIGMAP]),
    ]


def node_rules() -> list[dict]:
    return [_rule("", ["nodes"], READ)]


def _binding(kind: str, name: str, namespace: str | None, subject_namespace: str) -> dict:
    meta = {"name": name, **({"namespace": namespace} if namespace else {})}
    return {"apiVersion": f"{RBAC_API}/v1", "kind": f"{kind}Binding", "metadata": meta,
            "roleRef": {"apiGroup": RBAC_API, "kind": kind, "name": name},
            "subjects": [{"kind": "ServiceAccount", "name": SERVICE_ACCOUNT, "namespace": subject_namespace}]}


def rbac_objects(namespace: str, labels: dict) -> list[dict]:
    """The ServiceAccount, its Roles and ClusterRole, and their bindings, in apply order."""
    def role(kind: str, name: str, ns: str | None, rules: list[dict]) -> dict:
        meta = {"name": name, "labels": labels, **({"namespace": ns} if ns else {})}
        return {"apiVersion": f"{RBAC_API}/v1", "kind": kind, "metadata": meta, "rules": rules}
    account = {"apiVersion": "v1", "kind": "ServiceAccount",
               "metadata": {"name": SERVICE_ACCOUNT, "namespace": namespace, "labels": labels}}
    out = [account,
           role("ClusterRole", nodes_role(namespace), None, node_rules()),
           role("Role", day2_role(namespace), KUBE_SYSTEM, day2_rules()),
           role("Role", OWN_ROLE, namespace, own_rules())]
    bindings = [_binding("ClusterRole", nodes_role(namespace), None, namespace),
                _binding("Role", day2_role(namespace), KUBE_SYSTEM, namespace),
                _binding("Role", OWN_ROLE, namespace, namespace)]
    for binding in bindings:
        binding["metadata"]["labels"] = labels
    return out + bindings
