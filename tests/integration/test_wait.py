"""`wait` with the unmodified kubernetes client against an API server stand-in over real TLS,
client certificates from the generated PKI."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cryptography import x509
from typer.testing import CliRunner

from app.cli import app
from tests.support.gate import ADDON, NAMES, api, client_groups, make_templates, run_wait, user_cert
from tests.support.paths import EXAMPLE, REPO
from tests.support.processes import wait_for

runner = CliRunner()
@pytest.fixture
def templates(tmp_path) -> Path:
    return make_templates(tmp_path / "templates", {"10-extra.yaml": ADDON})


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
    # The CNI first, then the add-ons in file order (10-extra.yaml re-applies two of flannel's objects;
    # kured.yaml, built in, has six).
    applied = [a["path"] for a in server.applied]
    assert applied[:8] == flannel + [flannel[0], flannel[-1]] and len(applied) == 14
    assert all(path.endswith("/kured") for path in applied[8:])
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
    assert len(server.applied) == 8 + 6 and "Traceback" not in result.output  # with kured's six objects


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




def test_alerts_show_in_the_gate_table(output, tmp_path):
    """Refused secret requests reach `wait`'s table (and its one-line-per-change log)."""
    from app.events import Event, append_event
    append_event(output, Event("alert", mac="52:54:00:00:00:21", source="http",
                               detail={"reason": "missing or wrong install credential", "remote": "10.0.0.66"}))
    with api(output, tmp_path, {n: 0.0 for n in NAMES}) as server:
        result = run_wait(output, server)
    assert result.exit_code == 0, result.output
    assert "(alerts): phase 1 refused" in result.output and "missing or wrong install credential" in result.output
