"""Leader election against the real API server (tests/support/control_plane.py): replicas are real
OS processes running serve's Elector (tests/support/elector_process.py). One leader at a time, named
by the Lease; a killed leader's Lease is taken over once it lapses, within the stated bound; a
released one at once; a leader cut off from the API (the API server paused with SIGSTOP) stops
before anyone else could take over. Times are the Lease's own (renewTime, acquireTime, written by
replicas on this machine's clock) and the replicas' CLOCK_MONOTONIC; every wait polls a real
condition with a deadline."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from tests.support.paths import REPO
from tests.support.processes import wait_for

LEASE, RENEW, RETRY = 4, 3.0, 0.5  # short, as serve's tests use them
LATENCY = 1.5  # what API round trips and a busy 2-core machine may add to a bound (seconds)
NAMESPACE = "default"


@pytest.fixture(scope="module")
def kubeconfig(control_plane, tmp_path_factory) -> Path:
    """admin.conf aimed at cp-1's own address (a SAN of the API server's certificate)."""
    conf = yaml.safe_load(control_plane.admin_conf.read_text())
    conf["clusters"][0]["cluster"]["server"] = f"https://{control_plane.advertise_address}:6443"
    path = tmp_path_factory.mktemp("leader") / "kubeconfig"
    path.write_text(yaml.safe_dump(conf))
    path.chmod(0o600)
    return path


@dataclass
class Replica:
    identity: str
    proc: subprocess.Popen
    lines: list[dict] = field(default_factory=list)

    def read(self) -> None:
        for line in self.proc.stdout:
            with contextlib.suppress(ValueError):
                self.lines.append(json.loads(line))

    def roles(self) -> list[dict]:
        return [line for line in list(self.lines) if line.get("role") in ("leader", "standby")]

    @property
    def leading(self) -> bool:
        roles = self.roles()
        return bool(roles) and roles[-1]["role"] == "leader"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=30)


@dataclass
class LeaseWatch:
    """Every version of one Lease, as `kubectl get -w` streams them."""

    proc: subprocess.Popen
    records: list[dict] = field(default_factory=list)

    def read(self) -> None:
        for line in self.proc.stdout:
            holder, renewed, acquired, transitions = (line.rstrip("\n").split("|") + ["", "", "", ""])[:4]
            self.records.append({"holder": holder, "renewed": when(renewed), "acquired": when(acquired),
                                 "transitions": int(transitions or 0)})


def when(stamp: str) -> dt.datetime | None:
    return dt.datetime.fromisoformat(stamp.replace("Z", "+00:00")) if stamp else None


@pytest.fixture
def election(request, control_plane, kubeconfig):
    """start(identity) → a Replica on this test's own Lease; the Lease's versions in `watch.records`."""
    name = f"leader-{request.node.name.replace('_', '-')[:40].strip('-')}"
    started: list[Replica] = []
    threads = []
    kubectl = [str(control_plane.bin / "kubectl"), "--kubeconfig", str(kubeconfig), "-n", NAMESPACE]

    def start(identity: str) -> Replica:
        proc = subprocess.Popen([sys.executable, "-m", "tests.support.elector_process", str(kubeconfig), identity,
                                 NAMESPACE, name, str(LEASE), str(RENEW), str(RETRY)],
                                cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        replica = Replica(identity, proc)
        threads.append(threading.Thread(target=replica.read, daemon=True))
        threads[-1].start()
        started.append(replica)
        return replica

    class Election:
        lease = name

        def __init__(self):
            self.watch: LeaseWatch | None = None

        def watching(self) -> LeaseWatch:
            """Start streaming the Lease once it exists (kubectl -w wants an object to watch)."""
            wait_for(lambda: subprocess.run([*kubectl, "get", "lease", name], capture_output=True).returncode == 0,
                     timeout=30, what=f"Lease {name} to exist")
            template = ('{.spec.holderIdentity}|{.spec.renewTime}|{.spec.acquireTime}|{.spec.leaseTransitions}'
                        '{"\\n"}')
            proc = subprocess.Popen([*kubectl, "get", "lease", name, "-w", "-o", f"jsonpath={template}"],
                                    stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
            self.watch = LeaseWatch(proc)
            threads.append(threading.Thread(target=self.watch.read, daemon=True))
            threads[-1].start()
            return self.watch

    election = Election()
    election.start = start
    try:
        yield election
    finally:
        for replica in started:
            replica.stop()
        if election.watch is not None:
            election.watch.proc.kill()
            election.watch.proc.wait(timeout=10)
        subprocess.run([*kubectl, "delete", "lease", name, "--ignore-not-found"], capture_output=True)


def elect(election) -> tuple[Replica, Replica, LeaseWatch]:
    """Two replicas; once one leads and has renewed a few times: (leader, standby, watch)."""
    a, b = election.start("replica-a"), election.start("replica-b")
    leader = wait_for(lambda: next((r for r in (a, b) if r.leading), None), timeout=60, what="a leader")
    standby = b if leader is a else a
    watch = election.watching()
    # Four renewals seen: two retry periods in which the standby had every chance to lead too.
    wait_for(lambda: sum(r["holder"] == leader.identity for r in watch.records) >= 4, timeout=30,
             what="the leader to renew")
    assert not standby.roles(), f"the standby changed role while the leader renewed: {standby.lines}"
    return leader, standby, watch


def test_exactly_one_leader_and_the_lease_names_it(election):
    leader, standby, watch = elect(election)
    assert leader.leading and not standby.leading
    holders = {r["holder"] for r in watch.records}
    assert holders == {leader.identity}, holders


def test_a_killed_leader_is_replaced_once_its_lease_lapses(election):
    leader, standby, watch = elect(election)
    leader.proc.kill()  # SIGKILL: no release, the standby must wait the lease out
    wait_for(lambda: standby.leading, timeout=LEASE + 2 * RETRY + 30, what="the standby to take over")
    last = [r for r in watch.records if r["holder"] == leader.identity][-1]
    taken = wait_for(lambda: next((r for r in watch.records if r["holder"] == standby.identity), None),
                     timeout=10, what="the Lease to name the standby")
    gap = (taken["acquired"] - last["renewed"]).total_seconds()
    # Not before the lease lapsed by the standby's clock; at most one retry to see the last renewal and
    # one to act after it lapsed (docs/high-availability.md, "How long a takeover takes").
    assert LEASE <= gap <= LEASE + 2 * RETRY + LATENCY, gap
    assert taken["transitions"] == last["transitions"] + 1
    print(f"takeover after SIGKILL: {gap:.2f} s after the last renewal (bound {LEASE + 2 * RETRY:g} s), "
          f"load {os.getloadavg()[0]:.1f}")


def test_a_stopped_leader_releases_and_the_standby_takes_over_at_once(election):
    leader, standby, watch = elect(election)
    leader.proc.send_signal(signal.SIGTERM)
    wait_for(lambda: any("released" in line for line in leader.lines), timeout=30, what="the release")
    assert next(line for line in leader.lines if "released" in line)["released"] is True
    wait_for(lambda: standby.leading, timeout=RETRY + 30, what="the standby to take over")
    taken = wait_for(lambda: next((r for r in watch.records if r["holder"] == standby.identity), None),
                     timeout=10, what="the Lease to name the standby")
    freed = [r for r in watch.records if r["holder"] == ""]
    assert freed, f"the Lease was never seen without a holder: {watch.records}"
    gap = (taken["acquired"] - freed[-1]["renewed"]).total_seconds()
    assert 0 <= gap <= RETRY + LATENCY, gap
    assert taken["transitions"] == freed[-1]["transitions"] + 1
    print(f"takeover after release: {gap:.2f} s, load {os.getloadavg()[0]:.1f}")


def test_a_leader_cut_off_from_the_api_stops_before_anyone_could_take_over(election, control_plane):
    leader, standby, _ = elect(election)
    apiserver = control_plane.processes["kube-apiserver"]
    os.kill(apiserver.pid, signal.SIGSTOP)  # connections accepted by the kernel, never answered
    try:
        stopped = wait_for(lambda: next((r for r in leader.roles() if r["role"] == "standby"), None),
                           timeout=RENEW + 30, what="the leader to stop leading")
    finally:
        os.kill(apiserver.pid, signal.SIGCONT)
    assert "renew deadline" in stopped["why"], stopped
    # Its last renewal began at deadline - RENEW; any other replica saw it only after that, so could
    # take over no earlier than deadline - RENEW + LEASE. The leader stopped before then.
    earliest_takeover = stopped["deadline"] - RENEW + LEASE
    assert stopped["at"] < earliest_takeover, (stopped, earliest_takeover)
    print(f"cut-off leader stopped {stopped['at'] - stopped['deadline']:+.3f} s from its renew deadline, "
          f"{earliest_takeover - stopped['at']:.2f} s before anyone could take over, load {os.getloadavg()[0]:.1f}")
    # The API back: one of them leads again, and the Lease names it.
    wait_for(lambda: leader.leading or standby.leading, timeout=60, what="a leader after the API came back")
    assert not (leader.leading and standby.leading)
