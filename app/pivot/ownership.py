"""Whether an object in the cluster is pivot's own: the check that keeps `pivot` out of a namespace
someone else uses.

The appliance's ServiceAccount may `get` any Secret in its namespace (the BMC password Secrets that
Machines name), so pivoting into a namespace that already holds another team's workloads would hand
it their Secrets. A namespace is pivot's when its label `app.kubernetes.io/managed-by=bootstrap-node`
was written by pivot's field manager: a label alone can be copied from an example, and the field
manager alone is also `wait`'s, whose add-ons may create namespaces of their own.
"""

from __future__ import annotations

from app.wait import kube

MANAGED_BY = "app.kubernetes.io/managed-by"


class ForeignNamespace(Exception):
    """The namespace exists and is not one pivot made; nothing was applied."""


def written_by_pivot(obj: dict) -> bool:
    entries = obj.get("metadata", {}).get("managedFields") or []
    return any(entry.get("manager") == kube.FIELD_MANAGER for entry in entries)


def _label_written_by_pivot(obj: dict, key: str) -> bool:
    for entry in obj.get("metadata", {}).get("managedFields") or []:
        fields = ((entry.get("fieldsV1") or {}).get("f:metadata") or {}).get("f:labels") or {}
        if entry.get("manager") == kube.FIELD_MANAGER and f"f:{key}" in fields:
            return True
    return False


def foreign_reason(namespace: dict) -> str | None:
    """Why this existing Namespace object is not pivot's to move into, or None when it is."""
    labels = namespace.get("metadata", {}).get("labels") or {}
    if labels.get(MANAGED_BY) == kube.FIELD_MANAGER and _label_written_by_pivot(namespace, MANAGED_BY):
        return None
    name = namespace.get("metadata", {}).get("name")
    return (f"--namespace {name!r}: this namespace exists and pivot did not make it (no label "
            f"{MANAGED_BY}={kube.FIELD_MANAGER} written by pivot). The appliance's ServiceAccount may read every "
            "Secret in its namespace, so pivot moves only into a namespace of its own: pass a --namespace that "
            "does not exist yet (pivot creates it). Nothing was applied.")


def existing(api, path: str) -> dict | None:
    """The object at `path`, or None when there is none. A refusal to read it is raised as the
    server said it (kube.Forbidden, kube.Fatal): not knowing is not a yes."""
    status, body = kube.answer(api, "GET", path)
    if status == 404:
        return None
    if status == 403:
        raise kube.Forbidden(f"GET {path}: HTTP 403: {body.get('message', '')}")
    if status >= 400:
        raise kube.Fatal(f"GET {path}: HTTP {status}: {body.get('message', '')}")
    return body


def claim(api, namespace: dict) -> str | None:
    """Create `namespace` (it was not there when looked for), so that no one can make it between that
    look and pivot's apply: a create fails if the name exists. None when the namespace is pivot's now;
    why not, when someone else made it in between."""
    path = f"/api/v1/namespaces/{namespace['metadata']['name']}"
    status, body = kube.answer(api, "POST", "/api/v1/namespaces", namespace, kube.JSON,
                               [("fieldManager", kube.FIELD_MANAGER)])
    if status == 409:  # made in between: by pivot itself (a second run) or by someone else
        found = existing(api, path)
        return None if found is None else foreign_reason(found)
    if status == 403:
        raise kube.Forbidden(f"POST /api/v1/namespaces: HTTP 403: {body.get('message', '')}")
    if status >= 400:
        raise kube.Fatal(f"POST /api/v1/namespaces: HTTP {status}: {body.get('message', '')}")
    return None
