"""Every Ignition config the project renders passes the real `ignition-validate` (the validator of
the Ignition release Flatcar ships): install and final stage, every role, the example cluster and
the lab's, and the variants that change what the templates emit (sysexts with sysupdate, arm64,
Cilium, GitOps, a single controller, a cluster that already exists, users' template overrides),
both as rendered and as served with the node's credential added. Warnings count as failures."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from app import pki
from app.cluster import load_cluster
from app.cluster.sysexts import node_sysexts
from app.render.templates import Templates
from app.render.tree import Appliance, render_tree
from app.serve.boot.render import with_credential
from tests.support.paths import EXAMPLE, REPO
from tests.support.real_programs import ignition_dir, validate

LAB = REPO / "scripts" / "lab" / "cluster.yaml"
SYSEXTS = """
sysexts:
  - {name: containerd, version: "2.0.4", roles: [worker]}
  - {name: docker, version: "27.3.1", nodes: [cp-1]}
sysupdate: true
"""
# A user's override of one built-in template, the way the built-in controller template extends the
# common one: extra files (with a mode, with owners) in the final config of workers.
WORKER_OVERRIDE = """{% extends "ignition/_common.yaml.tmpl" %}
{% block extra_files %}
    - path: /opt/site/release
      mode: 0644
      contents:
        inline: "rack r1"
    - path: /opt/site/hook.sh
      mode: 0750
      user: {name: core}
      group: {name: core}
      contents:
        inline: |
          #!/bin/sh
          echo site hook for {{ NODE_NAME }}
{%- endblock %}
"""


def _example(*edits: tuple[str, str], extra: str = "") -> str:
    text = EXAMPLE.read_text().replace(", arch: amd64}", "}")  # arch given once, by the edits below
    for old, new in edits:
        assert old in text, old
        text = text.replace(old, new)
    return text + extra


VARIANTS = {
    "example": lambda: EXAMPLE.read_text(),
    "lab": lambda: LAB.read_text(),
    "sysexts-sysupdate": lambda: _example(extra=SYSEXTS),
    "arm64-cilium-gitops": lambda: _example(
        ("name: worker-2,", "name: worker-2, arch: arm64,"),
        ("cni: flannel", "cni: cilium\ncilium: {wireguard: true, kube_proxy_replacement: true}"),
        extra="gitops: {repo: https://git.example.com/infra.git, revision: main, path: clusters/lab}\n"),
    "single-controller": lambda: "\n".join(
        line for line in _example(("control_plane_vip: 10.0.0.10", "")).splitlines()
        if not any(f"name: {n}," in line for n in ("cp-2", "cp-3", "worker-1", "worker-2"))) + "\n",
}


@pytest.fixture(scope="module")
def validator() -> Path:
    return ignition_dir() / "ignition-validate"


@pytest.fixture(scope="module")
def secrets() -> pki.Secrets:
    return pki.create_secrets(dt.datetime(2025, 1, 1, tzinfo=dt.UTC))


def _custom_templates(root: Path) -> Path:
    (root / "ignition").mkdir(parents=True)
    (root / "ignition/worker.yaml.tmpl").write_text(WORKER_OVERRIDE)
    return root


def _configs(tmp_path: Path, secrets, variant: str, **appliance) -> dict[str, bytes]:
    config_path = tmp_path / "cluster.yaml"
    config_path.write_text(VARIANTS[variant]())
    cluster = load_cluster(config_path)[0]
    # Every extension's image "exists", so each file entry carries its sha512 as it would on a real
    # appliance with the bakery images fetched.
    hashes = {use.file: "sha512-" + "ab" * 64 for node in cluster.nodes for use in node_sysexts(cluster, node)}
    templates = Templates(appliance.pop("templates", None))
    files = render_tree(cluster, secrets, templates,
                        Appliance(output_dir=Path("/srv/out"), sysext_hashes=hashes, **appliance))
    configs = {path: data for path, (data, _) in files.items() if path.endswith(".ign")}
    assert configs, variant
    return configs


def _assert_all_clean(validator: Path, configs: dict[str, bytes], scratch: Path) -> None:
    failures = {}
    for path, data in sorted(configs.items()):
        for form, served in (("rendered", data), ("served", with_credential(data, "k" * 43))):
            verdict = validate(validator, served, scratch)
            if not verdict.clean:
                failures[f"{path} ({form})"] = (verdict.returncode, verdict.lines)
    assert failures == {}


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_every_config_passes_real_ignition_validate(variant, validator, secrets, tmp_path):
    configs = _configs(tmp_path, secrets, variant)
    names = {Path(p).stem for p in configs}
    assert {n for n in names if n.endswith("-install")}, "install-stage configs rendered"
    _assert_all_clean(validator, configs, tmp_path)


def test_a_cluster_that_exists_renders_clean_joins(validator, secrets, tmp_path):
    configs = _configs(tmp_path, secrets, "example", cluster_exists=True,
                       join_tokens={"cp-1": "abcdef.0123456789abcdef"})
    _assert_all_clean(validator, configs, tmp_path)


def test_users_template_override_renders_clean(validator, secrets, tmp_path):
    configs = _configs(tmp_path, secrets, "example", templates=_custom_templates(tmp_path / "templates"))
    worker = json.loads(configs["matchbox/ignition/worker-1.ign"])
    assert "/opt/site/release" in {f["path"] for f in worker["storage"]["files"]}  # the override applied
    _assert_all_clean(validator, configs, tmp_path)


def test_validator_reports_what_a_broken_config_gets_wrong(validator, tmp_path):
    """The check above can fail: the real validator rejects a relative path and warns on an enabled
    unit without an [Install] section, and `clean` sees both."""
    bad = {"ignition": {"version": "3.4.0"}, "storage": {"files": [{"path": "etc/relative"}]}}
    assert not validate(validator, bad, tmp_path).clean
    warns = {"ignition": {"version": "3.4.0"}, "systemd": {"units": [
        {"name": "x.service", "enabled": True, "contents": "[Service]\nExecStart=/bin/true\n"}]}}
    verdict = validate(validator, warns, tmp_path)
    assert verdict.returncode == 0 and not verdict.clean and any("warning" in l for l in verdict.lines)
