"""app/pivot/ownership.py without a server: which existing Namespace is pivot's to move into (the owner
mark, an HMAC of the namespace's uid under the CA key), and that Sender.apply refuses any other before
it sends a thing, creates and marks a missing one first, and refuses one made in between (the API
calls recorded, not made)."""

from __future__ import annotations

import base64
import itertools

import pytest

from app import pki
from app.pivot.apply import Sender
from app.pivot.ownership import MANAGED_BY, OWNER, ForeignNamespace, foreign_reason, key_of, owner_mark
from app.pivot.state import CREDENTIAL_KEYS, CREDENTIALS_SECRET
from app.wait import kube

CA_KEY = b"-----BEGIN EC PRIVATE KEY-----\nours\n-----END EC PRIVATE KEY-----\n"
OTHER_KEY = b"-----BEGIN EC PRIVATE KEY-----\nsomeone else's\n-----END EC PRIVATE KEY-----\n"


def namespace(uid: str = "uid-1", annotations: dict | None = None, labels: dict | None = None,
              manager: str = "kubectl-create") -> dict:
    return {"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": "prov", "uid": uid, "labels": labels or {}, "annotations": annotations or {},
                         "managedFields": [{"manager": manager, "operation": "Update", "fieldsV1": {}}]}}


def ours(uid: str = "uid-1") -> dict:
    return namespace(uid, {OWNER: owner_mark(CA_KEY, uid)}, {MANAGED_BY: "bootstrap-node"}, "bootstrap-node")


def test_a_namespace_pivot_made_and_marked_is_its_own():
    assert foreign_reason(ours(), CA_KEY) is None


@pytest.mark.parametrize("obj", [
    namespace(),  # `kubectl create namespace prov`
    # pivot's label and field manager, both the client's to choose: `kubectl create ns prov
    # --field-manager=bootstrap-node` and a label the same way (the security review's attack)
    namespace(labels={MANAGED_BY: "bootstrap-node"}, manager="bootstrap-node"),
    namespace("uid-2", {OWNER: owner_mark(CA_KEY, "uid-1")}),  # a mark copied from pivot's namespace
    namespace("uid-1", {OWNER: owner_mark(OTHER_KEY, "uid-1")}),  # made with another cluster's CA key
    namespace("", {OWNER: owner_mark(CA_KEY, "")}),  # no uid to bind the mark to
    namespace(annotations={OWNER: "not hex at all"}),
    {**ours(), "metadata": {**ours()["metadata"], "deletionTimestamp": "2026-12-06T12:00:00Z"}},  # its own, going
    {"metadata": {"name": "prov"}},  # no metadata to speak of
])
def test_any_other_namespace_is_foreign(obj):
    reason = foreign_reason(obj, CA_KEY)
    going = bool(obj.get("metadata", {}).get("deletionTimestamp"))
    assert reason and ("--namespace 'prov' is being deleted: wait until" in reason if going else
                       "--namespace 'prov': this namespace exists and pivot did not make it" in reason)


def secret(key: bytes) -> dict:
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": CREDENTIALS_SECRET, "namespace": "prov"},
            "data": {CREDENTIAL_KEYS[pki.FILES["ca_key"]]: base64.b64encode(key).decode()}}


OBJECTS = [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "prov"}}, secret(CA_KEY),
           {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "prov"}}]
APPLIED = [("PATCH", "/api/v1/namespaces/prov"), ("PATCH", "/api/v1/namespaces/prov/secrets/bootstrap-node-credentials"),
           ("PATCH", "/api/v1/namespaces/prov/configmaps/c")]


def test_the_key_is_the_ca_key_pivot_sends():
    assert key_of(OBJECTS) == CA_KEY
    with pytest.raises(ForeignNamespace, match="no CA key"):
        key_of([OBJECTS[0], OBJECTS[2]])


@pytest.fixture
def cluster(monkeypatch):
    """The calls Sender makes, answered from `cluster["namespaces"]` (absent: 404; present: that
    object). A create answers 201 with a new uid, or 409 when the name is there by then; `appears`
    is put there just before pivot's create (someone else's create landing in between), `vanishes`
    takes it away just after the 409 (a namespace that was being deleted)."""
    state = {"namespaces": {"prov": namespace()}, "made": [], "appears": None, "vanishes": 0}
    uids = (f"uid-new-{i}" for i in itertools.count())

    def answer(api, method, path, *rest, **more):
        state["made"].append((method, path))
        spaces = state["namespaces"]
        if method == "POST":
            if state["appears"] is not None:
                spaces["prov"], state["appears"] = state["appears"], None
            if "prov" in spaces:
                if state["vanishes"]:
                    state["vanishes"] -= 1
                    del spaces["prov"]
                return 409, {"reason": "AlreadyExists"}
            spaces["prov"] = {**rest[0], "metadata": {**rest[0]["metadata"], "uid": next(uids)}}
            return 201, spaces["prov"]
        found = spaces.get(path.rsplit("/", 1)[-1]) if path.startswith("/api/v1/namespaces/") else None
        if method == "PATCH" and found is not None:  # the owner mark, onto the uid it names
            patch = rest[0]["metadata"]
            assert patch["uid"] == found["metadata"]["uid"]
            found["metadata"]["annotations"] = {**found["metadata"].get("annotations", {}), **patch["annotations"]}
            return 200, found
        return (200, found) if found is not None else (404, {})

    def apply_at(api, path, body, dry_run=False):
        state["made"].append(("PATCH dryRun" if dry_run else "PATCH", path))
        return body

    monkeypatch.setattr(kube, "answer", answer)
    monkeypatch.setattr(kube, "apply_at", apply_at)
    monkeypatch.setattr(kube, "exists", lambda api, path: answer(api, "GET", path)[0] == 200)
    return state


def sender() -> Sender:
    return Sender(object(), 5, sleep=lambda s: None)


@pytest.mark.parametrize("dry_run", [False, True])
def test_sender_refuses_a_foreign_namespace_before_sending_anything(cluster, dry_run):
    with pytest.raises(ForeignNamespace, match="pivot did not make it"):
        sender().apply(OBJECTS, dry_run=dry_run)
    assert cluster["made"] == [("GET", "/api/v1/namespaces/prov")]


def test_a_namespace_not_there_yet_is_created_and_marked_before_anything_is_applied(cluster):
    del cluster["namespaces"]["prov"]
    outcome = sender().apply(OBJECTS)
    assert outcome.applied == ["Namespace prov", "Secret prov/bootstrap-node-credentials", "ConfigMap prov/c"]
    assert cluster["made"] == [("GET", "/api/v1/namespaces/prov"), ("POST", "/api/v1/namespaces"),
                               ("PATCH", "/api/v1/namespaces/prov"), *APPLIED]
    assert foreign_reason(cluster["namespaces"]["prov"], CA_KEY) is None  # a second pivot recognises it
    assert [c for c in sender().apply(OBJECTS).applied] == outcome.applied


def test_a_dry_run_creates_no_namespace(cluster):
    del cluster["namespaces"]["prov"]
    sender().apply(OBJECTS, dry_run=True)
    assert [c for c in cluster["made"] if c[0] in ("POST", "PATCH")] == []


@pytest.mark.parametrize("appears, refused", [
    (namespace(), True),  # another team's `kubectl create namespace prov`
    (ours("uid-9"), False),  # a second pivot run at the same moment
])
def test_a_namespace_made_between_the_look_and_the_create(cluster, appears, refused):
    del cluster["namespaces"]["prov"]
    cluster["appears"] = appears
    if refused:
        with pytest.raises(ForeignNamespace, match="pivot did not make it"):
            sender().apply(OBJECTS)
        assert [c for c in cluster["made"] if c[0] == "PATCH"] == []
    else:
        assert sender().apply(OBJECTS).applied[0] == "Namespace prov"
    assert cluster["made"][:3] == [("GET", "/api/v1/namespaces/prov"), ("POST", "/api/v1/namespaces"),
                                   ("GET", "/api/v1/namespaces/prov")]


def test_a_namespace_gone_after_its_409_is_created_again_never_assumed_ours(cluster):
    """It was being deleted when pivot's create came (409), and is gone at the look after: pivot
    creates it again (and marks it) rather than apply into whatever may appear under that name."""
    cluster["namespaces"]["prov"] = namespace()  # someone's, terminating
    cluster["appears"], cluster["vanishes"] = namespace(), 1
    del cluster["namespaces"]["prov"]
    outcome = sender().apply(OBJECTS)
    assert outcome.applied[0] == "Namespace prov"
    assert cluster["made"][:6] == [("GET", "/api/v1/namespaces/prov"), ("POST", "/api/v1/namespaces"),
                                   ("GET", "/api/v1/namespaces/prov"), ("POST", "/api/v1/namespaces"),
                                   ("PATCH", "/api/v1/namespaces/prov"), APPLIED[0]]
    assert foreign_reason(cluster["namespaces"]["prov"], CA_KEY) is None
