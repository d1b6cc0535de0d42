"""`wait` with the unmodified kubernetes client against an API server stand-in over real TLS,
client certificates from the generated PKI."""

from __future__ import annotations

import base64
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from cryptography import x509
from typer.testing import CliRunner

from app.cli import app
from app import pki
from tests.apiserver import StandInAPIServer, serving_cert
from tests.conftest import EXAMPLE, REPO
from tests.integration.test_serve_process import wait_for

runner = CliRunner()
NAMES = ["cp-1", "cp-2", "cp-3", "worker-1", "worker-2"]
ADDON = """apiVersion: v1
kind: Namespace
metadata: {name: kube-flannel}
---
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: kube-flannel-ds, namespace: kube-flannel}
spec: {}
"""


FIXTURES = REPO / "tests" / "fixtures"


def make_templates(root: Path, addons: dict[str, str] | None = None) -> Path:
    """A --templates dir as a user (or the image) has it: the CNI manifest and add-ons."""
    (root / "cni").mkdir(parents=True, exist_ok=True)
    (root / "cni" / "flannel.yaml").write_text((FIXTURES / "kube-flannel.yml").read_text())
    (root / "addons").mkdir(exist_ok=True)
    for name, text in (addons or {}).items():
        (root / "addons" / name).write_text(text)
    return root


@pytest.fixture
def templates(tmp_path) -> Path:
    return make_templates(tmp_path / "templates", {"10-extra.yaml": ADDON})


def api(output: Path, tmp_path: Path, nodes: dict, ca: str = "ca", **kw) -> StandInAPIServer:
    creds = output / "credentials"
    if ca == "ca":
        crt, key = serving_cert(creds / "ca.crt", creds / "ca.key", tmp_path)
    else:  # a server whose certificate comes from some other CA
        other = pki.create_secrets(__import__("datetime").datetime.now(__import__("datetime").timezone.utc))
        (tmp_path / "other-ca.crt").write_bytes(other.ca_crt)
        (tmp_path / "other-ca.key").write_bytes(other.ca_key)
        crt, key = serving_cert(tmp_path / "other-ca.crt", tmp_path / "other-ca.key", tmp_path)
    return StandInAPIServer(client_ca=creds / "ca.crt", cert=crt, key=key, nodes=nodes, **kw)


def run_wait(output: Path, server: StandInAPIServer, templates: Path | None = None, *extra: str,
             config: Path = EXAMPLE):
    templates = templates or make_templates(output.parent / "default-templates")
    args = ["--config", str(config), "--output", str(output), "--templates", str(templates),
            "wait", "--server", server.url, "--poll", "0.2", "--api-timeout", "20", "--nodes-timeout", "20", *extra]
    return runner.invoke(app, args)


def test_happy_path_writes_the_kubeconfig_after_every_node_is_ready(output, tmp_path, templates):
    with api(output, tmp_path, {n: 1.0 for n in NAMES}) as server:
        result = run_wait(output, server, templates)
    assert result.exit_code == 0, result.output
    kubeconfig = output / "kubeconfig"
    # The user's kubeconfig is revocable (kubeadm:cluster-admins), signed by the cluster CA; the
    # appliance's own system:masters credential never leaves credentials/.
    assert client_groups(kubeconfig) == ["kubeadm:cluster-admins"]
    assert client_groups(output / "credentials" / "admin.kubeconfig") == ["system:masters"]
    assert user_cert(kubeconfig).issuer == x509.load_pem_x509_certificate(
        (output / "credentials" / "ca.crt").read_bytes()).subject
    assert kubeconfig.stat().st_mode & 0o777 == 0o600
    assert "server: https://api.lab.example.com:6443" in kubeconfig.read_text()
    flannel = ["/api/v1/namespaces/kube-flannel", "/api/v1/namespaces/kube-flannel/serviceaccounts/flannel",
               "/apis/rbac.authorization.k8s.io/v1/clusterroles/flannel",
               "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/flannel",
               "/api/v1/namespaces/kube-flannel/configmaps/kube-flannel-cfg",
               "/apis/apps/v1/namespaces/kube-flannel/daemonsets/kube-flannel-ds"]
    # The CNI first, then the user's add-ons in file order (10-extra.yaml re-applies two of them).
    assert [a["path"] for a in server.applied] == flannel + [flannel[0], flannel[-1]]
    net = json.loads(server.objects[flannel[4]]["data"]["net-conf.json"])
    assert net == {"Network": "10.244.0.0/16", "EnableNFTables": False, "Backend": {"Type": "vxlan"}}
    assert {a["fieldManager"] for a in server.applied} == {"bootstrap-node"}
    events = [json.loads(line) for line in (output / "events.jsonl").read_text().splitlines()]
    assert sorted(e["node"] for e in events if e["kind"] == "ready") == sorted(NAMES)
    assert "all 5 nodes Ready" in result.output


def test_api_late_and_transient_errors_are_retried(output, tmp_path, templates):
    with api(output, tmp_path, {n: 0.0 for n in NAMES}, api_after=2.0, flaky_applies=2) as server:
        started = time.monotonic()
        result = run_wait(output, server, templates)
    assert result.exit_code == 0, result.output
    assert time.monotonic() - started >= 2.0
    assert len(server.applied) == 8 and "Traceback" not in result.output


def test_a_node_never_ready_exits_4_naming_it_with_its_last_phase(output, tmp_path):
    (output / "events.jsonl").write_text(
        json.dumps({"kind": "kubeadm", "mac": "52:54:00:00:00:22", "node": "worker-2", "ts": "2026-01-01T00:00:00Z"})
        + "\n" + json.dumps({"kind": "failed", "mac": "52:54:00:00:00:22", "message": "kubeadm join: timeout",
                             "ts": "2026-01-01T00:00:01Z"}) + "\n")
    nodes = {n: 0.0 for n in NAMES} | {"worker-2": None, "worker-1": -1}
    with api(output, tmp_path, nodes) as server:
        result = run_wait(output, server, None, "--nodes-timeout", "2")
    assert result.exit_code == 4
    assert "worker-2 (52:54:00:00:00:22): last phase kubeadm; NotReady: container runtime network not ready" \
           in result.output and "last error: kubeadm join: timeout" in result.output
    assert "worker-1 (52:54:00:00:00:21): last phase never seen; not registered with the API server" in result.output
    assert "cp-1" not in result.output.split("not Ready")[1]
    assert not (output / "kubeconfig").exists()


def test_a_server_with_another_ca_is_refused_clearly(output, tmp_path):
    with api(output, tmp_path, {n: 0.0 for n in NAMES}, ca="other") as server:
        started = time.monotonic()
        result = run_wait(output, server)
    assert result.exit_code == 3
    assert "certificate is not signed by this cluster's CA" in result.output
    assert time.monotonic() - started < 10  # refused at once, not after the whole timeout
    assert not (output / "kubeconfig").exists()


def test_api_never_answering_exits_3(output, tmp_path):
    result = runner.invoke(app, ["--config", str(EXAMPLE), "--output", str(output), "wait", "--server",
                                 "https://127.0.0.1:9", "--poll", "0.2", "--api-timeout", "1"])
    assert result.exit_code == 3 and "did not answer within 1s on https://127.0.0.1:9" in result.output


def test_bad_addon_file_exits_5_naming_it(output, tmp_path, templates):
    (templates / "addons" / "20-broken.yaml").write_text("kind: ConfigMap\nmetadata: {name: x}\n")
    with api(output, tmp_path, {n: 0.0 for n in NAMES}) as server:
        result = run_wait(output, server, templates)
    assert result.exit_code == 5
    assert "20-broken.yaml: object 1 needs apiVersion, kind and metadata.name" in result.output


def test_unknown_kind_exits_5_naming_file_and_object(output, tmp_path, templates):
    (templates / "addons" / "30-crd.yaml").write_text("apiVersion: v1\nkind: Gizmo\nmetadata: {name: g}\n")
    with api(output, tmp_path, {n: 0.0 for n in NAMES}) as server:
        result = run_wait(output, server, templates)
    assert result.exit_code == 5 and "no kind Gizmo in v1" in result.output


def test_ctrl_c_exits_130_promptly(output, tmp_path):
    with api(output, tmp_path, {n: None for n in NAMES}) as server:
        templates = make_templates(tmp_path / "templates")
        proc = subprocess.Popen([sys.executable, "-m", "app", "--config", str(EXAMPLE), "--output", str(output),
                                 "--templates", str(templates), "wait", "--server", server.url, "--poll", "0.2"],
                                cwd=REPO,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        events = output / "events.jsonl"
        wait_for(lambda: events.exists() and "api-ready" in events.read_text(), what="wait to reach the API")
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=10)
    assert code == 130 and "interrupted" in proc.stderr.read()


def user_cert(kubeconfig: Path) -> x509.Certificate:
    doc = yaml.safe_load(kubeconfig.read_text())
    return x509.load_pem_x509_certificate(base64.b64decode(doc["users"][0]["user"]["client-certificate-data"]))


def client_groups(kubeconfig: Path) -> list[str]:
    """The certificate's organizations: the groups the API server puts the user in."""
    return [a.value for a in user_cert(kubeconfig).subject.get_attributes_for_oid(x509.NameOID.ORGANIZATION_NAME)]
