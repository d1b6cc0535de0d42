"""After the API answers: the CNI choice, user add-ons, the GitOps hand-off, and idempotence,
against the TLS API-server stand-in with the real kubernetes client."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import yaml

from tests.support.gate import ADDON, FIXTURES, NAMES, api, make_templates, run_wait
from tests.support.paths import EXAMPLE


def config(tmp_path: Path, extra: str, cni: str = "flannel") -> Path:
    path = tmp_path / "cluster.yaml"
    path.write_text(EXAMPLE.read_text().replace("cni: flannel", f"cni: {cni}") + extra)
    return path


def fake_cilium(tmp_path: Path) -> Path:
    """A stand-in `cilium` executable on PATH that records its arguments and kubeconfig."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "cilium"
    record = tmp_path / "cilium-call.json"
    script.write_text(f"""#!/usr/bin/env python3
import json, os, sys
json.dump({{"args": sys.argv[1:], "kubeconfig": open(os.environ["KUBECONFIG"]).read()}}, open({str(record)!r}, "w"))
""")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return record


def test_cilium_install_gets_the_chosen_options(output, tmp_path, monkeypatch):
    record = fake_cilium(tmp_path)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:{os.environ['PATH']}")
    cfg = config(tmp_path, "cilium: {wireguard: true, kube_proxy_replacement: true}\n", cni="cilium")
    with api(output, tmp_path, {n: 0.0 for n in NAMES}) as server:
        result = run_wait(output, server, make_templates(tmp_path / "t"), config=cfg)
    assert result.exit_code == 0, result.output
    call = json.loads(record.read_text())
    assert call["args"] == ["install", "--set", "ipam.mode=kubernetes", "--set", "encryption.enabled=true",
                            "--set", "encryption.type=wireguard", "--set", "kubeProxyReplacement=true",
                            "--set", "k8sServiceHost=10.0.0.10", "--set", "k8sServicePort=6443"]
    assert yaml.safe_load(call["kubeconfig"])["clusters"][0]["cluster"]["server"] == server.url
    assert not any("flannel" in a["path"] for a in server.applied)


def test_cilium_already_installed_is_not_reinstalled(output, tmp_path, monkeypatch):
    record = fake_cilium(tmp_path)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:{os.environ['PATH']}")
    cfg = config(tmp_path, "cilium: {wireguard: false}\n", cni="cilium")
    with api(output, tmp_path, {n: 0.0 for n in NAMES}) as server:
        server.objects["/apis/apps/v1/namespaces/kube-system/daemonsets/cilium"] = {"kind": "DaemonSet"}
        result = run_wait(output, server, make_templates(tmp_path / "t"), config=cfg)
    assert result.exit_code == 0 and not record.exists()


def test_missing_cilium_cli_exits_5(output, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    cfg = config(tmp_path, "", cni="cilium")
    with api(output, tmp_path, {n: 0.0 for n in NAMES}) as server:
        result = run_wait(output, server, make_templates(tmp_path / "t"), config=cfg)
    assert result.exit_code == 5 and "the cilium CLI is not on PATH" in result.output


def test_cni_none_applies_only_the_users_addons(output, tmp_path):
    cfg = config(tmp_path, "reboots: none\n", cni="none")
    with api(output, tmp_path, {n: 0.0 for n in NAMES}) as server:
        result = run_wait(output, server, make_templates(tmp_path / "t", {"10-mine.yaml": ADDON}), config=cfg)
    assert result.exit_code == 0
    assert [a["path"] for a in server.applied] == [
        "/api/v1/namespaces/kube-flannel", "/apis/apps/v1/namespaces/kube-flannel/daemonsets/kube-flannel-ds"]


def test_rerunning_applies_nothing_new(output, tmp_path):
    templates = make_templates(tmp_path / "t", {"10-mine.yaml": ADDON})
    with api(output, tmp_path, {n: 0.0 for n in NAMES}) as server:
        assert run_wait(output, server, templates).exit_code == 0
        created, objects = server.created, json.dumps(server.objects, sort_keys=True)
        assert created == 6 + len(KURED_OBJECTS)
        assert run_wait(output, server, templates).exit_code == 0
        assert server.created == created and json.dumps(server.objects, sort_keys=True) == objects


def test_user_addons_in_lexical_order_after_the_cni(output, tmp_path):
    cm = "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {n}, namespace: default}}\n"
    templates = make_templates(tmp_path / "t", {"20-b.yaml": cm.format(n="b"), "10-a.yaml": cm.format(n="a"),
                                                 "30-c.yaml": cm.format(n="c")})
    with api(output, tmp_path, {n: 0.0 for n in NAMES}) as server:
        assert run_wait(output, server, templates).exit_code == 0
    names = [a["path"].rsplit("/", 1)[1] for a in server.applied if not a["path"].endswith("/kured")]
    assert names[-3:] == ["a", "b", "c"] and names[:1] == ["kube-flannel"]


KURED_OBJECTS = ["/api/v1/namespaces/kube-system/serviceaccounts/kured",
                 "/apis/rbac.authorization.k8s.io/v1/clusterroles/kured",
                 "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/kured",
                 "/apis/rbac.authorization.k8s.io/v1/namespaces/kube-system/roles/kured",
                 "/apis/rbac.authorization.k8s.io/v1/namespaces/kube-system/rolebindings/kured",
                 "/apis/apps/v1/namespaces/kube-system/daemonsets/kured"]


def test_kured_is_a_built_in_addon_unless_reboots_is_none(output, tmp_path):
    with api(output, tmp_path, {n: 0.0 for n in NAMES}) as server:
        assert run_wait(output, server, make_templates(tmp_path / "t")).exit_code == 0
        assert [a["path"] for a in server.applied if a["path"].endswith("/kured")] == KURED_OBJECTS
        daemonset = server.objects[KURED_OBJECTS[-1]]
    args = daemonset["spec"]["template"]["spec"]["containers"][0]["command"]
    assert "--concurrency=1" in args and "--reboot-sentinel=/sentinel/reboot-required" in args
    off = config(tmp_path, "reboots: none\n")
    with api(output, tmp_path, {n: 0.0 for n in NAMES}) as server:
        assert run_wait(output, server, make_templates(tmp_path / "t2"), config=off).exit_code == 0
        assert not [a for a in server.applied if "kured" in a["path"]]


def gitops_templates(tmp_path: Path) -> Path:
    templates = make_templates(tmp_path / "t")
    (templates / "gitops").mkdir()
    (templates / "gitops" / "argo-cd.yaml").write_text((FIXTURES / "argo-cd.yaml").read_text())
    return templates


GITOPS = "gitops: {repo: 'https://git.example.com/infra.git', revision: main, path: clusters/lab}\n"


def test_gitops_installs_argo_cd_then_the_root_app(output, tmp_path):
    with api(output, tmp_path, {n: 0.0 for n in NAMES}) as server:
        result = run_wait(output, server, gitops_templates(tmp_path), config=config(tmp_path, GITOPS))
    assert result.exit_code == 0, result.output
    paths = [a["path"] for a in server.applied]
    gitops = paths[paths.index("/api/v1/namespaces/argocd"):]
    assert gitops == ["/api/v1/namespaces/argocd",
                      "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/applications.argoproj.io",
                      "/api/v1/namespaces/argocd/serviceaccounts/argocd-server",
                      "/apis/apps/v1/namespaces/argocd/deployments/argocd-repo-server",
                      "/apis/apps/v1/namespaces/argocd/deployments/argocd-server",
                      "/apis/argoproj.io/v1alpha1/namespaces/argocd/applications/root"]
    root = server.objects[gitops[-1]]["spec"]
    assert root["source"] == {"repoURL": "https://git.example.com/infra.git", "targetRevision": "main",
                              "path": "clusters/lab"}
    events = [json.loads(line) for line in (output / "events.jsonl").read_text().splitlines()]
    assert any(e["kind"] == "addons" and e["message"].startswith("root Application: sync") for e in events)


def test_wait_gitops_blocks_until_synced(output, tmp_path):
    with api(output, tmp_path, {n: 0.0 for n in NAMES}, synced_after=None) as server:
        result = run_wait(output, server, gitops_templates(tmp_path), "--wait-gitops", "--nodes-timeout", "3",
                          config=config(tmp_path, GITOPS))
    assert result.exit_code == 5 and "the root Application is OutOfSync, not Synced" in result.output


def test_cni_none_does_not_wait_for_a_pod_network(output, tmp_path):
    nodes = {n: None for n in NAMES}  # registered, NotReady: "container runtime network not ready"
    with api(output, tmp_path, nodes) as server:
        result = run_wait(output, server, make_templates(tmp_path / "t"), config=config(tmp_path, "", cni="none"))
    assert result.exit_code == 0, result.output
    assert "NotReady until a pod network is installed: cni is none" in result.output
    with api(output, tmp_path, nodes) as server:  # with a CNI to install, NotReady is a failure
        result = run_wait(output, server, make_templates(tmp_path / "t"), "--nodes-timeout", "1")
    assert result.exit_code == 4
