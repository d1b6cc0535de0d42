"""Day-2 joins through the API: a fresh bootstrap token per (re)installed node, and the kubeadm-certs
Secret re-created for a later control-plane join.

kubeadm creates one token at `kubeadm init` and the TokenCleaner deletes it when it expires; it
deletes kubeadm-certs with the short-lived token that owns it. A node installed after that needs
both made again, which is what `kubeadm token create` and `kubeadm init phase upload-certs
--upload-certs` do on a controller. The appliance holds admin credentials, so it does the same
through the API, in the same formats (facts from kubeadm's bootstraptoken and copycerts phases):

- a token is a Secret `bootstrap-token-<id>` of type bootstrap.kubernetes.io/token in kube-system;
- kubeadm-certs holds each CA file under its pki/ name with "/" turned into "-", each value
  AES-GCM-encrypted with the hex-decoded certificate key, the random 12-byte nonce prepended; an
  ownerReference to a token without usages makes it expire with that token; a Role and RoleBinding
  `kubeadm:kubeadm-certs` let joining nodes (the bootstrappers group) read it.
"""

from __future__ import annotations

import base64
import datetime as dt
import os
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from app import pki
from app.cluster_record import JoinToken
from app.wait import kube

KUBE_SYSTEM = "/api/v1/namespaces/kube-system"
SECRETS = f"{KUBE_SYSTEM}/secrets"
RBAC = "/apis/rbac.authorization.k8s.io/v1/namespaces/kube-system"
TOKEN_TYPE = "bootstrap.kubernetes.io/token"
NODE_GROUP = "system:bootstrappers:kubeadm:default-node-token"  # kubeadm binds node joins to it
CERTS_SECRET = "kubeadm-certs"
CERTS_ROLE = f"kubeadm:{CERTS_SECRET}"
# What kubeadm transfers (local etcd): file under /etc/kubernetes/pki -> Secrets field.
CERT_FILES = {"ca.crt": "ca_crt", "ca.key": "ca_key", "sa.pub": "sa_pub", "sa.key": "sa_key",
              "front-proxy-ca.crt": "front_proxy_ca_crt", "front-proxy-ca.key": "front_proxy_ca_key",
              "etcd/ca.crt": "etcd_ca_crt", "etcd/ca.key": "etcd_ca_key"}
NONCE_BYTES = 12  # AES-GCM's standard nonce, which kubeadm's cipher uses
TOKEN_ATTEMPTS = 3  # a random token id that exists already is retried with another


def connect(kubeconfig: Path, servers: list[str]):
    """A client for the first endpoint whose /readyz says ok; (None, why) when none does. One pass,
    no waiting: callers decide what an absent API means."""
    errors = []
    for url in servers:
        api = kube.api_client(kubeconfig, url)
        try:
            answer = kube.readyz(api)
        except (kube.Transient, kube.Fatal) as exc:
            errors.append(f"{url}: {exc}")
            continue
        if answer == "ok":
            return api, ""
        errors.append(f"{url}/readyz: {answer[:80]}")
    return None, "; ".join(errors) or "no endpoint to try"


def registered_nodes(api) -> set[str]:
    return set(kube.nodes(api))


def _b64(text: str | bytes) -> str:
    return base64.b64encode(text.encode() if isinstance(text, str) else text).decode()


def rfc3339(when: dt.datetime) -> str:
    return when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def token_secret(token: str, expires: dt.datetime, description: str, *, joins: bool) -> dict:
    """The Secret that makes `token` valid until `expires`. `joins`: usable by `kubeadm join` (signing
    the cluster-info ConfigMap, authenticating as the node bootstrapper group); without it the token
    authenticates nothing and only carries a lifetime (kubeadm-certs' owner)."""
    token_id, token_secret_part = token.split(".", 1)
    data = {"token-id": token_id, "token-secret": token_secret_part, "expiration": rfc3339(expires),
            "description": description}
    if joins:
        data |= {"usage-bootstrap-authentication": "true", "usage-bootstrap-signing": "true",
                 "auth-extra-groups": NODE_GROUP}
    return {"apiVersion": "v1", "kind": "Secret", "type": TOKEN_TYPE,
            "metadata": {"name": f"bootstrap-token-{token_id}", "namespace": "kube-system"},
            "data": {key: _b64(value) for key, value in data.items()}}


def mint_token(api, now: dt.datetime, ttl: dt.timedelta, description: str, *, joins: bool = True
               ) -> tuple[JoinToken, dict]:
    """A new random token, created in the cluster. Returns it and the server's Secret (for its uid)."""
    expires = (now + ttl).replace(microsecond=0)
    for attempt in range(TOKEN_ATTEMPTS):
        token = pki.new_token()
        try:
            created = kube.create(api, SECRETS, token_secret(token, expires, description, joins=joins))
        except kube.Conflict:
            if attempt + 1 == TOKEN_ATTEMPTS:
                raise
            continue
        return JoinToken(token, expires), created
    raise AssertionError("unreachable")


def encrypt(data: bytes, certificate_key: str) -> bytes:
    """kubeadm's format: nonce || AES-GCM(data), the key being the hex certificate key (32 bytes)."""
    nonce = os.urandom(NONCE_BYTES)
    return nonce + AESGCM(bytes.fromhex(certificate_key)).encrypt(nonce, data, None)


def certs_secret(secrets: pki.Secrets, owner: dict, certificate_key: str) -> dict:
    """kubeadm-certs encrypted with `certificate_key`, owned by the token Secret `owner` (the garbage
    collector deletes it with it)."""
    data = {name.replace("/", "-"): _b64(encrypt(getattr(secrets, field), certificate_key))
            for name, field in CERT_FILES.items()}
    meta = owner["metadata"]
    reference = {"apiVersion": "v1", "kind": "Secret", "name": meta["name"], "uid": meta["uid"],
                 "controller": True, "blockOwnerDeletion": True}
    return {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
            "metadata": {"name": CERTS_SECRET, "namespace": "kube-system", "ownerReferences": [reference]},
            "data": data}


def upload_certs(api, secrets: pki.Secrets, now: dt.datetime, ttl: dt.timedelta) -> tuple[JoinToken, str]:
    """Re-create kubeadm-certs for a control-plane join (as `kubeadm init phase upload-certs`), alive
    for `ttl`, encrypted with a new certificate key (as kubeadm makes one per upload: the key of the
    first install, or of any earlier upload, decrypts none of the later ones). Returns the lifetime
    token that owns it and the key, which only the joining controllers' configs carry."""
    lifetime, owner = mint_token(api, now, ttl, f"bootstrap-node: lifetime of the {CERTS_SECRET} Secret", joins=False)
    key = pki.new_certificate_key()
    body = certs_secret(secrets, owner, key)
    try:
        kube.create(api, SECRETS, body)
    except kube.Conflict:
        kube.replace(api, f"{SECRETS}/{CERTS_SECRET}", body)
    _allow_bootstrappers_to_read_certs(api)
    return lifetime, key


def _allow_bootstrappers_to_read_certs(api) -> None:
    """kubeadm makes these only when `init` ran with --upload-certs: a cluster first made with one
    controller lacks them."""
    kube.apply_at(api, f"{RBAC}/roles/{CERTS_ROLE}", {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
        "metadata": {"name": CERTS_ROLE, "namespace": "kube-system"},
        "rules": [{"apiGroups": [""], "resources": ["secrets"], "resourceNames": [CERTS_SECRET], "verbs": ["get"]}]})
    kube.apply_at(api, f"{RBAC}/rolebindings/{CERTS_ROLE}", {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": CERTS_ROLE, "namespace": "kube-system"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": CERTS_ROLE},
        "subjects": [{"kind": "Group", "apiGroup": "rbac.authorization.k8s.io", "name": NODE_GROUP}]})
