"""Every configuration in examples/ is valid and generates, and says what its name promises."""

import json
import os

import pytest

from app.cluster import load_cluster
from tests.support.paths import REPO
from tests.support.processes import cli

EXAMPLES = sorted((REPO / "examples").glob("*.yaml"))
BMC_ENV = {"BMC_PASSWORD": "example", "IPMI_PASSWORD": "example"}


def test_the_promised_examples_exist():
    assert {p.stem for p in EXAMPLES} >= {"single-node", "wol-homelab", "ha-redfish-ipmi", "air-gapped",
                                          "gpu-sysext"}


@pytest.fixture(params=EXAMPLES, ids=lambda p: p.stem)
def generated(request, tmp_path, monkeypatch):
    example = request.param
    for key, value in BMC_ENV.items():
        monkeypatch.setenv(key, value)
    env = {**os.environ, **BMC_ENV}
    checked = cli("--config", str(example), "validate", env=env)
    assert checked.returncode == 0, checked.stderr
    assert "valid (cluster" in checked.stdout
    out = tmp_path / "out"
    made = cli("--config", str(example), "--output", str(out), "generate", "--assets", str(tmp_path / "assets"),
               "--images", str(tmp_path / "images"), env=env)
    assert made.returncode == 0, made.stderr
    return example.stem, out


def final_config(out, node: str) -> dict:
    return json.loads((out / "matchbox" / "ignition" / f"{node}.ign").read_text())


def test_each_example_generates_every_node(generated):
    name, out = generated
    cluster, _ = load_cluster(REPO / "examples" / f"{name}.yaml")
    for node in cluster.nodes:
        assert final_config(out, node.name)["ignition"]["version"].startswith("3.")
        assert (out / "matchbox" / "groups" / f"{node.name}-install.json").is_file()


def test_gpu_sysexts_go_to_the_gpu_nodes_only(tmp_path):
    out = tmp_path / "out"
    made = cli("--config", str(REPO / "examples" / "gpu-sysext.yaml"), "--output", str(out), "generate",
               "--assets", str(tmp_path / "assets"))
    assert made.returncode == 0, made.stderr
    paths = lambda node: {f["path"] for f in final_config(out, node)["storage"].get("files", [])}  # noqa: E731
    assert any("nvidia-runtime" in p for p in paths("gpu-1"))
    assert not any("nvidia-runtime" in p for p in paths("cpu-1"))
