"""The RBAC a pivot made before its kube-system Role and ClusterRole were named per namespace
(app/pivot/rbac.py): `bootstrap-node:day-2` (Role and RoleBinding in kube-system) and
`bootstrap-node:nodes` (ClusterRole and ClusterRoleBinding), one of each per cluster, bound to the
account of whichever namespace was pivoted last.

A pivot deletes such a pair once its own new names are applied, and only when it is sure the pair is
its own: the binding was written by pivot (field manager `bootstrap-node`), binds exactly this
namespace's ServiceAccount to the Role of the same name, and is still the object it read (the delete
carries its uid and resourceVersion as preconditions). A binding of another namespace's account is
that namespace's rights until its own next pivot; one a user changed is theirs to remove
(docs/pivot.md, "After an upgrade").
"""

from __future__ import annotations

from app.pivot.ownership import written_by_pivot
from app.pivot.rbac import KUBE_SYSTEM, LEGACY_DAY2_ROLE, LEGACY_NODES_ROLE, RBAC_API, SERVICE_ACCOUNT
from app.wait import kube

_BASE = f"/apis/{RBAC_API}/v1"
# (binding path, role path, what the user reads) of each pair
PAIRS = [
    (f"{_BASE}/namespaces/{KUBE_SYSTEM}/rolebindings/{LEGACY_DAY2_ROLE}",
     f"{_BASE}/namespaces/{KUBE_SYSTEM}/roles/{LEGACY_DAY2_ROLE}",
     f"Role and RoleBinding {KUBE_SYSTEM}/{LEGACY_DAY2_ROLE}"),
    (f"{_BASE}/clusterrolebindings/{LEGACY_NODES_ROLE}", f"{_BASE}/clusterroles/{LEGACY_NODES_ROLE}",
     f"ClusterRole and ClusterRoleBinding {LEGACY_NODES_ROLE}"),
]


def ours(binding: dict, namespace: str) -> bool:
    """Whether this old binding is the one a pivot into `namespace` made, unchanged in whom it binds."""
    name = binding.get("metadata", {}).get("name")
    subjects = binding.get("subjects") or []
    return (written_by_pivot(binding) and (binding.get("roleRef") or {}).get("name") == name
            and subjects == [{"kind": "ServiceAccount", "name": SERVICE_ACCOUNT, "namespace": namespace}])


def _delete(api, path: str, obj: dict) -> int:
    meta = obj["metadata"]
    options = {"apiVersion": "v1", "kind": "DeleteOptions",
               "preconditions": {"uid": meta["uid"], "resourceVersion": meta["resourceVersion"]}}
    status, _ = kube.answer(api, "DELETE", path, options, kube.JSON)
    return status


def retire(api, namespace: str) -> list[str]:
    """Delete the old pairs that are this namespace's (see the module's docstring); what was deleted.
    Leaves anything it is not sure of; kube.Transient when the API server does not answer."""
    retired = []
    for binding_path, role_path, what in PAIRS:
        status, binding = kube.answer(api, "GET", binding_path)
        if status != 200 or not ours(binding, namespace):
            continue
        if _delete(api, binding_path, binding) not in (200, 202):
            continue  # changed since it was read (409), or already gone: not ours to decide now
        status, role = kube.answer(api, "GET", role_path)
        if status == 200 and written_by_pivot(role):
            _delete(api, role_path, role)
        retired.append(what)
    return retired
