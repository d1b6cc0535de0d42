"""`wait`'s health gate against the real control plane (tests/support/control_plane.py): the user's
kubeconfig after every node is Ready, the CNI and add-ons applied in order (as the real server's
audit log records the requests), a re-run that changes nothing, and the ways it ends without Ready
nodes. Nodes are API objects whose Ready condition the test sets, as kubelets would report it.
(`init`'s gate, which runs the same code beside the server: test_init_real.py.)"""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from cryptography import x509

from app import pki
from app.events import Event, append_event
from app.wait import kube
from tests.support.gate import NAMES, client_groups, make_templates, run_wait, user_cert
from tests.support.paths import EXAMPLE, REPO
from tests.support.processes import wait_for

TEAM = ("apiVersion: v1\nkind: Namespace\nmetadata: {name: team-b}\n---\n"
        "apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: deployer, namespace: team-b}\n")
FLANNEL = ["/api/v1/namespaces/kube-flannel", "/api/v1/namespaces/kube-flannel/serviceaccounts/flannel",
           "/apis/rbac.authorization.k8s.io/v1/clusterroles/flannel",
           "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/flannel",
           "/api/v1/namespaces/kube-flannel/configmaps/kube-flannel-cfg",
           "/apis/apps/v1/namespaces/kube-flannel/daemonsets/kube-flannel-ds"]
KURED = ["/api/v1/namespaces/kube-system/serviceaccounts/kured",
         "/apis/rbac.authorization.k8s.io/v1/clusterroles/kured",
         "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/kured",
         "/apis/rbac.authorization.k8s.io/v1/namespaces/kube-system/roles/kured",
         "/apis/rbac.authorization.k8s.io/v1/namespaces/kube-system/rolebindings/kured",
         "/apis/apps/v1/namespaces/kube-system/daemonsets/kured"]
TEAM_OBJECTS = ["/api/v1/namespaces/team-b", "/api/v1/namespaces/team-b/serviceaccounts/deployer"]


def config(tmp_path: Path, extra: str = "", cni: str = "flannel") -> Path:
    path = tmp_path / "cluster.yaml"
    path.write_text(EXAMPLE.read_text().replace("cni: flannel", f"cni: {cni}") + extra)
    return path


def admin(control_plane, output: Path):
    return kube.api_client(output / "credentials" / "admin.kubeconfig", control_plane.server)


def gate(control_plane, output: Path, templates: Path | None = None, *extra: str, config: Path = EXAMPLE):
    """`wait` on the real API server: its result and the paths it applied, in the server's order."""
    mark = control_plane.audit.mark()
    result = run_wait(output, control_plane.server, templates, *extra, config=config)
    return result, [r.path for r in control_plane.audit.since(mark) if r.applied]


def test_happy_path_writes_the_kubeconfig_after_every_node_is_ready(control_plane, output, tmp_path):
    control_plane.register({n: True for n in NAMES})
    result, applied = gate(control_plane, output, make_templates(tmp_path / "t", {"10-team.yaml": TEAM}))
    assert result.exit_code == 0, result.output
    assert "all 5 nodes Ready" in result.output
    kubeconfig = output / "kubeconfig"
    # The user's kubeconfig is revocable (kubeadm:cluster-admins), signed by the cluster CA; the
    # appliance's own system:masters credential never leaves credentials/.
    assert client_groups(kubeconfig) == [pki.CLUSTER_ADMINS]
    assert client_groups(output / "credentials" / "admin.kubeconfig") == ["system:masters"]
    assert user_cert(kubeconfig).issuer == x509.load_pem_x509_certificate(
        (output / "credentials" / "ca.crt").read_bytes()).subject
    assert kubeconfig.stat().st_mode & 0o777 == 0o600
    assert "server: https://api.lab.example.com:6443" in kubeconfig.read_text()
    # The CNI first, then the add-ons in file order, then kured (built in).
    assert applied == FLANNEL + TEAM_OBJECTS + KURED
    cm = kube.get(admin(control_plane, output), FLANNEL[4])
    assert json.loads(cm["data"]["net-conf.json"]) == {"Network": "10.244.0.0/16", "EnableNFTables": False,
                                                       "Backend": {"Type": "vxlan"}}
    events = [json.loads(line) for line in (output / "events.jsonl").read_text().splitlines()]
    assert sorted(e["node"] for e in events if e["kind"] == "ready") == sorted(NAMES)


def test_rerunning_changes_nothing(control_plane, output, tmp_path):
    """Server-side apply of what is there already changes no object."""
    control_plane.register({n: True for n in NAMES})
    templates = make_templates(tmp_path / "t", {"10-team.yaml": TEAM})
    result, applied = gate(control_plane, output, templates)
    assert result.exit_code == 0, result.output
    api = admin(control_plane, output)
    versions = {path: version(kube.get(api, path)) for path in applied}
    result, again = gate(control_plane, output, templates)
    assert result.exit_code == 0 and again == applied
    assert {path: version(kube.get(api, path)) for path in applied} == versions


def version(body: dict) -> str:
    """What changes when an apply changes an object: its generation where it has one (a DaemonSet's
    status, which its controller keeps writing, moves resourceVersion too), else resourceVersion."""
    meta = body["metadata"]
    return f"generation {meta['generation']}" if "generation" in meta else meta["resourceVersion"]


def test_user_addons_in_lexical_order_after_the_cni(control_plane, output, tmp_path):
    cm = "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: order-{n}, namespace: default}}\n"
    templates = make_templates(tmp_path / "t", {"20-b.yaml": cm.format(n="b"), "10-a.yaml": cm.format(n="a"),
                                                 "30-c.yaml": cm.format(n="c")})
    control_plane.register({n: True for n in NAMES})
    result, applied = gate(control_plane, output, templates)
    assert result.exit_code == 0, result.output
    assert applied == FLANNEL + [f"/api/v1/namespaces/default/configmaps/order-{n}" for n in "abc"] + KURED


def test_kured_is_a_built_in_addon_unless_reboots_is_none(control_plane, output, tmp_path):
    control_plane.register({n: True for n in NAMES})
    result, applied = gate(control_plane, output, make_templates(tmp_path / "t"))
    assert result.exit_code == 0 and applied[-len(KURED):] == KURED
    daemonset = kube.get(admin(control_plane, output), KURED[-1])
    args = daemonset["spec"]["template"]["spec"]["containers"][0]["command"]
    assert "--concurrency=1" in args and "--reboot-sentinel=/sentinel/reboot-required" in args
    result, applied = gate(control_plane, output, make_templates(tmp_path / "t2"), config=config(tmp_path, "reboots: none\n"))
    assert result.exit_code == 0 and applied == FLANNEL


def test_cni_none_applies_only_the_users_addons_and_waits_for_no_pod_network(control_plane, output, tmp_path):
    control_plane.register({n: False for n in NAMES})  # registered, NotReady: no pod network
    cfg = config(tmp_path, "reboots: none\n", cni="none")
    result, applied = gate(control_plane, output, make_templates(tmp_path / "t", {"10-team.yaml": TEAM}), config=cfg)
    assert result.exit_code == 0, result.output
    assert "NotReady until a pod network is installed: cni is none" in result.output
    assert applied == TEAM_OBJECTS
    result, _ = gate(control_plane, output, make_templates(tmp_path / "t2"), "--nodes-timeout", "1")
    assert result.exit_code == 4, result.output  # with a CNI to install, NotReady is a failure


def test_a_node_never_ready_exits_4_naming_it_with_its_last_phase(control_plane, output):
    (output / "events.jsonl").write_text(
        json.dumps({"kind": "kubeadm", "mac": "52:54:00:00:00:22", "node": "worker-2", "ts": "2026-01-01T00:00:00Z"})
        + "\n" + json.dumps({"kind": "failed", "mac": "52:54:00:00:00:22", "message": "kubeadm join: timeout",
                             "ts": "2026-01-01T00:00:01Z"}) + "\n")
    control_plane.register({n: True for n in NAMES} | {"worker-2": False, "worker-1": None})
    result, _ = gate(control_plane, output, None, "--nodes-timeout", "2")
    assert result.exit_code == 4, result.output
    assert "worker-2 (52:54:00:00:00:22): last phase kubeadm; NotReady: container runtime network not ready" \
           in result.output and "last error: kubeadm join: timeout" in result.output
    assert "worker-1 (52:54:00:00:00:21): last phase never seen; not registered with the API server" in result.output
    assert "cp-1" not in result.output.split("not Ready")[1]
    assert not (output / "kubeconfig").exists()


def test_bad_addon_file_exits_5_naming_it(control_plane, output, tmp_path):
    templates = make_templates(tmp_path / "t", {"20-broken.yaml": "kind: ConfigMap\nmetadata: {name: x}\n"})
    result, _ = gate(control_plane, output, templates)
    assert result.exit_code == 5
    assert "20-broken.yaml: object 1 needs apiVersion, kind and metadata.name" in result.output


def test_a_kind_the_real_server_does_not_serve_exits_5_naming_it(control_plane, output, tmp_path):
    templates = make_templates(tmp_path / "t", {"30-crd.yaml": "apiVersion: v1\nkind: Gizmo\nmetadata: {name: g}\n"})
    result, _ = gate(control_plane, output, templates)
    assert result.exit_code == 5 and "no kind Gizmo in v1" in result.output, result.output


def test_alerts_show_in_the_gate_table(control_plane, output):
    """Refused secret requests reach `wait`'s table (and its one-line-per-change log)."""
    append_event(output, Event("alert", mac="52:54:00:00:00:21", source="http",
                               detail={"reason": "missing or wrong install credential", "remote": "10.0.0.66"}))
    control_plane.register({n: True for n in NAMES})
    result, _ = gate(control_plane, output)
    assert result.exit_code == 0, result.output
    assert "(alerts): phase 1 refused" in result.output and "missing or wrong install credential" in result.output


def test_ctrl_c_exits_130_promptly(control_plane, output, tmp_path):
    control_plane.register({"worker-2": None})
    proc = subprocess.Popen([sys.executable, "-m", "app", "--config", str(EXAMPLE), "--output", str(output),
                             "--templates", str(make_templates(tmp_path / "t")), "wait", "--server",
                             control_plane.server, "--poll", "0.2"],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            # a harness started in the background ignores SIGINT, and children inherit that
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        events = output / "events.jsonl"
        wait_for(lambda: events.exists() and "api-ready" in events.read_text() or proc.poll() is not None,
                 what="wait to reach the API")
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=30)
    finally:
        proc.kill()
    assert code == 130 and "interrupted" in proc.stderr.read()
    assert not (output / "kubeconfig").exists()


# -- Cilium: its CLI cannot run here (a recording stand-in on PATH); the API server is real ----------
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


CILIUM_DS = "/apis/apps/v1/namespaces/kube-system/daemonsets/cilium"


@pytest.fixture
def cilium_on_path(control_plane, tmp_path, monkeypatch) -> Path:
    # The control plane is shared by the tier, and test_cilium_real installs Cilium for real: these
    # tests start from a cluster without it (its DaemonSet is what `wait` looks for).
    control_plane.kubectl("delete", "-n", "kube-system", "daemonset", "cilium", "--ignore-not-found")
    record = fake_cilium(tmp_path)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:{os.environ['PATH']}")
    return record


def test_cilium_install_gets_the_chosen_options(control_plane, output, tmp_path, cilium_on_path):
    control_plane.register({n: True for n in NAMES})
    cfg = config(tmp_path, "cilium: {wireguard: true, kube_proxy_replacement: true}\nreboots: none\n", cni="cilium")
    result, applied = gate(control_plane, output, make_templates(tmp_path / "t"), config=cfg)
    assert result.exit_code == 0, result.output
    call = json.loads(cilium_on_path.read_text())
    assert call["args"] == ["install", "--set", "ipam.mode=kubernetes", "--set", "encryption.enabled=true",
                            "--set", "encryption.type=wireguard", "--set", "kubeProxyReplacement=true",
                            "--set", "k8sServiceHost=10.0.0.10", "--set", "k8sServicePort=6443"]
    assert yaml.safe_load(call["kubeconfig"])["clusters"][0]["cluster"]["server"] == control_plane.server
    assert applied == []  # no flannel


def test_cilium_already_installed_is_not_reinstalled(control_plane, output, tmp_path, cilium_on_path):
    control_plane.register({n: True for n in NAMES})
    daemonset = {"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "cilium", "namespace": "kube-system"},
                 "spec": {"selector": {"matchLabels": {"k8s-app": "cilium"}},
                          "template": {"metadata": {"labels": {"k8s-app": "cilium"}},
                                       "spec": {"containers": [{"name": "agent", "image": "quay.io/cilium/cilium"}]}}}}
    control_plane.kubectl("apply", "-f", "-", stdin=yaml.safe_dump(daemonset))
    try:
        cfg = config(tmp_path, "cilium: {wireguard: false}\n", cni="cilium")
        result, _ = gate(control_plane, output, make_templates(tmp_path / "t"), config=cfg)
    finally:
        control_plane.kubectl("delete", "-n", "kube-system", "daemonset", "cilium", "--wait=false")
    assert result.exit_code == 0, result.output
    assert not cilium_on_path.exists()


def test_missing_cilium_cli_exits_5(control_plane, output, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    result, _ = gate(control_plane, output, make_templates(tmp_path / "t"), config=config(tmp_path, cni="cilium"))
    assert result.exit_code == 5 and "the cilium CLI is not on PATH" in result.output
