"""Whether an object in the cluster is pivot's own: the check that keeps `pivot` out of a namespace
someone else uses.

The appliance's ServiceAccount may `get` any Secret in its namespace (the BMC password Secrets that
Machines name), and pivot puts the cluster's CA keys there: pivoting into a namespace that someone
else made (and may administer) would hand them those keys, and the account their Secrets.

A namespace is pivot's when it carries the annotation `bootstrap-node.io/owner`: an HMAC of the
namespace's uid under a key derived from the cluster's CA key. pivot writes it right after its own
create succeeds. Labels, annotations copied from another namespace and field-manager names are all
the client's to choose; the uid is the server's, new for every namespace, and the key is only where
the CA key is (the output directory, or the credentials Secret of a namespace pivot made). Any copy
of the output, unpivot's too, recognises its own namespace again.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac

from app import pki
from app.pivot.state import CREDENTIAL_KEYS, CREDENTIALS_SECRET
from app.wait import kube

MANAGED_BY = "app.kubernetes.io/managed-by"
OWNER = "bootstrap-node.io/owner"
_KEY_PURPOSE = b"bootstrap-node namespace owner\0"
class ForeignNamespace(Exception):
    """The namespace exists and is not one pivot made; nothing was applied."""


def written_by_pivot(obj: dict) -> bool:
    entries = obj.get("metadata", {}).get("managedFields") or []
    return any(entry.get("manager") == kube.FIELD_MANAGER for entry in entries)


def key_of(objects: list[dict]) -> bytes:
    """The CA key among the objects pivot sends (its credentials Secret): what owner marks are made with."""
    for obj in objects:
        if obj["kind"] == "Secret" and obj["metadata"]["name"] == CREDENTIALS_SECRET:
            try:
                key = base64.b64decode(obj.get("data", {}).get(CREDENTIAL_KEYS[pki.FILES["ca_key"]], ""), validate=True)
            except (binascii.Error, ValueError):
                key = b""
            if key:
                return key
    raise ForeignNamespace("pivot has no CA key to recognise its own namespace by (credentials/ca.key): "
                           "nothing was applied")


def owner_mark(ca_key: bytes, uid: str) -> str:
    """The owner annotation's value for the namespace with `uid`."""
    key = hashlib.sha256(_KEY_PURPOSE + ca_key).digest()
    return hmac.new(key, uid.encode(), hashlib.sha256).hexdigest()


def foreign_reason(namespace: dict, ca_key: bytes) -> str | None:
    """Why this existing Namespace object is not pivot's to move into, or None when it is."""
    meta = namespace.get("metadata") or {}
    if meta.get("deletionTimestamp"):  # applying now would be undone by the namespace controller
        return (f"--namespace {meta.get('name')!r} is being deleted: wait until `kubectl get namespace "
                f"{meta.get('name')}` finds none, then pivot again (pivot creates it anew). Nothing was applied.")
    mark = str((meta.get("annotations") or {}).get(OWNER) or "")
    uid = str(meta.get("uid") or "")
    if uid and mark and hmac.compare_digest(mark, owner_mark(ca_key, uid)):
        return None
    return (f"--namespace {meta.get('name')!r}: this namespace exists and pivot did not make it (no "
            f"{OWNER} annotation made with this cluster's CA key). The appliance's ServiceAccount may read every "
            "Secret in its namespace, and pivot puts the CA keys there, so pivot moves only into a namespace of "
            "its own: pass a --namespace that does not exist yet (pivot creates it). If a pivot was cut short "
            "right after creating it, delete the namespace and pivot again; if a pivot from before owner marks "
            "made it, first `unpivot` into a new directory (it keeps each machine's status), delete the "
            "namespace, then pivot from that directory. Nothing was applied.")


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


def _raise_for(status: int, what: str, body: dict) -> None:
    if status == 403:
        raise kube.Forbidden(f"{what}: HTTP 403: {body.get('message', '')}")
    if status >= 400:
        raise kube.Fatal(f"{what}: HTTP {status}: {body.get('message', '')}")


def claim(api, namespace: dict, ca_key: bytes) -> str | None:
    """Create `namespace` (it was not there when looked for) and mark it as pivot's, so that no one can
    make it between that look and pivot's apply: a create fails if the name exists. None when the
    namespace is pivot's now; why not, when someone else made it in between."""
    name = namespace["metadata"]["name"]
    path = f"/api/v1/namespaces/{name}"
    status, body = kube.answer(api, "POST", "/api/v1/namespaces", namespace, kube.JSON,
                               [("fieldManager", kube.FIELD_MANAGER)])
    if status == 409:  # made in between: by pivot itself (a second run) or by someone else
        found = existing(api, path)
        if found is None:  # there a moment ago (being deleted), gone now: never assume it is ours
            raise kube.Transient(f"POST /api/v1/namespaces: {name} was there and is gone; creating it again")
        return foreign_reason(found, ca_key)
    _raise_for(status, "POST /api/v1/namespaces", body)
    uid = str((body.get("metadata") or {}).get("uid") or "")
    if not uid:
        raise kube.Fatal(f"POST /api/v1/namespaces: the server gave namespace {name} no uid")
    mark = {"metadata": {"uid": uid, "annotations": {OWNER: owner_mark(ca_key, uid)}}}  # uid: only onto this one
    status, body = kube.answer(api, "PATCH", path, mark, kube.MERGE_PATCH, [("fieldManager", kube.FIELD_MANAGER)])
    _raise_for(status, f"PATCH {path}", body)
    return None
