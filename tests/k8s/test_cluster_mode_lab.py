"""Issue #34's proof: `pivot`, then a machine added with `kubectl apply` installs in the QEMU lab
with no output directory involved.

The lab's cluster (scripts/lab/cluster.yaml, its 10.99.0.0/24 addresses) is generated in a scratch
directory, pivoted into the tier's real API server and the directory deleted. `serve --from-cluster`
runs in the lab's appliance namespace as the appliance's ServiceAccount, with nothing but an absent
--output of its own (tests/support/cluster_lab.py says how the namespaces are joined). A UEFI QEMU
machine whose MAC no Machine has PXE-boots through real dnsmasq (proxy DHCP, TFTP) and iPXE and is
told, on its console, to wait; `kubectl apply` (real kubectl) of its Machine makes the same running machine, at its next
retry, get the installer; the stand-in Flatcar runs its install config and reports `installed`,
which the Machine's `.status.phase` and an Event then say through the API.

The API server is only the store here: the Deployment pivot applies has no pod (no kubelet runs, no
image can be pulled), so serve runs as a process with the ServiceAccount's token.
"""

from __future__ import annotations

import json
import sys
import time

import pytest

from tests.e2e.test_lab import between
from tests.support.cluster_lab import ClusterLab, cluster_lab, machine_yaml
from tests.support.paths import REPO
from tests.support.processes import wait_for
from tests.unit.test_generate import files_of

sys.path.insert(0, str(REPO / "scripts" / "lab"))
import lab as lab_module  # noqa: E402

NS = "cluster-lab"
# UEFI (OVMF's PXE client): its console is the serial port, so what serve told the machine is on it
# (QEMU's BIOS iPXE ROM writes to the screen only).
NEW = lab_module.Machine("worker-3", "52:54:00:aa:bb:04", "uefi")
TOLD_TO_WAIT = f"no node in cluster.yaml has MAC {NEW.mac}"
NEW_IP = "10.99.0.23"
PIVOTED = {"cp-1", "worker-1", "worker-2"}
SERVE_DEADLINE = 180.0  # the first render from the API, then dnsmasq, on a loaded 2-core machine
INSTALL_DEADLINE = 300.0  # a retry (30 s), then kernel, initrd, Ignition and the install, all under TCG
WALL: dict[str, float] = {}  # stage -> seconds, printed by the last test


def kubectl(cl: ClusterLab, *args: str, stdin: str | None = None, check: bool = True):
    return cl.plane.kubectl("-n", NS, *args, stdin=stdin, check=check)


@pytest.fixture(scope="module")
def lab(control_plane):
    began = time.monotonic()
    with cluster_lab(control_plane, NS, "bnc") as cl:
        WALL["lab up"] = time.monotonic() - began
        yield cl


@pytest.fixture(scope="module")
def serving(lab):
    """Pivoted, the pivot's output directory gone, one replica serving from the API in the lab's
    appliance namespace. Yields (the lab, the replica, pivot's output)."""
    cl = lab
    began = time.monotonic()
    pivoted = cl.pivot()
    kubeconfig = cl.service_account_kubeconfig()
    cl.route_to_api(cl.lab.appl)
    replica = cl.start_replica("a", cl.lab.appl, kubeconfig)
    try:
        wait_for(lambda: cl.ready(replica), SERVE_DEADLINE, "serve --from-cluster to start dnsmasq", 0.2)
    except BaseException:
        print(replica.log_tail())
        raise
    WALL["pivot and serve"] = time.monotonic() - began
    return cl, replica, pivoted


def mac_events(replica, mac: str = NEW.mac) -> list[dict]:
    return [e for e in replica.events() if e.get("mac") == mac]


@pytest.fixture(scope="module")
def told_to_wait(serving):
    """The new machine powered on before its Machine exists: PXE-booted, told no node has its MAC."""
    cl, replica, _ = serving
    began = time.monotonic()
    cl.lab.boot(NEW)
    wait_for(lambda: TOLD_TO_WAIT in cl.lab.serial(NEW), SERVE_DEADLINE,
               "the unknown machine's PXE boot to be answered on its console", 0.5)
    WALL["power-on to told to wait"] = time.monotonic() - began
    return serving


@pytest.fixture(scope="module")
def installed(told_to_wait):
    """`kubectl apply` of its Machine; the same machine (still retrying) installs and powers off."""
    cl, replica, _ = told_to_wait
    began = time.monotonic()
    kubectl(cl, "apply", "-f", "-", stdin=machine_yaml(NS, NEW.name, NEW.mac, NEW_IP))
    try:
        wait_for(lambda: not cl.lab.running(NEW), INSTALL_DEADLINE, f"{NEW.name} to install and power off", 1.0)
    except BaseException:
        print(replica.log_tail(), cl.lab.serial(NEW)[-3000:])
        raise
    WALL["apply to installed and off"] = time.monotonic() - began
    return told_to_wait


def test_serve_renders_the_pivoted_cluster_from_the_api_alone(serving):
    cl, replica, pivoted = serving
    assert f"pivoted: {len(PIVOTED)} machines in namespace {NS}" in pivoted, pivoted
    assert not cl.pivot_output.exists()  # nothing of the appliance's run is left to read
    assert (replica.output / ".from-cluster").read_text() == NS
    groups = {p.stem for p in (replica.output / "matchbox" / "groups").iterdir()}
    assert PIVOTED <= groups and not any(NEW.name in g for g in groups), groups
    listed = kubectl(cl, "get", "machines", "-o", "jsonpath={.items[*].metadata.name}").stdout.split()
    assert set(listed) == PIVOTED


def test_before_the_apply_the_machine_gets_no_config(told_to_wait):
    cl, replica, _ = told_to_wait
    events = mac_events(replica)
    assert any(e["kind"] == "discovered" for e in events), events  # serve saw it, and kept it for `discover`
    assert not any(e["kind"] in ("install-ignition", "installing", "installed") for e in events), events
    assert not any(e["kind"] == "ipxe" and e.get("detail", {}).get("profile") for e in events), events
    assert cl.lab.running(NEW)  # waiting to ask again, not installed and powered off
    assert "ignition.config.url=" not in cl.lab.serial(NEW)  # no kernel of the installer was booted
    missing = kubectl(cl, "get", "machine", NEW.name, check=False)
    assert missing.returncode != 0 and "NotFound" in missing.stderr, missing.stderr


def test_the_applied_machine_installs_through_real_pxe(installed):
    cl, replica, _ = installed
    events = mac_events(replica)
    assert any(e["kind"] == "ipxe" and e["detail"].get("profile") == f"{NEW.name}-install" for e in events)
    downloads = {e["detail"]["file"].rsplit("/", 1)[1] for e in events if e["kind"] == "boot-asset"}
    assert downloads >= {"flatcar_production_pxe.vmlinuz", "flatcar_production_pxe_image.cpio.gz"}
    assert sum(e["kind"] == "install-ignition" for e in events) == 1
    assert [e["kind"] for e in events if e["kind"] in ("installing", "installed")][-1] == "installed"
    serial = cl.lab.serial(NEW)
    # The same power-on: told to wait, then (after the apply, at its retry) booted into the installer.
    assert serial.index(TOLD_TO_WAIT) < serial.index(f"ignition.config.url=http://10.99.0.2:8080/ignition?mac="
                                                     f"{NEW.mac.replace(':', '-')}")
    install = json.loads(between(serial, "INSTALL IGNITION"))
    assert files_of(install)["/etc/hostname"] == NEW.name.encode()
    final = files_of(json.loads(between(serial, "FINAL IGNITION")))
    assert final["/etc/hostname"] == NEW.name.encode()
    assert "/opt/bootstrap-node/kubernetes/pki/ca.key" not in final  # a worker's config: no CA key
    assert "args: -d /dev/vda -b http://10.99.0.2:8080/assets/flatcar -V 4081.3.6 -i /tmp/final.ign" in \
        between(serial, "FLATCAR-INSTALL")


def test_its_machine_says_installed_through_the_api(installed):
    cl, replica, _ = installed
    began = time.monotonic()
    wait_for(lambda: kubectl(cl, "get", "machine", NEW.name, "-o", "jsonpath={.status.phase}").stdout == "installed",
               30, "the Machine's status.phase to say installed", 0.5)
    template = "jsonpath={range .items[*]}{.regarding.name}/{.reason}/{.reportingController} {end}"
    wait_for(lambda: f"{NEW.name}/Installed/bootstrap-node.io/bootstrap-node" in kubectl(
        cl, "get", "events.events.k8s.io", "-o", template).stdout.split(), 30, "an Installed Event for it", 0.5)
    WALL["installed to status.phase"] = time.monotonic() - began
    printed = kubectl(cl, "get", "machines").stdout
    assert any(line.split()[:4] == [NEW.name, "worker", NEW.mac, "installed"] for line in printed.splitlines()), printed
    print("wall time per stage (s):", json.dumps({k: round(v, 1) for k, v in WALL.items()}))
