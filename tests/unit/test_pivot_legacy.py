"""app/pivot/legacy.py without a server (the API's answers scripted): which old per-cluster RBAC a
pivot deletes, and that it deletes nothing it is not sure of. tests/k8s/test_pivot_attacks.py does it
against the real API server."""

from __future__ import annotations

import pytest

from app.pivot import legacy
from app.wait import kube

PIVOT = [{"manager": "bootstrap-node", "operation": "Apply"}]


def binding(namespace: str = "prov", managers=PIVOT, name: str = "bootstrap-node:day-2", **more) -> dict:
    return {"metadata": {"name": name, "uid": f"uid-{name}", "resourceVersion": "7", "managedFields": managers},
            "roleRef": {"kind": "Role", "name": name},
            "subjects": [{"kind": "ServiceAccount", "name": "bootstrap-node", "namespace": namespace}], **more}


@pytest.mark.parametrize("obj, namespace, expected", [
    (binding(), "prov", True),
    (binding("other"), "prov", False),  # another namespace's account: its rights until it pivots again
    (binding(managers=[{"manager": "kubectl-edit"}]), "prov", False),  # not pivot's
    (binding(subjects=[{"kind": "ServiceAccount", "name": "bootstrap-node", "namespace": "prov"},
                       {"kind": "Group", "name": "ops"}]), "prov", False),  # a user added someone
    ({**binding(), "roleRef": {"kind": "Role", "name": "edit"}}, "prov", False),
])
def test_only_the_binding_a_pivot_of_this_namespace_made_is_ours(obj, namespace, expected):
    assert legacy.ours(obj, namespace) is expected


@pytest.fixture
def server(monkeypatch):
    """Objects by path; DELETE removes one when its preconditions hold (else 409), as the API server does."""
    held: dict[str, dict] = {}
    deletes: list[tuple[str, dict]] = []

    def answer(api, method, path, body=None, headers=None, query=None):
        if method == "GET":
            return (200, held[path]) if path in held else (404, {})
        deletes.append((path, body["preconditions"]))
        meta = held.get(path, {}).get("metadata", {})
        if path not in held:
            return 404, {}
        if body["preconditions"] != {"uid": meta["uid"], "resourceVersion": meta["resourceVersion"]}:
            return 409, {}
        del held[path]
        return 200, {}
    monkeypatch.setattr(kube, "answer", answer)
    return held, deletes


def pair(held: dict, index: int, obj: dict) -> tuple[str, str]:
    binding_path, role_path, _ = legacy.PAIRS[index]
    held[binding_path] = obj
    held[role_path] = {"metadata": {"name": obj["metadata"]["name"], "uid": "r", "resourceVersion": "3",
                                    "managedFields": PIVOT}}
    return binding_path, role_path


def test_this_namespaces_old_pairs_go_and_another_namespaces_stay(server):
    held, deletes = server
    mine = pair(held, 0, binding("prov"))
    theirs = pair(held, 1, binding("other", name="bootstrap-node:nodes", roleRef={"kind": "ClusterRole",
                                                                                  "name": "bootstrap-node:nodes"}))
    assert legacy.retire(None, "prov") == [legacy.PAIRS[0][2]]
    assert not set(mine) & set(held) and set(theirs) <= set(held)
    assert deletes[0] == (mine[0], {"uid": "uid-bootstrap-node:day-2", "resourceVersion": "7"})
    assert legacy.retire(None, "prov") == []  # nothing left of its own: a second pivot deletes nothing


def test_a_binding_changed_since_it_was_read_is_left_with_its_role(server, monkeypatch):
    held, _ = server
    binding_path, role_path = pair(held, 0, binding("prov"))
    real_answer = kube.answer

    def moved_on(api, method, path, body=None, headers=None, query=None):
        if method == "DELETE" and path == binding_path:
            held[path] = {**held[path], "metadata": {**held[path]["metadata"], "resourceVersion": "8"}}
        return real_answer(api, method, path, body, headers, query)
    monkeypatch.setattr(kube, "answer", moved_on)
    assert legacy.retire(None, "prov") == []
    assert {binding_path, role_path} <= set(held)
