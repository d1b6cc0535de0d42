"""What moves into the cluster from the output directory, and back out: the PKI and tokens the day-2
flows need (one Secret), the cluster record (a ConfigMap) and the template overrides in use (a
ConfigMap). Byte for byte: a file's bytes are its object's bytes.

Not moved: the admin client certificate and key (system:masters, and the admin.kubeconfig made from
them). Inside the cluster the appliance acts as its ServiceAccount; an admin credential in a Secret
would turn "may read that Secret" into cluster-admin. `unpivot` issues a fresh one from the CA. The
CA keys themselves do move: a controller's join needs them (kubeadm-certs carries them, encrypted).
"""

from __future__ import annotations

import base64
import json
import posixpath
from dataclasses import dataclass, field
from pathlib import Path

from app import pki
from app.cluster_record import CLUSTER_RECORD, JOIN_TOKENS
from app.layout import CREDENTIALS

CREDENTIALS_SECRET = "bootstrap-node-credentials"
RECORD_CONFIGMAP = "bootstrap-node-record"
TEMPLATES_CONFIGMAP = "bootstrap-node-templates"
PATHS_ANNOTATION = "bootstrap-node.io/paths"  # templates ConfigMap: data key -> path under the templates dir
# An object is at most 1 MiB in etcd (its request limit); leave room for metadata.
MAX_OBJECT_BYTES = 900 * 1024
ADMIN_FILES = {pki.FILES["admin_crt"], pki.FILES["admin_key"]}
# credentials/<file> -> its key in the Secret ("/" is not allowed in a key).
CREDENTIAL_KEYS = {name: name.replace("/", "-") for name in
                   [*(f for f in pki.FILES.values() if f not in ADMIN_FILES), JOIN_TOKENS.split("/", 1)[1]]}
REQUIRED = [name for name in CREDENTIAL_KEYS if name != JOIN_TOKENS.split("/", 1)[1]]
RECORD_KEY = CLUSTER_RECORD.split("/", 1)[1]


class StateError(Exception):
    """The output directory (or the cluster's copy of it) cannot be moved; the message says why."""


@dataclass(frozen=True)
class State:
    credentials: dict[str, bytes]  # name under credentials/ -> bytes (CREDENTIAL_KEYS' names)
    record: bytes | None = None  # credentials/cluster.json, when `wait` has seen the cluster
    templates: dict[str, bytes] = field(default_factory=dict)  # path under the templates dir -> bytes


def read_state(output: Path, templates: Path | None) -> State:
    """The state in `output` (and the overrides in `templates`, when that directory exists)."""
    creds = output / CREDENTIALS
    if not output.is_dir():
        raise StateError(f"{output}: no such output directory (pass --output: the directory `generate` wrote)")
    missing = [name for name in REQUIRED if not (creds / name).is_file()]
    if missing:
        raise StateError(f"{creds}: missing {', '.join(missing)}: run `generate` first (pivot moves the secrets "
                         "of a cluster that exists; it never makes new ones)")
    try:
        credentials = {name: (creds / name).read_bytes() for name in CREDENTIAL_KEYS if (creds / name).is_file()}
        record_path = output / CLUSTER_RECORD
        record = record_path.read_bytes() if record_path.is_file() else None
        found = {}
        if templates is not None and templates.is_dir():
            found = {str(p.relative_to(templates)): p.read_bytes() for p in sorted(templates.rglob("*"))
                     if p.is_file() and not any(part.startswith(".") for part in p.relative_to(templates).parts)}
    except OSError as exc:
        raise StateError(f"cannot read {exc.filename}: {exc.strerror}") from None
    return State(credentials, record, found)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _labels(cluster_name: str) -> dict:
    return {"app.kubernetes.io/name": "bootstrap-node", "bootstrap-node.io/cluster": cluster_name}


def template_keys(paths: list[str]) -> dict[str, str]:
    """data key -> template path: the path with '/' spelled '_' (a key allows no '/'); a clash is an error."""
    keys: dict[str, str] = {}
    for path in paths:
        key = path.replace("/", "_")
        if key in keys:
            raise StateError(f"templates {keys[key]!r} and {path!r} would share the ConfigMap key {key!r}: "
                             "rename one")
        keys[key] = path
    return keys


def state_objects(state: State, namespace: str, cluster_name: str) -> list[dict]:
    """The Secret and ConfigMaps holding `state`."""
    meta = lambda name, **more: {"name": name, "namespace": namespace,  # noqa: E731
                                 "labels": _labels(cluster_name), **more}
    secret = {"apiVersion": "v1", "kind": "Secret", "type": "Opaque", "metadata": meta(CREDENTIALS_SECRET),
              "data": {CREDENTIAL_KEYS[name]: _b64(data) for name, data in sorted(state.credentials.items())}}
    record = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta(RECORD_CONFIGMAP),
              "data": {RECORD_KEY: state.record.decode()} if state.record is not None else {}}
    keys = template_keys(sorted(state.templates))
    text, binary = {}, {}
    for key, path in keys.items():
        try:
            text[key] = state.templates[path].decode()
        except UnicodeDecodeError:
            binary[key] = _b64(state.templates[path])
    templates = {"apiVersion": "v1", "kind": "ConfigMap",
                 "metadata": meta(TEMPLATES_CONFIGMAP,
                                  annotations={PATHS_ANNOTATION: json.dumps(keys, sort_keys=True)}),
                 "data": text}
    if binary:
        templates["binaryData"] = binary
    for obj in (secret, record, templates):
        size = len(json.dumps(obj))
        if size > MAX_OBJECT_BYTES:
            raise StateError(f"{obj['kind']} {obj['metadata']['name']} would be {size} bytes; the API server "
                             f"stores at most ~1 MiB per object (trim the templates directory)")
    return [secret, record, templates]


def state_from_objects(secret: dict, record: dict, templates: dict) -> State:
    """The State the cluster's objects hold (what `state_objects` wrote, or a later edit of it)."""
    by_key = {key: name for name, key in CREDENTIAL_KEYS.items()}
    data = secret.get("data") or {}
    unknown = sorted(set(data) - set(by_key))
    missing = [CREDENTIAL_KEYS[name] for name in REQUIRED if CREDENTIAL_KEYS[name] not in data]
    if unknown or missing:
        raise StateError(f"Secret {CREDENTIALS_SECRET}: " + "; ".join(
            ([f"missing {', '.join(missing)}"] if missing else []) + ([f"unknown keys {', '.join(unknown)}"]
                                                                       if unknown else [])))
    credentials = {by_key[key]: base64.b64decode(value) for key, value in data.items()}
    text = (record.get("data") or {}).get(RECORD_KEY)
    annotation = (templates.get("metadata", {}).get("annotations") or {}).get(PATHS_ANNOTATION, "{}")
    try:
        paths = json.loads(annotation)
    except ValueError:
        raise StateError(f"ConfigMap {TEMPLATES_CONFIGMAP}: annotation {PATHS_ANNOTATION} is not JSON") from None
    # Anyone who may edit ConfigMaps in the namespace writes this annotation: each path becomes a file
    # unpivot writes, so it must be a plain relative path (no '..', no NUL, nothing normpath would change).
    if not isinstance(paths, dict) or not all(isinstance(p, str) for p in paths.values()):
        raise StateError(f"ConfigMap {TEMPLATES_CONFIGMAP}: annotation {PATHS_ANNOTATION} is not an object of "
                         "key -> path strings")
    files = {paths.get(key, key): value.encode() for key, value in (templates.get("data") or {}).items()}
    binary = templates.get("binaryData") or {}
    files |= {paths.get(key, key): base64.b64decode(value) for key, value in binary.items()}
    for path in files:
        if path.startswith("/") or ".." in Path(path).parts:
            raise StateError(f"ConfigMap {TEMPLATES_CONFIGMAP}: template path {path!r} leaves the templates directory")
        if "\0" in path or path in ("", ".") or posixpath.normpath(path) != path:
            raise StateError(f"ConfigMap {TEMPLATES_CONFIGMAP}: template path {path!r} in {PATHS_ANNOTATION} is not "
                             "a plain relative file path")
    return State(credentials, text.encode() if text is not None else None, files)
