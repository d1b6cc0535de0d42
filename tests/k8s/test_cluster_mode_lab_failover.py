"""A failover in the middle of a real install, in the QEMU lab (docs/high-availability.md, "Install
windows across a takeover").

Two `serve --from-cluster --leader-elect` replicas, each in a namespace of its own on the lab's bridge
(10.99.0.3 and 10.99.0.4, each with an absent --output of its own: no event log is shared), elect a
leader through a real Lease as the appliance's ServiceAccount; the leader holds bootstrap.ip
(10.99.0.2) and runs dnsmasq. A machine pivoted from the lab's cluster.yaml PXE-boots and takes its
install config from the leader, which is then killed with SIGKILL. The standby takes the address over
and, from the install window the Machine's status holds, serves the machine's final config and takes
its `installed` report: the machine finishes without a reinstall, and the Machine says `installed`.
"""

from __future__ import annotations

import json
import time

import pytest

from tests.e2e.test_lab import between
from tests.support.cluster_lab import ClusterLab, Replica, cluster_lab, sh
from tests.support.processes import wait_for
from tests.unit.test_generate import files_of

NS = "cluster-lab-ha"
SERVICE = "10.99.0.2"  # the lab's bootstrap.ip: what the machines are told to use
REPLICAS = {"r1": "10.99.0.3", "r2": "10.99.0.4"}
LEASE, RENEW, RETRY = 4, 3.0, 0.5
START_DEADLINE = 180.0  # the first render from the API and an election, on a loaded 2-core machine
INSTALL_DEADLINE = 300.0  # PXE, kernel, initrd and the install under TCG, with a takeover in the middle


def machine(cl: ClusterLab):
    return next(m for m in cl.lab.nodes if m.name == "worker-1")  # OVMF's PXE client: TFTP, then iPXE


def leading(replica: Replica) -> bool:
    """It leads: it says so in its log and holds bootstrap.ip."""
    return any(e["kind"] == "leading" for e in replica.events()) and holds_service(replica)


def holds_service(replica: Replica) -> bool:
    return f"{SERVICE}/32" in sh("ip", "-n", replica.netns, "-4", "addr", "show")


def kinds(replica: Replica, mac: str) -> list[str]:
    return [e["kind"] for e in replica.events() if e.get("mac") == mac]


@pytest.fixture(scope="module")
def replicas(control_plane):
    """The lab, pivoted; the replicas in their namespaces (the lab's own appliance namespace left
    unaddressed, so that only the leader holds bootstrap.ip). Yields (lab, {name: replica})."""
    with cluster_lab(control_plane, NS, "bnf") as cl:
        cl.pivot()
        sh("ip", "-n", cl.lab.appl, "link", "del", "appl0")  # its 10.99.0.2 is the leader's now
        kubeconfig = cl.service_account_kubeconfig()
        started = {}
        for name, address in REPLICAS.items():
            ns = cl.replica_namespace(name, address)
            started[name] = cl.start_replica(
                name, ns, kubeconfig, "--leader-elect", "--identity", name, "--lease-namespace", NS,
                "--lease-duration", str(LEASE), "--renew-deadline", str(RENEW), "--retry-period", str(RETRY),
                "--service-address", f"{SERVICE}/32", "--service-interface", "appl0")
        try:
            wait_for(lambda: any(cl.ready(r) and leading(r) for r in started.values()), START_DEADLINE,
                     "one replica to lead, hold bootstrap.ip and run dnsmasq", 0.5)
        except BaseException:
            for r in started.values():
                print(r.name, r.log_tail())
            raise
        yield cl, started


def test_a_machine_cut_off_mid_install_finishes_with_the_new_leader(replicas):
    cl, started = replicas
    m = machine(cl)
    first = next(r for r in started.values() if leading(r))
    second = next(r for r in started.values() if r is not first)
    assert not holds_service(second) and not any(e["kind"] == "leading" for e in second.events())
    cl.lab.boot(m)
    wait_for(lambda: "install-ignition" in kinds(first, m.mac), INSTALL_DEADLINE,
             f"{m.name}'s install config from the leader", 0.2)
    first.process.kill()  # SIGKILL: the guardian takes its address and dnsmasq down with it
    first.process.wait(timeout=30)
    killed = time.monotonic()
    try:
        wait_for(lambda: leading(second), 60, "the standby to take over bootstrap.ip", 0.2)
        took = time.monotonic() - killed
        wait_for(lambda: not cl.lab.running(m), INSTALL_DEADLINE, f"{m.name} to finish its install", 1.0)
    except BaseException:
        print(second.log_tail(), cl.lab.serial(m)[-3000:])
        raise
    print(f"takeover {took:.1f} s after SIGKILL; installed and off {time.monotonic() - killed:.1f} s after it")
    # The first leader served the install config and never heard of the rest.
    assert "installed" not in kinds(first, m.mac) and "final-config" not in kinds(first, m.mac)
    # The new leader never saw the PXE boot: it served the final config from the window the Machine held.
    theirs = kinds(second, m.mac)
    assert "install-ignition" not in theirs and "ipxe" not in theirs, theirs
    assert "final-config" in theirs and theirs[-1] == "installed", theirs
    serial = cl.lab.serial(m)
    assert files_of(json.loads(between(serial, "FINAL IGNITION")))["/etc/hostname"] == m.name.encode()
    phase = "jsonpath={.status.phase}"
    wait_for(lambda: cl.plane.kubectl("-n", NS, "get", "machine", m.name, "-o", phase).stdout == "installed",
             30, "the Machine's status.phase to say installed", 0.5)
