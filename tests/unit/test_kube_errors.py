"""Which API answers `wait` retries and which it gives up on at once (app/wait/kube.py)."""
from __future__ import annotations

import json

import pytest
from kubernetes.client.exceptions import ApiException

from app.wait import kube

TYPED_PATCH = json.dumps({"kind": "Status", "status": "Failure", "code": 500, "reason": "InternalError",
                          "message": "failed to create typed patch object (argocd/x; argoproj.io/v1alpha1, "
                                     "Kind=Application): .spec.project: expected string, got &value.valueUnstructured"})


def _api_exception(status: int, body: str) -> ApiException:
    exc = ApiException(status=status, reason="x")
    exc.body = body
    return exc


@pytest.mark.parametrize(("status", "body", "expected"), [
    (500, TYPED_PATCH, kube.Fatal),           # the object does not fit its schema: every retry fails alike
    (500, '{"message": "etcdserver: request timed out"}', kube.Transient),
    (503, TYPED_PATCH, kube.Transient),       # only the 500 of a typed patch is the object's fault
    (429, "", kube.Transient),
    (422, '{"message": "spec.destination: Required value"}', kube.Fatal),
    (409, "", kube.Conflict),
    (403, "", kube.Fatal),
])
def test_classification(status, body, expected):
    classified = kube._classify_api(_api_exception(status, body), "PATCH /x")
    assert type(classified) is expected


def test_a_mistyped_object_names_the_field():
    message = str(kube._classify_api(_api_exception(500, TYPED_PATCH), "PATCH /x"))
    assert ".spec.project: expected string" in message and "HTTP 500" in message


@pytest.mark.parametrize("user", [{"token": "t"}, {"username": "u", "password": "p"}])
def test_a_server_given_instead_of_the_kubeconfigs_holds_for_every_call(tmp_path, user):
    # pivot --server, wait --server: with a token user the client's loader put the kubeconfig's own
    # host back before every call but the first.
    import yaml
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "c",
        "contexts": [{"name": "c", "context": {"cluster": "k", "user": "u"}}],
        "clusters": [{"name": "k", "cluster": {"server": "https://unresolvable.example:6443"}}],
        "users": [{"name": "u", "user": user}]}))
    api = kube.api_client(path, "https://10.0.0.10:6443")
    urls = [api.param_serialize("GET", "/readyz", auth_settings=["BearerToken"])[1] for _ in range(3)]
    assert urls == ["https://10.0.0.10:6443/readyz"] * 3
