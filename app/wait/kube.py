"""The few Kubernetes API calls `wait` needs, over the official `kubernetes` client: readiness,
nodes, discovery, and server-side apply of manifests. Transient failures are sorted from fatal ones.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import urllib3
import yaml
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException

FIELD_MANAGER = "bootstrap-node"
TIMEOUT = (5, 15)  # connect, read seconds per request
JSON = {"Content-Type": "application/json", "Accept": "application/json"}
MERGE_PATCH = {"Content-Type": "application/merge-patch+json", "Accept": "application/json"}


class Transient(Exception):
    """Worth retrying: connection refused/reset, timeouts, 5xx, TLS while a server restarts."""


class Fatal(Exception):
    """Retrying will not help: the message says what to fix."""


class Conflict(Fatal):
    """HTTP 409: the object to create exists already."""


class Forbidden(Fatal):
    """HTTP 403: these credentials are known, and RBAC (or admission) refused the call; the server's message."""


@dataclass(frozen=True)
class Manifest:
    """One object of an add-on file, with where it came from (for messages)."""

    source: str
    index: int
    body: dict

    @property
    def name(self) -> str:
        meta = self.body.get("metadata", {})
        ns = f"{meta['namespace']}/" if meta.get("namespace") else ""
        return f"{self.body.get('kind')} {ns}{meta.get('name')}"


def api_client(kubeconfig: Path, server: str) -> k8s.ApiClient:
    """A client for `kubeconfig`'s credentials, aimed at `server` (one endpoint of the cluster)."""
    data = yaml.safe_load(kubeconfig.read_text())
    api = k8s_config.new_client_from_config_dict(data)
    api.configuration.host = server
    refresh = api.configuration.refresh_api_key_hook
    if refresh is not None:
        # A token user: before each call the loader's hook copies the kubeconfig's host back (and puts
        # itself back as the hook), which would send every request but the first to the kubeconfig's server.
        def keep_server(configuration):
            refresh(configuration)
            configuration.host = server
            configuration.refresh_api_key_hook = keep_server
        api.configuration.refresh_api_key_hook = keep_server
    api.configuration.retries = False  # we retry ourselves, with backoff and a deadline
    api.rest_client = k8s.rest.RESTClientObject(api.configuration)
    return api


def _send(api: k8s.ApiClient, method: str, path: str, body=None, headers=None, query=None):
    """The server's response, whatever its status; a request that got no answer raises."""
    try:
        params = api.param_serialize(method, path, query_params=query or [], header_params=headers or {},
                                     body=body, auth_settings=["BearerToken"])
        response = api.call_api(*params[:5], _request_timeout=TIMEOUT)
        response.read()
    except ApiException as exc:
        raise _classify_api(exc, f"{method} {path}") from None
    except urllib3.exceptions.SSLError as exc:
        raise _classify_tls(exc) from None
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        raise Transient(f"{method} {path}: {_reason(exc)}") from None
    return response


def answer(api: k8s.ApiClient, method: str, path: str, body=None, headers=None, query=None) -> tuple[int, dict]:
    """(status, the JSON body) of a request whose refusal is itself the answer sought (a probe); only an
    answer worth retrying (no answer, 5xx, 429) raises, as Transient."""
    response = _send(api, method, path, body, headers, query)
    if response.status >= 500 or response.status == 429:
        raise Transient(f"{method} {path}: HTTP {response.status}")
    try:
        body = json.loads(response.data or b"{}")
    except ValueError:
        body = None
    if not isinstance(body, dict):  # not a Kubernetes object or Status: keep its start as the message
        body = {"message": (response.data or b"")[:300].decode(errors="replace")}
    return response.status, body


def _call(api: k8s.ApiClient, method: str, path: str, body=None, headers=None, query=None) -> bytes:
    response = _send(api, method, path, body, headers, query)
    status = response.status
    if _invalid_patch(status, response.data):
        raise Fatal(f"{method} {path}: HTTP {status}: {_message(response.data)}")
    if status >= 500 or status == 429:
        raise Transient(f"{method} {path}: HTTP {status}")
    if status == 403:
        raise Forbidden(f"{method} {path}: HTTP 403: {_message(response.data)}")
    if status >= 400:
        kind = Conflict if status == 409 else Fatal
        raise kind(f"{method} {path}: HTTP {status}: {response.data[:300].decode(errors='replace')}")
    return response.data


# A server-side apply whose object does not fit the schema (a field of the wrong type) is answered
# 500 InternalError by kube-apiserver, not 422: the same object fails every time, so it is not worth
# retrying until the deadline. The phrase is the API server's own (structured-merge-diff's typed patch).
INVALID_PATCH = "failed to create typed patch object"


def _invalid_patch(status: int, body) -> bool:
    if status != 500 or not body:
        return False
    text = body.decode(errors="replace") if isinstance(body, bytes) else str(body)
    return INVALID_PATCH in text[:4096]


def _reason(exc: Exception) -> str:
    return str(getattr(exc, "reason", None) or exc).split(": ", 1)[-1][:200]


def _classify_api(exc: ApiException, what: str) -> Exception:
    if not exc.status:  # the client wraps connection and TLS failures as status 0
        reason = str(exc.reason or exc)
        if "CERTIFICATE_VERIFY_FAILED" in reason or "certificate verify failed" in reason:
            return _classify_tls(exc)
        return Transient(f"{what}: {reason.split(': ', 1)[-1][:200]}")
    if _invalid_patch(exc.status, exc.body):
        return Fatal(f"{what}: HTTP {exc.status}: {_message(exc.body)}")
    if exc.status >= 500 or exc.status == 429:
        return Transient(f"{what}: HTTP {exc.status}")
    if exc.status in (401, 403):
        return Fatal(f"{what}: HTTP {exc.status}: the API server refused credentials/admin.kubeconfig "
                     "(was the cluster made with another CA? see --rotate-secrets)")
    kind = Conflict if exc.status == 409 else Fatal
    return kind(f"{what}: HTTP {exc.status}: {(exc.body or '')[:300]}")


def _message(body) -> str:
    """A Status object's message, else the body's start."""
    try:
        return str(json.loads(body)["message"])[:500]
    except (TypeError, ValueError, KeyError):
        text = body.decode(errors="replace") if isinstance(body, bytes) else str(body or "")
        return text[:300]


def _classify_tls(exc: Exception) -> Exception:
    text = str(getattr(exc, "reason", None) or exc)
    if "CERTIFICATE_VERIFY_FAILED" in text or "certificate verify failed" in text:
        return Fatal("TLS: the API server's certificate is not signed by this cluster's CA "
                     "(credentials/ca.crt): something else answers on that address, or the cluster was "
                     "made from other credentials")
    return Transient(f"TLS: {_reason(exc)}")


def readyz(api: k8s.ApiClient) -> str:
    return _call(api, "GET", "/readyz").decode(errors="replace").strip()


def nodes(api: k8s.ApiClient) -> dict[str, dict]:
    """name -> {"ready": bool, "reason": str} from the Node objects' Ready condition."""
    data = json.loads(_call(api, "GET", "/api/v1/nodes"))
    out = {}
    for item in data.get("items", []):
        ready = next((c for c in item.get("status", {}).get("conditions", []) if c.get("type") == "Ready"), {})
        out[item["metadata"]["name"]] = {"ready": ready.get("status") == "True",
                                         "reason": ready.get("message") or ready.get("reason") or ""}
    return out


def load_manifests(paths: list[Path]) -> list[Manifest]:
    """Every object in the given YAML files, in file order; a bad file is a Fatal naming it."""
    out = []
    for path in paths:
        try:
            docs = list(yaml.safe_load_all(path.read_text()))
        except (OSError, yaml.YAMLError) as exc:
            raise Fatal(f"{path}: not valid YAML: {exc}") from None
        for i, doc in enumerate(d for d in docs if d):
            if not isinstance(doc, dict) or not doc.get("apiVersion") or not doc.get("kind") \
                    or not doc.get("metadata", {}).get("name"):
                raise Fatal(f"{path}: object {i + 1} needs apiVersion, kind and metadata.name")
            out.append(Manifest(str(path), i, doc))
    return out


class Applier:
    """Server-side apply with the resource paths found by API discovery (cached per group/version)."""

    def __init__(self, api: k8s.ApiClient):
        self.api = api
        self.resources: dict[str, dict[str, tuple[str, bool]]] = {}

    def _resource(self, api_version: str, kind: str) -> tuple[str, bool]:
        if api_version not in self.resources:
            base = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
            try:
                listing = json.loads(_call(self.api, "GET", base))
            except Fatal as exc:
                if "HTTP 404" in str(exc):  # a CRD applied a moment ago may not be served yet
                    raise Transient(f"{api_version} is not served (yet)") from None
                raise
            self.resources[api_version] = {r["kind"]: (r["name"], r.get("namespaced", False))
                                           for r in listing.get("resources", []) if "/" not in r["name"]}
        found = self.resources[api_version].get(kind)
        if found is None:
            raise Fatal(f"the API server has no kind {kind} in {api_version}")
        return found

    def apply(self, manifest: Manifest, default_namespace: str = "default") -> None:
        body = manifest.body
        plural, namespaced = self._resource(body["apiVersion"], body["kind"])
        base = "/api/v1" if body["apiVersion"] == "v1" else f"/apis/{body['apiVersion']}"
        meta = body["metadata"]
        if namespaced and not meta.get("namespace"):
            body = {**body, "metadata": {**meta, "namespace": default_namespace}}
            meta = body["metadata"]
        ns = f"/namespaces/{meta['namespace']}" if namespaced else ""
        path = f"{base}{ns}/{plural}/{meta['name']}"
        try:
            _call(self.api, "PATCH", path, body=json.dumps(body),
                  headers={"Content-Type": "application/apply-patch+yaml", "Accept": "application/json"},
                  query=[("fieldManager", FIELD_MANAGER), ("force", "true")])
        except Fatal as exc:
            raise Fatal(f"{manifest.source}: {manifest.name}: {exc}") from None


def get(api: k8s.ApiClient, path: str) -> dict:
    return json.loads(_call(api, "GET", path))


def create(api: k8s.ApiClient, collection: str, body: dict) -> dict:
    """POST an object to its collection; the server's copy (uid and all). Raises Conflict if it exists."""
    return json.loads(_call(api, "POST", collection, body=body, headers=JSON))  # the client encodes JSON


def replace(api: k8s.ApiClient, path: str, body: dict) -> dict:
    """PUT an object over the one at `path` (no resourceVersion: last writer wins, as kubeadm's own
    create-or-update of the kubeadm-certs Secret)."""
    return json.loads(_call(api, "PUT", path, body=body, headers=JSON))


def apply_at(api: k8s.ApiClient, path: str, body: dict, *, dry_run: bool = False) -> dict:
    """Server-side apply of one object whose resource path is known (no discovery needed); the
    server's copy. `dry_run`: the server checks everything (admission too) and stores nothing."""
    query = [("fieldManager", FIELD_MANAGER), ("force", "true")] + ([("dryRun", "All")] if dry_run else [])
    return json.loads(_call(api, "PATCH", path, body=json.dumps(body),
                            headers={"Content-Type": "application/apply-patch+yaml", "Accept": "application/json"},
                            query=query))


def exists(api: k8s.ApiClient, path: str) -> bool:
    try:
        _call(api, "GET", path)
        return True
    except Fatal as exc:
        if "HTTP 404" in str(exc):
            return False
        raise


def deployments_available(api: k8s.ApiClient, namespace: str) -> bool:
    items = get(api, f"/apis/apps/v1/namespaces/{namespace}/deployments").get("items", [])
    def available(deployment: dict) -> bool:
        conditions = deployment.get("status", {}).get("conditions", [])
        return any(c.get("type") == "Available" and c.get("status") == "True" for c in conditions)
    return bool(items) and all(available(d) for d in items)


def kubeconfig_for(path: Path, server: str) -> bytes:
    """The kubeconfig at `path` with its cluster's server replaced (tools must reach this endpoint)."""
    data = yaml.safe_load(path.read_text())
    for entry in data.get("clusters", []):
        entry["cluster"]["server"] = server
    return yaml.safe_dump(data, sort_keys=False).encode()
