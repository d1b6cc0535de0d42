"""`wait`, the user's kubeconfig, add-ons and the kube-vip manifest against a real kube-apiserver
(with real etcd, controller-manager and kubeadm's own RBAC), made from our generated files."""

from __future__ import annotations

import base64
import datetime as dt
import json
import shutil
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from app import pki
from app.cli import app
from app.cluster import load_cluster
from app.cluster.model import GitOps
from app.wait import kube
from app.wait.addons import ARGOCD_NAMESPACE, root_application
from tests.support.addon_modules import Addon, addon, member, module_zip
from tests.support.gate import NAMES, client_groups, make_templates
from tests.support.paths import EXAMPLE
from tests.support.processes import wait_for
from tests.unit.test_generate import files_of

ADDON = """apiVersion: v1
kind: Namespace
metadata: {name: team-a}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: settings, namespace: team-a}
data: {colour: blue}
"""
LATER_ADDON = """apiVersion: v1
kind: ConfigMap
metadata: {name: settings, namespace: team-a}
data: {colour: green}
"""


def output_copy(generated: Path, tmp_path: Path) -> Path:
    out = tmp_path / "output"
    shutil.copytree(generated, out, symlinks=True)
    return out


def api_for(control_plane, kubeconfig: Path):
    return kube.api_client(kubeconfig, control_plane.server)


def review(control_plane, kubeconfig: Path, verb: str, resource: str, namespace: str = "", group: str = "") -> bool:
    body = {"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
            "spec": {"resourceAttributes": {"verb": verb, "resource": resource, "namespace": namespace,
                                            "group": group}}}
    answer = kube.create(api_for(control_plane, kubeconfig), "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
                         body)
    return answer["status"]["allowed"]


def who(control_plane, kubeconfig: Path) -> dict:
    body = {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}
    answer = kube.create(api_for(control_plane, kubeconfig), "/apis/authentication.k8s.io/v1/selfsubjectreviews", body)
    return answer["status"]["userInfo"]


@pytest.fixture(scope="module")
def release_trees() -> dict[str, tuple[Addon, Path]]:
    """flannel's and Argo CD's real release trees, as pinned (what the image build extracts from)."""
    return {key: (a, module_zip(a)[0]) for key in ("FLANNEL", "ARGOCD") for a in [addon(key)]}


def test_wait_applies_addons_and_writes_a_working_user_kubeconfig(control_plane, generated_k8s, tmp_path,
                                                                  release_trees):
    output = output_copy(generated_k8s, tmp_path)
    templates = make_templates(tmp_path / "templates", {"10-team.yaml": ADDON, "20-later.yaml": LATER_ADDON})
    flannel, zip_path = release_trees["FLANNEL"]  # the real manifest, in place of the tests' stand-in
    (templates / "cni" / "flannel.yaml").write_bytes(member(zip_path, flannel, flannel.manifest))
    for name in NAMES:
        if name != "cp-1":
            control_plane.create_node(name)
    for name in NAMES:  # as kubelets would report, just before the gate looks
        control_plane.set_ready(name, True)
    result = CliRunner().invoke(app, ["--config", str(EXAMPLE), "--output", str(output), "--templates", str(templates),
                                      "wait", "--server", control_plane.server, "--poll", "0.5",
                                      "--api-timeout", "60", "--nodes-timeout", "120"])
    assert result.exit_code == 0, result.output
    assert "all 5 nodes Ready" in result.output
    # flannel, server-side applied by the real API server, with cluster.yaml's pod subnet
    cm = json.loads(control_plane.kubectl("get", "-n", "kube-flannel", "configmap", "kube-flannel-cfg",
                                          "--show-managed-fields", "-o", "json").stdout)
    assert json.loads(cm["data"]["net-conf.json"])["Network"] == "10.244.0.0/16"
    assert {(f["manager"], f["operation"]) for f in cm["metadata"]["managedFields"]} == {("bootstrap-node", "Apply")}
    ds = json.loads(control_plane.kubectl("get", "-n", "kube-flannel", "daemonset", "kube-flannel-ds",
                                          "-o", "json").stdout)
    assert ds["spec"]["template"]["spec"]["containers"][0]["image"] == f"ghcr.io/flannel-io/flannel:{flannel.version}"
    # user add-ons in lexical order: the later file's value wins
    settings = json.loads(control_plane.kubectl("get", "-n", "team-a", "configmap", "settings", "-o", "json").stdout)
    assert settings["data"] == {"colour": "green"}
    # the user's kubeconfig: authenticates through real kubeadm's RBAC, revocable group, not system:masters
    kubeconfig = output / "kubeconfig"
    assert client_groups(kubeconfig) == [pki.CLUSTER_ADMINS]
    user = who(control_plane, kubeconfig)
    assert user["username"] == pki.USER_NAME
    assert pki.CLUSTER_ADMINS in user["groups"] and "system:masters" not in user["groups"]
    for verb, resource, namespace, group in (("create", "deployments", "default", "apps"), ("delete", "nodes", "", ""),
                                             ("get", "secrets", "kube-system", ""), ("*", "*", "", "*")):
        assert review(control_plane, kubeconfig, verb, resource, namespace, group), (verb, resource)


def test_user_kubeconfig_is_revoked_with_kubeadms_binding(control_plane, generated_k8s, tmp_path):
    """The group is bound by kubeadm's ClusterRoleBinding: deleting it takes the access away (which a
    system:masters certificate would survive)."""
    secrets = pki.from_files(lambda name: (generated_k8s / "credentials" / name).read_bytes())
    kubeconfig = tmp_path / "user.kubeconfig"
    kubeconfig.write_bytes(pki.user_kubeconfig(secrets, control_plane.server, "lab", dt.datetime.now(dt.UTC)))
    assert review(control_plane, kubeconfig, "list", "pods", "kube-system")
    saved = control_plane.kubectl("get", "clusterrolebinding", "kubeadm:cluster-admins", "-o", "yaml").stdout
    masters = control_plane.super_admin_conf  # admin.conf is in that group too
    control_plane.kubectl("delete", "clusterrolebinding", "kubeadm:cluster-admins", kubeconfig=masters)
    try:
        # the authorizer sees the deletion through its watch: a moment later, not at once
        wait_for(lambda: not review(control_plane, kubeconfig, "list", "pods", "kube-system"), timeout=30,
                 what="the user to lose access with kubeadm's binding")
    finally:
        body = yaml.safe_load(saved)
        body["metadata"] = {"name": body["metadata"]["name"]}
        control_plane.kubectl("create", "-f", "-", stdin=yaml.safe_dump(body), kubeconfig=masters)
        wait_for(lambda: review(control_plane, kubeconfig, "list", "pods", "kube-system"), timeout=30,
                 what="the binding to be back for the tests after this one")


def test_kube_vip_manifest_is_a_valid_pod(control_plane, generated_k8s):
    ignition = json.loads((generated_k8s / "matchbox" / "ignition" / "cp-2.ign").read_text())
    manifest = files_of(ignition)["/opt/bootstrap-node/kubernetes/manifests/kube-vip.yaml"].decode()
    run = control_plane.kubectl("create", "--dry-run=server", "-n", "kube-system", "-o", "json", "-f", "-",
                                stdin=manifest)
    pod = json.loads(run.stdout)
    assert pod["kind"] == "Pod" and pod["spec"]["hostNetwork"] is True


def test_kube_vip_dry_run_rejects_a_broken_pod(control_plane, generated_k8s):
    """The dry run can fail: a container without an image is refused by the real API server."""
    ignition = json.loads((generated_k8s / "matchbox" / "ignition" / "cp-2.ign").read_text())
    pod = yaml.safe_load(files_of(ignition)["/opt/bootstrap-node/kubernetes/manifests/kube-vip.yaml"])
    del pod["spec"]["containers"][0]["image"]
    run = control_plane.kubectl("create", "--dry-run=server", "-n", "kube-system", "-f", "-",
                                stdin=yaml.safe_dump(pod), check=False)
    assert run.returncode != 0 and "image" in run.stderr


def test_cluster_info_is_signed_for_our_token(control_plane, generated_k8s):
    """kubeadm's bootstrap-token phase with our token, signed by the real controller-manager."""
    token = (generated_k8s / "credentials" / "bootstrap-token").read_text().strip()
    token_id = token.split(".")[0]

    def signed():
        info = json.loads(control_plane.kubectl("get", "-n", "kube-public", "configmap", "cluster-info",
                                                "-o", "json").stdout)
        return f"jws-kubeconfig-{token_id}" in info.get("data", {})
    wait_for(signed, timeout=60, what="the bootstrap signer to sign cluster-info")
    info = json.loads(control_plane.kubectl("get", "-n", "kube-public", "configmap", "cluster-info",
                                            "-o", "json").stdout)
    ca = yaml.safe_load(info["data"]["kubeconfig"])["clusters"][0]["cluster"]["certificate-authority-data"]
    assert base64.b64decode(ca) == (generated_k8s / "credentials" / "ca.crt").read_bytes()


def test_argo_cds_crds_are_established_and_the_root_application_applies(control_plane, generated_k8s,
                                                                         release_trees, tmp_path):
    """Argo CD's real CRDs, from the install manifest `wait` applies (server-side: they are too large
    for a client-side apply's annotation), Established; then the root Application exactly as `wait`
    builds it, accepted by the real Application schema. The Applier discovers a kind whose CRD was
    applied a moment ago (not served yet: retried)."""
    cluster, _ = load_cluster(EXAMPLE)
    cluster = cluster.model_copy(update={"gitops": GitOps(repo="https://git.example.com/infra.git", path="clusters/lab")})
    api = kube.api_client(generated_k8s / "credentials" / "admin.kubeconfig", control_plane.server)
    applier = kube.Applier(api)
    argocd, zip_path = release_trees["ARGOCD"]
    install = tmp_path / "argo-cd.yaml"
    install.write_bytes(member(zip_path, argocd, argocd.manifest))
    crds = [m for m in kube.load_manifests([install]) if m.body["kind"] == "CustomResourceDefinition"]
    assert {m.body["metadata"]["name"] for m in crds} == {"applications.argoproj.io", "applicationsets.argoproj.io",
                                      "appprojects.argoproj.io"}
    for crd in crds:
        applier.apply(crd)
    applier.apply(kube.Manifest("gitops", 0, {"apiVersion": "v1", "kind": "Namespace",
                                              "metadata": {"name": ARGOCD_NAMESPACE}}))
    root = root_application(cluster)
    wait_for(lambda: _applied(applier, root), timeout=60, what="argoproj.io/v1alpha1 to be served")
    for crd in crds:  # each on its own: the large ones take the API server a moment longer
        name = crd.body["metadata"]["name"]
        wait_for(lambda name=name: _established(api, name), timeout=60, what=f"{name} to be Established")
    app_object = kube.get(api, f"/apis/argoproj.io/v1alpha1/namespaces/{ARGOCD_NAMESPACE}/applications/root")
    assert app_object["spec"] == root["spec"]
    # the real schema is enforced (the old stand-in CRD kept every field): an Application without its
    # destination is refused.
    broken = {**root, "metadata": {**root["metadata"], "name": "broken"},
              "spec": {k: v for k, v in root["spec"].items() if k != "destination"}}
    with pytest.raises(kube.Fatal) as refused:
        applier.apply(kube.Manifest("gitops", 0, broken))
    assert "HTTP 422" in str(refused.value) and "destination" in str(refused.value)
    # A field of the wrong type: the real server answers server-side apply with 500 InternalError, not
    # 422. It is still the object's fault, so it is Fatal at once (not retried until wait's deadline).
    mistyped = {**root, "metadata": {**root["metadata"], "name": "mistyped"},
                "spec": {**root["spec"], "project": 7}}
    with pytest.raises(kube.Fatal) as refused:
        applier.apply(kube.Manifest("gitops", 0, mistyped))
    assert "HTTP 500" in str(refused.value) and "project" in str(refused.value)


def _established(api, name: str) -> bool:
    served = kube.get(api, f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}")
    return {c["type"]: c["status"] for c in served.get("status", {}).get("conditions") or []}.get("Established") == "True"


def _applied(applier: kube.Applier, body: dict) -> bool:
    try:
        applier.apply(kube.Manifest("gitops", 0, body))
        return True
    except kube.Transient:
        applier.resources.clear()  # discover again next time
        return False
