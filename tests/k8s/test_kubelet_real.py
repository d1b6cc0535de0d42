"""Real nodes: kubelet with Debian's containerd, runc and CNI plugins (tests/support/kubelet_node.py).
worker-1, in a network namespace of its own, joins the real control plane with its rendered join
configuration (TLS bootstrap with the token and CA pin it carries); cp-1 gets its kubelet through
`kubeadm init phase kubelet-start`; both go Ready; then `wait`'s gate and `init --yes` run against
them; and worker-3, added on day 2, joins with the token `generate --server` minted.

Skips, with the reason, where this host cannot run a kubelet (a package missing, no cgroups, the
inotify instances used up); under BOOTSTRAP_NODE_REQUIRE_BUILT=1 (CI, which installs the packages) a
missing package fails instead."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest
import yaml

from app.events import Event, append_event
from tests.k8s.test_init_real import port_closed, start_init
from tests.support.control_plane import NetNS
from tests.support.day2 import EXAMPLE_NODES, WORKER_3, config_with, exists, generate
from tests.support.gate import run_wait
from tests.support.kubelet_node import KUBELET_LEFTOVERS, KubeletNode, host_problem, mounts_under, wire
from tests.support.processes import free_port, wait_for
from tests.unit.test_generate import files_of

READY_DEADLINE = 240.0  # TLS bootstrap, then the first status with the runtime's network ready
WORKER = ("worker-1", "10.0.0.21", "10.244.1.0/24")
NODE_MACS = {n["name"]: n["mac"] for n in EXAMPLE_NODES}


def rendered(generated, node: str) -> dict[str, bytes]:
    return files_of(json.loads((generated / "matchbox" / "ignition" / f"{node}.ign").read_text()))


@pytest.fixture(scope="module")
def nodes(control_plane, generated_k8s, tmp_path_factory):
    problem = host_problem()
    if problem:
        if os.environ.get("BOOTSTRAP_NODE_REQUIRE_BUILT") == "1" and "Debian package" in problem:
            pytest.fail(problem)
        pytest.skip(problem)
    leftovers = [p for p in KUBELET_LEFTOVERS if not p.exists()]
    name, address, subnet = WORKER
    netns = NetNS(f"bn-k8s-{os.getpid()}-w1", []).create()
    cp = KubeletNode("cp-1", control_plane.root, control_plane.bin, control_plane.netns, "10.244.0.0/24")
    worker = KubeletNode(name, tmp_path_factory.mktemp(name), control_plane.bin, netns, subnet)
    # Other tests leave Node objects standing in for kubelets; kubeadm join refuses to take over a
    # Ready one of its name (as it should), so this node starts unregistered.
    control_plane.register({name: None})
    try:
        wire(control_plane.netns, netns, address, 1)
        cp.start_runtime(rendered(generated_k8s, "cp-1")["/etc/containerd/config.toml"].decode())
        control_plane.init_phase("kubelet-start")  # writes its configuration; cannot start it (no systemd)
        cp.start_kubelet(bootstrap=False)
        files = rendered(generated_k8s, name)
        worker.start_runtime(files["/etc/containerd/config.toml"].decode())
        worker.join(files["/etc/kubernetes/kubeadm.yaml"].decode())
        yield {"cp-1": cp, name: worker}
    finally:
        worker.stop()
        cp.stop()
        netns.delete()
        for path in leftovers:
            shutil.rmtree(path, ignore_errors=True)
        assert not mounts_under(worker.root) and not mounts_under(cp.root / "var"), "a kubelet's mounts outlived it"


def node(control_plane, name: str) -> dict:
    run = control_plane.kubectl("get", "node", name, "-o", "json", check=False)
    return json.loads(run.stdout) if run.returncode == 0 else {}


def ready(control_plane, name: str) -> bool:
    conditions = node(control_plane, name).get("status", {}).get("conditions", [])
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def test_a_worker_joins_with_its_rendered_config_through_tls_bootstrap(control_plane, generated_k8s, nodes):
    assert nodes["worker-1"].wait_joined() == 0, nodes["worker-1"].log_tail("kubeadm-join")
    assert "This node has joined the cluster" in nodes["worker-1"].log("kubeadm-join").read_text()
    token = yaml.safe_load(rendered(generated_k8s, "worker-1")["/etc/kubernetes/kubeadm.yaml"])
    token_id = token["discovery"]["bootstrapToken"]["token"].split(".")[0]
    csrs = json.loads(control_plane.kubectl("get", "csr", "-o", "json").stdout)["items"]
    mine = [c for c in csrs if c["spec"]["username"] == f"system:bootstrap:{token_id}"]
    assert mine and all(any(k["type"] == "Approved" for k in c["status"].get("conditions", [])) for c in mine)
    wait_for(lambda: ready(control_plane, "worker-1"), timeout=READY_DEADLINE, what="worker-1 to be Ready")
    status = node(control_plane, "worker-1")["status"]
    assert {"type": "InternalIP", "address": "10.0.0.21"} in status.get("addresses", []), status.get("addresses")
    assert status["nodeInfo"]["kubeletVersion"] == "v1.36.3"
    assert status["nodeInfo"]["containerRuntimeVersion"].startswith("containerd://")


def test_inits_whole_gate_passes_on_real_nodes(control_plane, generated_k8s, nodes, tmp_path):
    """`init --yes` for cp-1 and worker-1: serve, the gate on the real API, Ready as the kubelets
    report it, the kubeconfig, and nothing left running."""
    output = tmp_path / "output"
    shutil.copytree(generated_k8s, output, symlinks=True)
    two = config_with(tmp_path, ["cp-1", "worker-1"])
    for name in ("cp-1", "worker-1"):
        wait_for(lambda name=name: ready(control_plane, name), timeout=READY_DEADLINE, what=f"{name} to be Ready")
    port = free_port()
    proc = start_init(output, two, control_plane.server, port, "--nodes-timeout", "120")
    try:
        code = proc.wait(timeout=180)
    finally:
        proc.kill()
    stdout, stderr = proc.communicate()
    assert code == 0, stderr
    assert "all 2 nodes Ready" in stdout and (output / "kubeconfig").stat().st_mode & 0o777 == 0o600
    assert not (output / "serve.json").exists() and port_closed(port)


def test_a_node_added_on_day_2_joins_with_the_token_generate_minted(control_plane, generated_k8s, nodes, tmp_path,
                                                                   tmp_path_factory):
    """worker-3 added to the running cluster: `generate --server` mints its token Secret through the
    API, and real kubeadm and kubelet join with the config that carries it (the Secret's groups are
    what lets the controller-manager approve the kubelet's certificate request)."""
    output = tmp_path / "output"
    shutil.copytree(generated_k8s, output, symlinks=True)
    three = config_with(tmp_path, ["cp-1", "worker-1"], [WORKER_3])
    generate(output, three)
    exists(output)
    for name in ("cp-1", "worker-1"):
        append_event(output, Event("installed", mac=NODE_MACS[name], node=name, source="node"))
    control_plane.register({"worker-3": None})  # new to the cluster (another test may have left one)
    result = generate(output, three, "--server", control_plane.server)
    assert "fresh join tokens for worker-3" in result.output
    config = rendered(output, "worker-3")
    token_id = yaml.safe_load(config["/etc/kubernetes/kubeadm.yaml"])["discovery"]["bootstrapToken"]["token"][:6]
    netns = NetNS(f"bn-k8s-{os.getpid()}-w3", []).create()
    # A short root: the kubelet puts unix sockets under it (at most 108 bytes of path)
    worker = KubeletNode("worker-3", tmp_path_factory.mktemp("worker-3"), control_plane.bin, netns, "10.244.3.0/24")
    try:
        wire(control_plane.netns, netns, WORKER_3["ip"], 3)
        worker.start_runtime(config["/etc/containerd/config.toml"].decode())
        worker.join(config["/etc/kubernetes/kubeadm.yaml"].decode())
        assert worker.wait_joined() == 0, worker.log_tail("kubeadm-join")
        wait_for(lambda: ready(control_plane, "worker-3"), timeout=READY_DEADLINE, what="worker-3 to be Ready")
    finally:
        worker.stop()
        netns.delete()
    csrs = json.loads(control_plane.kubectl("get", "csr", "-o", "json").stdout)["items"]
    assert [c["spec"]["username"] for c in csrs if c["spec"]["username"] == f"system:bootstrap:{token_id}"]


def test_stopping_a_node_leaves_no_mount_behind(nodes, control_plane, tmp_path_factory):
    """The kubelet mounts its root directory onto itself and the volumes of pods scheduled there;
    teardown must take them away, or every later run finds them (and cannot delete its temp dirs)."""
    spare = KubeletNode("spare", tmp_path_factory.mktemp("spare"), control_plane.bin, control_plane.netns, "")
    (spare.root / "var" / "lib").mkdir(parents=True)
    (spare.root / "var" / "lib" / "kubelet").mkdir()
    subprocess.run(["mount", "--bind", str(spare.root / "var/lib/kubelet"), str(spare.root / "var/lib/kubelet")],
                   check=True)
    assert mounts_under(spare.root) == [str(spare.root / "var/lib/kubelet")]
    spare.stop()
    assert mounts_under(spare.root) == []
    assert mounts_under(nodes["worker-1"].root), "a running kubelet mounts under its root"


def test_the_gate_waits_for_real_nodes(control_plane, generated_k8s, nodes, tmp_path):
    """`wait` for a cluster of cp-1 and worker-1, both kubelets of their own: Ready as they report it."""
    output = tmp_path / "output"
    shutil.copytree(generated_k8s, output, symlinks=True)
    two = config_with(tmp_path, ["cp-1", "worker-1"])
    generate(output, two)
    for name in ("cp-1", "worker-1"):
        wait_for(lambda name=name: ready(control_plane, name), timeout=READY_DEADLINE, what=f"{name} to be Ready")
        assert node(control_plane, name)["status"]["nodeInfo"]["kubeletVersion"] == "v1.36.3"
    result = run_wait(output, control_plane.server, None, "--nodes-timeout", "120", config=two)
    assert result.exit_code == 0, result.output
    assert "all 2 nodes Ready" in result.output
    events = [json.loads(line) for line in (output / "events.jsonl").read_text().splitlines()]
    assert sorted(e["node"] for e in events if e["kind"] == "ready") == ["cp-1", "worker-1"]
