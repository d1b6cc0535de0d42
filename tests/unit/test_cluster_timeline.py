"""Machine `status.timeline` in cluster mode (app/serve/cluster/machine_watch.py): the event log's
phase history as the status holds it, and when the leader's status patch writes or removes it."""

from __future__ import annotations

import pytest

from app.serve.cluster.machine_watch import MachineView, Report, status_patches, timeline

MAC = "52:54:00:00:00:29"

T1, T2, T3 = "2026-01-02T03:04:05.120Z", "2026-01-02T03:04:09.000Z", "2026-01-02T04:00:00+01:00"
STEPS = [{"phase": "dhcp", "time": "2026-01-02T03:04:05.120000Z"},
         {"phase": "ipxe", "time": "2026-01-02T03:04:09.000000Z"}]
T4, INSTALLED = "2026-01-02T03:10:00.000Z", {"phase": "installed", "time": "2026-01-02T03:10:00.000000Z"}


@pytest.mark.parametrize(("history", "expected"), [
    ([], []),
    ([(T1, "dhcp"), (T2, "ipxe")], STEPS),
    ([(T3, "kernel")], [{"phase": "kernel", "time": "2026-01-02T03:00:00.000000Z"}]),  # to UTC
    ([(T1, "dhcp"), (T2, "ipxe"), (T2, "dhcp"), (T2, "ipxe")], STEPS),  # each phase once, forward only
    ([(T1, "dhcp"), (T2, "rebooted"), ("not a time", "tftp"), (T2, "ipxe")], STEPS),  # no phase, no time: out
])
def test_timeline_is_each_phase_once_in_order_in_utc(history, expected):
    assert timeline(history) == expected


def machine_with(steps, reinstall=0, observed=0, phase="") -> MachineView:
    """A Machine whose status holds `steps` as its timeline (None: no timeline)."""
    status = {"observedReinstall": observed, **({"phase": phase} if phase else {}),
              **({"timeline": steps} if steps is not None else {})}
    return MachineView.of({"metadata": {"name": "w-9", "generation": 1, "resourceVersion": "7"},
                           "spec": {"mac": MAC, "reinstall": reinstall}, "status": status})


@pytest.mark.parametrize(("stored", "report", "expected"), [
    (None, Report("ipxe", "", ((T1, "dhcp"), (T2, "ipxe"))), {"phase": "ipxe", "timeline": STEPS}),
    (STEPS, Report("ipxe", "", ((T1, "dhcp"), (T2, "ipxe"))), {"phase": "ipxe"}),  # unchanged: not written
    (STEPS[:1], Report("ipxe", "", ((T1, "dhcp"), (T2, "ipxe"))), {"phase": "ipxe", "timeline": STEPS}),
    (STEPS, Report("ipxe", "disk not found"), {"phase": "ipxe", "lastError": "disk not found"}),  # no phase seen
    # A leader that took over mid-install saw only `installed`: the earlier phases stay as stored.
    (STEPS, Report("installed", "", ((T4, "installed"),)), {"phase": "installed", "timeline": [*STEPS, INSTALLED]}),
    (STEPS, Report("ipxe", "", ((T4, "ipxe"),)), {"phase": "ipxe", "timeline": [STEPS[0], {**INSTALLED, "phase": "ipxe"}]}),
    ("not a list", Report("ipxe", "", ((T1, "dhcp"), (T2, "ipxe"))), {"phase": "ipxe", "timeline": STEPS}),
    (None, Report("ipxe", ""), {"phase": "ipxe"}),  # nothing to say, nothing stored
    (None, ("ipxe", ""), {"phase": "ipxe"}),  # phase and error alone: no timeline
])
def test_status_patches_write_the_timeline_when_it_changed(stored, report, expected):
    known = {"w-9": machine_with(stored, observed=0)}
    assert status_patches(known, {MAC: report}, limit=10) == {"w-9": expected}


def test_a_reinstall_removes_the_timeline_with_the_phase_and_install():
    known = {"w-9": machine_with(STEPS, reinstall=1, observed=0, phase="ipxe")}
    # The reinstall was recorded before the round (ClusterMode._status_round): the log's node starts over.
    assert status_patches(known, {MAC: Report("", "")}, limit=10) == {
        "w-9": {"observedReinstall": 1, "installWindow": None, "phase": None, "timeline": None}}
