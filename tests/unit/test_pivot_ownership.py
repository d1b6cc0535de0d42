"""app/pivot/ownership.py without a server: which existing Namespace is pivot's to move into, and
that Sender.apply refuses any other before it sends a thing (the API calls recorded, not made)."""

from __future__ import annotations

import pytest

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
def cluster(monkeypatch):
    """The calls Sender makes, answered from `cluster["namespaces"]` (absent: 404; present: that
    object); a create answers 201, or 409 when the name is there by then."""
    state = {"namespaces": {"prov": namespace({}, ("kubectl-create", {}))}, "made": [], "appears": None}

    def answer(api, method, path, *rest, **more):
        state["made"].append((method, path))
        if method == "POST":
            if state["appears"] is not None:  # someone else's create lands between pivot's look and its own
                state["namespaces"]["prov"] = state["appears"]
            return (409, {"reason": "AlreadyExists"}) if "prov" in state["namespaces"] else (201, rest[0])
        found = state["namespaces"].get(path.rsplit("/", 1)[-1]) if path.startswith("/api/v1/namespaces/") else None
        return (200, found) if found is not None else (404, {})

    def apply_at(api, path, body, dry_run=False):
        state["made"].append(("PATCH dryRun" if dry_run else "PATCH", path))
        return body

    monkeypatch.setattr(kube, "answer", answer)
    monkeypatch.setattr(kube, "apply_at", apply_at)
    monkeypatch.setattr(kube, "exists", lambda api, path: answer(api, "GET", path)[0] == 200)
    return state


@pytest.mark.parametrize("dry_run", [False, True])
def test_sender_refuses_a_foreign_namespace_before_sending_anything(cluster, dry_run):
    with pytest.raises(ForeignNamespace, match="pivot did not make it"):
        Sender(object(), 5).apply(OBJECTS, dry_run=dry_run)
    assert cluster["made"] == [("GET", "/api/v1/namespaces/prov")]


def test_a_namespace_not_there_yet_is_created_before_anything_is_applied(cluster):
    del cluster["namespaces"]["prov"]
    outcome = Sender(object(), 5).apply(OBJECTS)
    assert outcome.applied == ["Namespace prov", "ConfigMap prov/c"]
    assert cluster["made"] == [("GET", "/api/v1/namespaces/prov"), ("POST", "/api/v1/namespaces"),
                               ("PATCH", "/api/v1/namespaces/prov"), ("PATCH", "/api/v1/namespaces/prov/configmaps/c")]


def test_a_dry_run_creates_no_namespace(cluster):
    del cluster["namespaces"]["prov"]
    Sender(object(), 5).apply(OBJECTS, dry_run=True)
    assert [c for c in cluster["made"] if c[0] in ("POST", "PATCH")] == []


@pytest.mark.parametrize("appears, refused", [
    (namespace({}, ("kubectl-create", {})), True),  # another team's `kubectl create namespace prov`
    (namespace(PIVOTS, ("bootstrap-node", LABEL_FIELDS)), False),  # a second pivot run at the same moment
])
def test_a_namespace_made_between_the_look_and_the_create(cluster, appears, refused):
    del cluster["namespaces"]["prov"]
    cluster["appears"] = appears
    if refused:
        with pytest.raises(ForeignNamespace, match="pivot did not make it"):
            Sender(object(), 5).apply(OBJECTS)
        assert [c for c in cluster["made"] if c[0] == "PATCH"] == []
    else:
        assert Sender(object(), 5).apply(OBJECTS).applied == ["Namespace prov", "ConfigMap prov/c"]
    assert cluster["made"][:3] == [("GET", "/api/v1/namespaces/prov"), ("POST", "/api/v1/namespaces"),
                                   ("GET", "/api/v1/namespaces/prov")]
