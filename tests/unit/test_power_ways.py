"""Power: the `power`/`bmc` fields and their checks, the polling, the start and install policies,
and how each way words a failure. In memory: BMCs here are stand-ins (the real ones are in
tests/integration/test_power_bmc.py)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

import app.power as power
from app.cluster.model import Bmc
from app.power.base import PowerError, PowerStatus, Way
from app.power.ipmi import Ipmi, host_port
from app.power.redfish import base_url
from tests.unit.test_cluster_checks import edit, line_of, problems_for

CP1 = '  - {name: cp-1, role: controller, mac: "52:54:00:00:00:11", ip: 10.0.0.11, install_disk: /dev/disk/by-id/wwn-0x5000c500a0b1c211, arch: amd64}'


def with_bmc(bmc: str, way: str = "redfish") -> str:
    return edit(CP1, CP1[:-1] + f",\n     power: {way}, bmc: {bmc}}}")


def errors(text: str) -> list:
    return [p for p in problems_for(text)[1] if p.severity == "error"]


# -- cluster.yaml ------------------------------------------------------------------------------------
@pytest.mark.parametrize("address", ["10.0.0.50", "bmc-1.example:8443", "[fd00::1]:623",
                                     "https://10.0.0.50", "http://127.0.0.1:8000/"])
def test_bmc_addresses_accepted(address):
    assert Bmc(address=address, username="u", password_env="P").address == address


@pytest.mark.parametrize("address, said", [("ftp://x", "neither"), ("10.0.0.50:99999", "outside 1-65535"),
                                           ("https://x/redfish/v1", "neither"), ("a b", "neither")])
def test_bmc_addresses_refused(address, said):
    with pytest.raises(ValidationError, match=said):
        Bmc(address=address, username="u", password_env="P")


@pytest.mark.parametrize("fields", [{}, {"password_env": "P", "password_file": "/run/p"}])
def test_exactly_one_password_source(fields):
    with pytest.raises(ValidationError, match="exactly one of password_file and password_env"):
        Bmc(address="x", username="u", **fields)


def test_password_file_must_be_absolute_and_env_a_name():
    with pytest.raises(ValidationError, match="absolute path"):
        Bmc(address="x", username="u", password_file="bmc.pass")
    with pytest.raises(ValidationError, match="not an environment variable name"):
        Bmc(address="x", username="u", password_env="BMC PASS")


def test_missing_password_variable_is_an_error_at_its_line(monkeypatch):
    monkeypatch.delenv("BN_TEST_BMC_PASS", raising=False)
    text = with_bmc("{address: 10.0.0.50, username: admin, password_env: BN_TEST_BMC_PASS}")
    [problem] = errors(text)
    assert problem.path == "nodes[0].bmc.password_env"
    assert problem.line == line_of(text, "BN_TEST_BMC_PASS")
    assert "BN_TEST_BMC_PASS is not set" in problem.message
    monkeypatch.setenv("BN_TEST_BMC_PASS", "x")
    cluster, _ = problems_for(text)
    assert cluster is not None and cluster.power_of(cluster.nodes[0]) == "redfish"
    assert cluster.power_of(cluster.nodes[1]) == "manual"  # the top-level default


def test_bmc_way_without_bmc_is_an_error():
    text = edit("power: manual", "power: ipmi")
    found = errors(text)
    assert {p.path for p in found} == {f"nodes[{i}]" for i in range(5)}
    assert "power: ipmi needs `bmc:" in found[0].message and "cp-1" in found[0].message


def test_ipmi_refuses_a_url(monkeypatch):
    monkeypatch.setenv("BN_TEST_BMC_PASS", "x")
    [problem] = errors(with_bmc("{address: 'https://10.0.0.50', username: a, password_env: BN_TEST_BMC_PASS}",
                                way="ipmi"))
    assert problem.path == "nodes[0].bmc.address" and "not a URL" in problem.message


def test_unused_bmc_is_a_warning(monkeypatch):
    monkeypatch.setenv("BN_TEST_BMC_PASS", "x")
    cluster, problems = problems_for(with_bmc("{address: 10.0.0.50, username: a, password_env: BN_TEST_BMC_PASS}",
                                              way="wol"))
    assert cluster is not None
    assert [p.path for p in problems if p.severity == "warning" and "unused" in p.message] == ["nodes[0].bmc"]


def test_unknown_bmc_key_is_reported_with_a_suggestion(monkeypatch):
    monkeypatch.setenv("P", "x")
    assert any("did you mean 'password_env'" in p.message
               for p in errors(with_bmc("{address: x, username: a, password_env: P, pasword_env: P}")))


def test_the_model_holds_no_password(monkeypatch):
    """Only where to read it: nothing dumped from the model (generate's output, logs) can carry it."""
    monkeypatch.setenv("BN_TEST_BMC_PASS", "hunter2-secret")
    cluster, _ = problems_for(with_bmc("{address: 10.0.0.50, username: a, password_env: BN_TEST_BMC_PASS}"))
    assert "hunter2-secret" not in cluster.model_dump_json()


# -- polling and policies ----------------------------------------------------------------------------
class StandIn(Way):
    """A BMC whose power state arrives `delay` status calls after it was asked for."""
    name = "redfish"

    def __init__(self, node: str, power_state: str = "off", delay: int = 2, fail_on: str = ""):
        super().__init__(node)
        self.power, self.boot, self.delay, self.fail_on = power_state, "none", delay, fail_on
        self.pending: list[str] = []
        self.calls: list[str] = []

    def _act(self, what: str) -> None:
        self.calls.append(what)
        if what == self.fail_on:
            raise self.fail(f"BMC stand-in answered 400 to {what}")

    def on(self):
        self._act("on")
        self.pending = ["off"] * (self.delay - 1) + ["on"]

    def off(self):
        self._act("off")
        self.pending = ["on"] * (self.delay - 1) + ["off"]

    def status(self):
        if self.pending:
            self.power = self.pending.pop(0)
        return PowerStatus(self.power, self.boot)

    def pxe_once(self):
        self._act("pxe_once")
        self.boot = "pxe (continuous)"

    def boot_disk(self):
        self._act("boot_disk")
        self.boot = "hdd (continuous)"


class Clock:
    def __init__(self):
        self.now = 0.0

    def sleep(self, seconds):
        self.now += seconds


def test_wait_for_polls_until_the_state_arrives():
    clock, way = Clock(), StandIn("cp-1", delay=5)
    way.on()
    result = power.wait_for({"cp-1": way}, "on", timeout=60, sleep=clock.sleep, clock=lambda: clock.now)
    assert result["cp-1"].power == "on" and clock.now == 4.0


def test_wait_for_gives_up_at_the_deadline_and_says_what_it_saw():
    clock, way = Clock(), StandIn("cp-1", delay=1000)
    way.on()
    result = power.wait_for({"cp-1": way}, "on", timeout=10, sleep=clock.sleep, clock=lambda: clock.now)
    assert isinstance(result["cp-1"], PowerError)
    assert "cp-1: still off 10s after asking for on" == str(result["cp-1"])


def test_start_sets_pxe_before_powering_on_and_leaves_a_running_node_alone():
    off, running = StandIn("a"), StandIn("b", power_state="on")
    assert power.start(off) == "network boot once, powering on" and off.calls == ["pxe_once", "on"]
    assert power.start(running).startswith("already on") and running.calls == ["pxe_once"]


def test_cycle_waits_for_off_before_starting():
    way = StandIn("a", power_state="on", delay=3)
    power.cycle(way, timeout=30)
    assert way.calls == ["off", "pxe_once", "on"]


def test_power_on_goes_on_after_a_failure_and_names_the_node(monkeypatch):
    from tests.unit.test_cluster_checks import problems_for as parse
    monkeypatch.setenv("P", "x")
    cluster, _ = parse(edit("power: manual", "power: redfish").replace(
        "arch: amd64}", "arch: amd64, bmc: {address: 10.0.0.50, username: a, password_env: P}}"))
    ways = {n.name: StandIn(n.name, fail_on="on" if n.name == "cp-2" else "") for n in cluster.nodes}
    monkeypatch.setattr(power, "way_for", lambda c, node: ways[node.name])
    said, asked = [], []
    failures = power.power_on(cluster, ask=asked.append, say=said.append)
    assert [f.node for f in failures] == ["cp-2"]
    assert "power on failed: cp-2: BMC stand-in answered 400 to on; power cp-2 on by hand" in said
    assert all(ways[n].calls == ["pxe_once", "on"] for n in ways)
    assert asked == []


def test_after_install_points_bmc_nodes_at_their_disk(monkeypatch):
    monkeypatch.setenv("P", "x")
    cluster, _ = problems_for(with_bmc("{address: 10.0.0.50, username: a, password_env: P}"))
    way = StandIn("cp-1")
    monkeypatch.setattr(power, "way_for", lambda c, node: way)
    assert power.after_install(cluster, cluster.nodes[0]).boot == "hdd (continuous)"
    assert power.after_install(cluster, cluster.nodes[1]) is None  # manual: nothing to set
    assert way.calls == ["boot_disk"]


# -- how each way words its answers ------------------------------------------------------------------
def test_addresses_to_endpoints():
    assert base_url("10.0.0.50:8443") == "https://10.0.0.50:8443"
    assert base_url("http://127.0.0.1:8000/") == "http://127.0.0.1:8000"
    assert host_port("10.0.0.50") == ("10.0.0.50", 623)
    assert host_port("[fd00::1]:6230") == ("fd00::1", 6230)


def ipmi_answering(monkeypatch, output: str) -> Ipmi:
    way = Ipmi("cp-1", Bmc(address="10.0.0.50", username="admin", password_env="P"), password="x")
    monkeypatch.setattr(way, "_run", lambda *args: output)
    return way


BOOTPARAM = """Boot parameter version: 1
Boot parameter 5 is valid/unlocked
Boot parameter data: 8004000000
 Boot Flags :
   - Boot Flag Valid
   - Options apply to {scope}
   - BIOS PC Compatible (legacy) boot
   - Boot Device Selector : {device}
"""


@pytest.mark.parametrize("scope, device, expected", [
    ("only next boot", "Force PXE", "pxe (once)"),
    ("all future boots", "Force Boot from default Hard-Drive", "disk (continuous)"),
    ("only next boot", "No override", "none")])
def test_ipmi_boot_override_read_from_bootparam_5(monkeypatch, scope, device, expected):
    assert ipmi_answering(monkeypatch, BOOTPARAM.format(scope=scope, device=device))._boot_override() == expected


@pytest.mark.parametrize("stderr, said", [
    ("Error: Unable to establish IPMI v2 / RMCP+ session\n", "no IPMI session with BMC 10.0.0.50:623"),
    ("RAKP 2 message indicates an error : unauthorized name\nError: Unable to establish IPMI v2 / RMCP+ session",
     "refused user 'admin'"),
    ("Chassis Power Control: Cycle failed: Invalid command", "does not support `chassis power cycle`")])
def test_ipmi_failures_are_explained(stderr, said):
    way = Ipmi("cp-1", Bmc(address="10.0.0.50", username="admin", password_env="P"), password="x")
    assert said in way._explain(stderr, ("chassis", "power", "cycle"))


def test_a_plain_http_bmc_is_a_warning_at_its_address(monkeypatch):
    """Issue #33, item 8: Basic auth over http:// hands the BMC password to any sniffer."""
    monkeypatch.setenv("BN_TEST_BMC_PASS", "x")
    text = with_bmc("{address: 'http://10.0.0.50:8000', username: a, password_env: BN_TEST_BMC_PASS}")
    cluster, problems = problems_for(text)
    [warning] = [p for p in problems if "plain HTTP" in p.message]
    assert cluster is not None and warning.severity == "warning"
    assert warning.path == "nodes[0].bmc.address" and warning.line == line_of(text, "http://10.0.0.50")
    https = with_bmc("{address: 'https://10.0.0.50', username: a, password_env: BN_TEST_BMC_PASS}")
    assert not [p for p in problems_for(https)[1] if "plain HTTP" in p.message]
