"""`bootstrap-node images` against OCI layouts on disk; the warning `validate` and `generate` give when a
layout exists but lacks what the cluster needs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from app.cli import app
from app.render.images import KUBE_VIP_IMAGE, kubeadm_images, manifest_images
from tests.support.oci import image, multi_arch, write_index
from tests.support.paths import EXAMPLE, REPO

FLANNEL = REPO / "tests" / "fixtures" / "kube-flannel.yml"
runner = CliRunner()


@pytest.fixture()
def builtin(tmp_path, monkeypatch) -> Path:
    """Built-in templates with the flannel manifest baked, as in the image."""
    root = tmp_path / "builtin"
    shutil.copytree(REPO / "app" / "templates", root)
    (root / "cni").mkdir()
    (root / "cni" / "flannel.yaml").write_bytes(FLANNEL.read_bytes())
    monkeypatch.setenv("BOOTSTRAP_BUILTIN_TEMPLATES", str(root))
    return root


KURED = REPO / "app" / "templates" / "addons" / "kured.yaml"  # the built-in add-on (reboots: kured)


def needed() -> list[str]:
    return [*kubeadm_images("v1.36.3"), KUBE_VIP_IMAGE, *manifest_images(FLANNEL), *manifest_images(KURED)]


def make_layout(root: Path, refs: list[str]) -> Path:
    write_index(root, {ref: image(root, [ref.encode()]) for ref in refs})
    return root


def run(*args: str, config: Path = EXAMPLE, templates: str = "/nonexistent"):
    return runner.invoke(app, ["--config", str(config), "--templates", templates, *args])


def test_everything_present_exits_0(builtin, tmp_path):
    layout = make_layout(tmp_path / "layout", needed())
    result = run("images", "--images", str(layout))
    assert result.exit_code == 0, result.output
    assert "MISSING" not in result.output
    assert f"{len(needed())} images needed, 0 missing from {layout}" in result.output
    for ref in needed():
        assert f"present  {ref}" in result.output


def test_one_missing_exits_1_and_names_it(builtin, tmp_path):
    gone = "ghcr.io/flannel-io/flannel:v0.26.4"
    layout = make_layout(tmp_path / "layout", [r for r in needed() if r != gone])
    result = run("images", "--images", str(layout))
    assert result.exit_code == 1
    assert f"MISSING  {gone}" in result.output and "(cni/flannel.yaml)" in result.output
    assert f"skopeo copy docker://REF oci:{layout}:REF" in result.output


def test_json_report(builtin, tmp_path):
    layout = make_layout(tmp_path / "layout", needed()[1:])
    data = json.loads(run("images", "--images", str(layout), "--format", "json").output)
    assert data["missing"] == 1 and data["layout"] == str(layout)
    assert [e["ref"] for e in data["images"]] == needed()
    assert [e["ref"] for e in data["images"] if not e["present"]] == [needed()[0]]
    assert data["images"][0]["needed_by"] == "kubeadm"


def test_github_annotations(builtin, tmp_path):
    gone = "ghcr.io/flannel-io/flannel:v0.26.4"
    layout = make_layout(tmp_path / "layout", [r for r in needed() if r != gone])
    result = run("images", "--images", str(layout), "--format", "github")
    assert result.exit_code == 1
    errors = [line for line in result.output.splitlines() if line.startswith("::error ")]
    assert errors == [f"::error file={EXAMPLE},line=1,col=1::image {gone} (cni/flannel.yaml) is not in {layout}; "
                      f"add one with: skopeo copy docker://REF oci:{layout}:REF"]
    assert all(line.startswith(("::error ", "::warning ")) for line in result.output.splitlines())


def test_a_multi_arch_index_counts_and_a_wrong_registry_does_not(builtin, tmp_path):
    root = tmp_path / "layout"
    named = {ref: image(root, [ref.encode()]) for ref in needed()[1:]}
    named[needed()[0]] = multi_arch(root, {"amd64": [b"a"], "arm64": [b"b"]})
    named["docker.io/library/kube-apiserver:v1.36.3"] = image(root, [b"wrong registry"])
    write_index(root, named)
    assert run("images", "--images", str(root)).exit_code == 0
    del named[needed()[0]]
    write_index(root, named)
    result = run("images", "--images", str(root))
    assert result.exit_code == 1 and f"MISSING  {needed()[0]}" in result.output


def test_no_layout_everything_missing(builtin, tmp_path):
    result = run("images", "--images", str(tmp_path / "nothing"))
    assert result.exit_code == 1
    assert "is not an OCI image layout (no index.json)" in result.output


def test_unsupported_version_is_a_clear_message(builtin, tmp_path):
    config = tmp_path / "cluster.yaml"
    config.write_text(EXAMPLE.read_text().replace("k8s_version: v1.36.3", "k8s_version: v1.36.99"))
    result = run("images", "--images", str(tmp_path), config=config)
    assert result.exit_code == 1
    # cluster.yaml itself is refused now (validate's rule), at the field, naming the listed version.
    assert "cluster.k8s_version: v1.36.99 has no kubeadm image list" in result.output
    assert "Traceback" not in result.output


def test_cilium_and_missing_gitops_manifest_are_noted(builtin, tmp_path):
    config = tmp_path / "cluster.yaml"
    config.write_text(EXAMPLE.read_text().replace("cni: flannel", "cni: cilium")
                      + "gitops: {repo: https://git.example.com/infra.git}\n")
    result = run("images", "--images", str(tmp_path), config=config)
    assert "note: cni: cilium: the cilium CLI chooses its images" in result.output
    assert "note: gitops/argo-cd.yaml is not in the templates: its images are not known" in result.output


def test_addon_images_are_listed(builtin, tmp_path):
    overrides = tmp_path / "templates"
    (overrides / "addons").mkdir(parents=True)
    (overrides / "addons" / "metrics.yaml").write_text(
        "kind: Deployment\nspec: {template: {spec: {containers: [{name: m, image: 'public.ecr.aws/x/metrics:1'}]}}}\n")
    result = run("images", "--images", str(tmp_path), templates=str(overrides))
    assert "MISSING  public.ecr.aws/x/metrics:1" in result.output and "(addons/metrics.yaml)" in result.output
    assert "note: public.ecr.aws is not mirrored" in result.output


def test_validate_warns_only_when_a_layout_exists(builtin, tmp_path):
    layout = make_layout(tmp_path / "layout", needed()[:-1])
    result = run("validate", "--images", str(layout))
    assert result.exit_code == 0
    assert f"warning: cluster.k8s_version: 1 of {len(needed())} images this cluster needs are not in {layout}" \
        in result.output
    assert run("validate", "--images", str(layout), "--strict").exit_code == 1
    quiet = run("validate", "--images", str(tmp_path / "no-such-dir"))
    assert quiet.exit_code == 0 and "images" not in quiet.output
    complete = make_layout(tmp_path / "complete", needed())
    assert "warning" not in run("validate", "--images", str(complete)).output


def test_generate_warns_before_any_node_boots(builtin, tmp_path):
    layout = make_layout(tmp_path / "layout", needed()[1:])
    result = run("--output", str(tmp_path / "out"), "generate", "--assets", str(tmp_path / "none"),
                 "--images", str(layout))
    assert result.exit_code == 0, result.output
    assert f"warning: 1 of {len(needed())} images this cluster needs are not in {layout} ({needed()[0]})" \
        in result.output
