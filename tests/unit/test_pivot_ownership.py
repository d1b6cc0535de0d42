"""app/pivot/ownership.py without a server: which existing Namespace is pivot's to move into, and
that Sender.apply refuses any other before it sends a thing (the API calls recorded, not made)."""

from __future__ import annotations

import pytest

from app.pivot import apply as apply_module
from app.pivot.apply import Sender
from app.pivot.ownership import MANAGED_BY, ForeignNamespace, foreign_reason
from app.wait import kube

LABEL_FIELDS = {"f:metadata": {"f:labels": {f"f:{MANAGED_BY}": {}, "f:app.kubernetes.io/name": {}}}}


def namespace(labels: dict | None = None, *entries: tuple[str, dict]) -> dict:
    return {"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": "prov", "labels": labels or {},
                         "managedFields": [{"manager": m, "operation": "Apply", "fieldsV1": f} for m, f in entries]}}


PIVOTS = {MANAGED_BY: "bootstrap-node"}


def test_a_namespace_pivot_applied_is_its_own():
    assert foreign_reason(namespace(PIVOTS, ("bootstrap-node", LABEL_FIELDS))) is None


@pytest.mark.parametrize("obj", [
    namespace({}, ("kubectl-create", {"f:metadata": {}})),  # `kubectl create namespace prov`
    namespace(PIVOTS, ("kubectl-label", LABEL_FIELDS)),  # the label copied by hand
    namespace({"team": "a"}, ("bootstrap-node", {"f:metadata": {"f:labels": {"f:team": {}}}})),  # a wait add-on's
    namespace({MANAGED_BY: "helm"}, ("bootstrap-node", LABEL_FIELDS)),  # pivot's label, since taken over
    {"metadata": {"name": "prov"}},  # no labels, no managedFields at all
])
def test_any_other_namespace_is_foreign(obj):
    reason = foreign_reason(obj)
    assert reason and "--namespace 'prov': this namespace exists and pivot did not make it" in reason


OBJECTS = [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "prov"}},
           {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "prov"}}]


@pytest.fixture
def calls(monkeypatch):
    """Every call Sender makes, answered as a cluster where `prov` exists, made by `kubectl create`."""
    made: list[tuple[str, str]] = []

    def answer(api, method, path, *rest, **more):
        made.append((method, path))
        return (200, namespace({}, ("kubectl-create", {}))) if path == "/api/v1/namespaces/prov" else (404, {})

    def apply_at(api, path, body, dry_run=False):
        made.append(("PATCH", path))
        return body

    monkeypatch.setattr(kube, "answer", answer)
    monkeypatch.setattr(kube, "apply_at", apply_at)
    monkeypatch.setattr(kube, "exists", lambda api, path: answer(api, "GET", path)[0] == 200)
    return made


@pytest.mark.parametrize("dry_run", [False, True])
def test_sender_refuses_a_foreign_namespace_before_sending_anything(calls, dry_run):
    with pytest.raises(ForeignNamespace, match="pivot did not make it"):
        Sender(object(), 5).apply(OBJECTS, dry_run=dry_run)
    assert calls == [("GET", "/api/v1/namespaces/prov")]


def test_a_namespace_not_there_yet_is_applied(calls, monkeypatch):
    monkeypatch.setattr(apply_module, "existing", lambda api, path: None)
    outcome = Sender(object(), 5).apply(OBJECTS)
    assert outcome.applied == ["Namespace prov", "ConfigMap prov/c"]
    assert [c for c in calls if c[0] == "PATCH"] == [("PATCH", "/api/v1/namespaces/prov"),
                                                     ("PATCH", "/api/v1/namespaces/prov/configmaps/c")]
