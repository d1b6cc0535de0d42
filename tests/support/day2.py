"""Day-2 helpers shared by tests/integration/test_day2.py (no API server) and
tests/k8s/test_day2_api_real.py (a real one): cluster.yaml variants, `generate`, the event log of an
installed cluster, the cluster record, and reading what generate rendered."""

from __future__ import annotations

import base64
import datetime as dt
import json
from pathlib import Path

import yaml
from typer.testing import CliRunner

from app import pki
from app.cli import app
from app.cluster_record import record_cluster
from app.events import Event, append_event
from tests.support.paths import EXAMPLE
from tests.unit.test_generate import decode

runner = CliRunner()
EXAMPLE_NODES = yaml.safe_load(EXAMPLE.read_text())["nodes"]
TOKEN_FIELDS = {"token-id", "token-secret", "expiration", "description", "usage-bootstrap-authentication",
                "usage-bootstrap-signing", "auth-extra-groups"}
CA_FILES = {"ca.crt": "ca.crt", "ca.key": "ca.key", "sa.pub": "sa.pub", "sa.key": "sa.key",
            "front-proxy-ca.crt": "front-proxy-ca.crt", "front-proxy-ca.key": "front-proxy-ca.key",
            "etcd-ca.crt": "etcd/ca.crt", "etcd-ca.key": "etcd/ca.key"}


def config_with(tmp_path: Path, names: list[str], extra: list[dict] = ()) -> Path:
    """cluster.yaml.example with only the named nodes (in its order), plus `extra` ones."""
    data = yaml.safe_load(EXAMPLE.read_text())
    data["nodes"] = [n for n in EXAMPLE_NODES if n["name"] in names] + list(extra)
    path = tmp_path / f"cluster-{len(data['nodes'])}-{'-'.join(n['name'] for n in data['nodes'])}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


WORKER_3 = {"name": "worker-3", "role": "worker", "mac": "52:54:00:00:00:23", "ip": "10.0.0.23",
            "install_disk": "/dev/disk/by-id/wwn-0x5000c500a0b1c223"}


def generate(output: Path, config: Path, *extra: str):
    result = runner.invoke(app, ["--config", str(config), "--output", str(output), "--templates", "/nonexistent",
                                 "generate", "--assets", "/nonexistent", "--ipxe-dir", "/nonexistent", *extra])
    assert result.exit_code == 0, result.output
    return result


def installed(output: Path, config: Path) -> None:
    """The event log of a cluster whose nodes all installed (as their callbacks report it)."""
    for node in yaml.safe_load(config.read_text())["nodes"]:
        append_event(output, Event("installed", mac=node["mac"], node=node["name"], source="node"))


def exists(output: Path) -> None:
    """What `wait` records on first seeing the API (tested through `wait` below)."""
    ca_pin = pki.ca_pin((output / "credentials" / "ca.crt").read_bytes())
    record_cluster(output, ca_pin, "https://10.0.0.10:6443", dt.datetime.now(dt.UTC))


def running_cluster(tmp_path: Path, installed_too: bool = False) -> tuple[Path, Path]:
    """cp-1, worker-1 and worker-2 generated, recorded as an existing cluster, and (`installed_too`)
    every node installed: the output dir and its cluster.yaml."""
    three = config_with(tmp_path, ["cp-1", "worker-1", "worker-2"])
    output = tmp_path / "output"
    generate(output, three)
    exists(output)
    if installed_too:
        installed(output, three)
    return output, three


def final(output: Path, node: str) -> dict[str, bytes]:
    config = json.loads((output / "matchbox" / "ignition" / f"{node}.ign").read_text())
    return {f["path"]: decode(f["contents"]) for f in config["storage"]["files"]
            if f.get("contents", {}).get("source", "").startswith("data:")}


def kubeadm(output: Path, node: str) -> list[dict]:
    return list(yaml.safe_load_all(final(output, node)["/etc/kubernetes/kubeadm.yaml"]))


def tree(output: Path) -> dict[str, bytes]:
    """The visible tree (through generate's links), without the event log."""
    found = {}
    for top in ("credentials", "matchbox", "tftp", "dnsmasq.conf"):
        for path in [output / top] if (output / top).is_file() else (output / top).rglob("*"):
            for sub in [path] if not path.is_dir() else []:
                found[str(sub.relative_to(output))] = sub.read_bytes()
    return found


def secret_data(secret: dict) -> dict[str, bytes]:
    return {k: base64.b64decode(v) for k, v in secret["data"].items()}
