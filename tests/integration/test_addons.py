"""The GitOps hand-off against the TLS API-server stand-in: no Argo CD controller runs here, so an
Application that syncs (or never does) is the stand-in's. The CNI choice, user add-ons, kured and
idempotence are judged by a real API server in tests/k8s/test_gate_real.py."""

from __future__ import annotations

import json
from pathlib import Path

from tests.support.gate import FIXTURES, NAMES, api, make_templates, run_wait
from tests.support.paths import EXAMPLE


def config(tmp_path: Path, extra: str, cni: str = "flannel") -> Path:
    path = tmp_path / "cluster.yaml"
    path.write_text(EXAMPLE.read_text().replace("cni: flannel", f"cni: {cni}") + extra)
    return path


def gitops_templates(tmp_path: Path) -> Path:
    templates = make_templates(tmp_path / "t")
    (templates / "gitops").mkdir()
    (templates / "gitops" / "argo-cd.yaml").write_text((FIXTURES / "argo-cd.yaml").read_text())
    return templates


GITOPS = "gitops: {repo: 'https://git.example.com/infra.git', revision: main, path: clusters/lab}\n"


def test_gitops_installs_argo_cd_then_the_root_app(output, tmp_path):
    with api(output, tmp_path, NAMES) as server:
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
    with api(output, tmp_path, NAMES, synced_after=None) as server:
        result = run_wait(output, server, gitops_templates(tmp_path), "--wait-gitops", "--nodes-timeout", "3",
                          config=config(tmp_path, GITOPS))
    assert result.exit_code == 5 and "the root Application is OutOfSync, not Synced" in result.output
