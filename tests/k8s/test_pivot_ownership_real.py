"""Pivot moves only into a namespace of its own, on the real API server: one that someone else made
is refused before anything is sent, and so is one made between pivot's look and its own create (the
appliance's ServiceAccount may read every Secret in its namespace: app/pivot/ownership.py)."""

from __future__ import annotations

import shutil

from app.cluster import load_cluster
from app.pivot import apply as apply_module
from app.pivot.apply import path_of
from app.pivot.manifests import PivotInput, render
from app.pivot.ownership import MANAGED_BY, OWNER, owner_mark
from app.pivot.state import read_state
from app.wait import kube
from tests.k8s.test_pivot_real import admin, output, pivot, said, templates  # noqa: F401
from tests.support.paths import EXAMPLE

FOREIGN = "made-by-hand"  # a namespace of its own: the tier's other modules run on the same control plane


def test_a_namespace_pivot_did_not_make_is_refused_and_nothing_is_applied(control_plane, admin, output,  # noqa: F811
                                                                         templates):  # noqa: F811
    control_plane.kubectl("create", "namespace", FOREIGN)
    control_plane.kubectl("create", "secret", "generic", "theirs", "-n", FOREIGN, "--from-literal=k=v")
    for more in ([], ["--server-dry-run"]):
        result = pivot(control_plane, output, templates, "--namespace", FOREIGN, *more)
        assert result.exit_code == 1, said(result)
        assert f"--namespace '{FOREIGN}': this namespace exists and pivot did not make it" in result.output
        assert not any(line.startswith(("applied", "accepted")) for line in result.output.splitlines())
    cluster, _ = load_cluster(EXAMPLE)
    theirs = render(PivotInput(cluster, read_state(output, templates), "registry.example/bootstrap-node:test",
                               FOREIGN))
    made = [path_of(o) for o in theirs if o["kind"] not in ("Namespace", "CustomResourceDefinition")
            if kube.exists(admin, path_of(o))]
    assert made == []  # no Role, RoleBinding, ServiceAccount, Secret, Deployment, policy or Machine
    assert MANAGED_BY not in (kube.get(admin, f"/api/v1/namespaces/{FOREIGN}")["metadata"].get("labels") or {})


MEANWHILE = "made-meanwhile"


def test_a_namespace_made_between_pivots_look_and_its_create_is_refused(control_plane, admin,  # noqa: F811
                                                                        output, templates,  # noqa: F811
                                                                        monkeypatch):
    """The race: pivot looks, finds no namespace, and another team's `kubectl create` lands before
    pivot's own create. The real server's 409 and the second look refuse it; nothing is applied."""
    look = apply_module.existing

    def look_then_lose_the_race(api, path):
        if path != f"/api/v1/namespaces/{MEANWHILE}" or kube.exists(admin, path):
            return look(api, path)
        control_plane.kubectl("create", "namespace", MEANWHILE)  # lands after the look said "absent"
        return None

    monkeypatch.setattr(apply_module, "existing", look_then_lose_the_race)
    result = pivot(control_plane, output, templates, "--namespace", MEANWHILE)
    assert result.exit_code == 1, said(result)
    assert f"--namespace '{MEANWHILE}': this namespace exists and pivot did not make it" in result.output
    assert not any(line.startswith("applied") for line in result.output.splitlines())
    cluster, _ = load_cluster(EXAMPLE)
    theirs = render(PivotInput(cluster, read_state(output, templates), "registry.example/bootstrap-node:test",
                               MEANWHILE))
    assert [path_of(o) for o in theirs if o["metadata"].get("namespace") == MEANWHILE
            if kube.exists(admin, path_of(o))] == []
    assert MANAGED_BY not in (kube.get(admin, f"/api/v1/namespaces/{MEANWHILE}")["metadata"].get("labels") or {})


SPOOFED = "spoofed"


def test_a_namespace_dressed_as_pivots_is_refused(control_plane, admin, output, templates):  # noqa: F811
    """The security review's attack: a user who may create namespaces makes one under pivot's field
    manager with pivot's label, hoping pivot moves its CA keys in. Only the owner mark (an HMAC of the
    namespace's uid under the CA key) makes a namespace pivot's."""
    control_plane.kubectl("create", "namespace", SPOOFED, "--field-manager", kube.FIELD_MANAGER)
    control_plane.kubectl("label", "namespace", SPOOFED, f"{MANAGED_BY}={kube.FIELD_MANAGER}",
                          "--field-manager", kube.FIELD_MANAGER)
    result = pivot(control_plane, output, templates, "--namespace", SPOOFED)
    assert result.exit_code == 1, said(result)
    assert f"--namespace '{SPOOFED}': this namespace exists and pivot did not make it" in result.output
    assert not kube.exists(admin, f"/api/v1/namespaces/{SPOOFED}/secrets/bootstrap-node-credentials")


def test_a_namespace_pivot_made_is_recognised_by_a_copy_of_the_output(control_plane, admin, output, templates,  # noqa: F811
                                                                      tmp_path):
    """The mark is made with the CA key, not kept in the output directory: a copy (unpivot's too)
    recognises the namespace, and its mark is bound to that namespace's uid."""
    first = pivot(control_plane, output, templates, "--namespace", "marked")
    assert first.exit_code == 0, said(first)
    made = kube.get(admin, "/api/v1/namespaces/marked")["metadata"]
    assert made["annotations"][OWNER] == owner_mark((output / "credentials" / "ca.key").read_bytes(), made["uid"])
    copy = tmp_path / "copy"
    shutil.copytree(output, copy, symlinks=True)
    again = pivot(control_plane, copy, templates, "--namespace", "marked")
    assert again.exit_code == 0, said(again)

