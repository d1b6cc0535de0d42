"""Powering nodes through a real Redfish server someone else wrote: sushy-tools' emulator with its
fake driver (Basic auth; a system named in the URL answers 307 to its UUID path; power changes
land 1-11 s after the request, so everything here polls with a deadline)."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest
from typer.testing import CliRunner

from app.cli import app
from app.cluster.model import Bmc
from app.events import Event, append_event
from app.power import PowerError, after_install, start, wait_for
from app.power.redfish import Redfish
from app.power.watch import LogTail, watch_installs
from tests.support.bmc import PASSWORD, USER, Emulator, FakeSystem, free_port, sushy_emulator
from tests.support.paths import EXAMPLE

SYSTEMS = {name: FakeSystem(f"0000000{i}-aaaa-bbbb-cccc-00000000000{i}", name, f"52:54:00:00:00:{i}{i}")
           for i, name in enumerate(["reader", "mover", "booter", "cli-1", "cli-2"], start=1)}
ONLY = FakeSystem("99999999-aaaa-bbbb-cccc-999999999999", "only", "52:54:00:00:00:99")
DEADLINE = 40.0  # the fake driver applies a change within 11 s; this leaves room on a loaded machine
runner = CliRunner()


@pytest.fixture(scope="module")
def emulators(tmp_path_factory):
    binary = sushy_emulator()
    if binary is None:
        pytest.skip("needs sushy-emulator (pip: sushy-tools, a test dependency)")
    base = tmp_path_factory.mktemp("redfish")
    rack = Emulator(base / "rack", list(SYSTEMS.values()), binary)
    try:
        single = Emulator(base / "single", [ONLY], binary)
    except Exception:
        rack.stop()
        raise
    yield rack, single
    rack.stop()
    single.stop()


def redfish(url: str, system: str | None = None, password: str = PASSWORD, node: str = "cp-1") -> Redfish:
    return Redfish(node, Bmc(address=url, username=USER, password_env="UNUSED", system=system), password=password)


def test_a_system_named_by_its_name_is_found_at_its_uuid(emulators):
    rack, _ = emulators
    way = redfish(rack.url, system="reader")
    assert way.status().power == "off"
    assert way.location() == f"Redfish {rack.url}/redfish/v1/Systems/{SYSTEMS['reader'].uuid}"


def test_the_only_system_is_the_default(emulators):
    _, single = emulators
    way = redfish(single.url)
    way.status()
    assert way.location().endswith(f"/redfish/v1/Systems/{ONLY.uuid}")


def test_several_systems_need_bmc_system(emulators):
    rack, _ = emulators
    with pytest.raises(PowerError) as caught:
        redfish(rack.url).status()
    assert caught.value.node == "cp-1"
    assert f"has {len(SYSTEMS)} systems" in caught.value.message and "set bmc.system" in caught.value.message


def test_a_plain_http_bmc_addressed_as_https_is_explained(emulators):
    rack, _ = emulators
    with pytest.raises(PowerError, match="write bmc.address as http://host:port"):
        redfish(rack.url.replace("http://", "https://")).status()


def test_power_on_then_off_lands_later_and_is_polled(emulators):
    rack, _ = emulators
    way = redfish(rack.url, system="mover")
    assert start(way) == "network boot once, powering on"
    assert wait_for({"cp-1": way}, "on", DEADLINE)["cp-1"].power == "on"
    way.off()
    assert wait_for({"cp-1": way}, "off", DEADLINE)["cp-1"].power == "off"


def test_pxe_override_then_disk(emulators):
    rack, _ = emulators
    way = redfish(rack.url, system="booter")
    way.pxe_once()
    # The emulator stores Once as Continuous (../shared/notes/lab-bmc.md): why after_install exists.
    assert way.status().boot == "pxe (continuous)"
    way.boot_disk()
    assert way.status().boot == "hdd (continuous)"


def test_a_wrong_password_is_a_401_naming_node_and_user(emulators):
    rack, _ = emulators
    with pytest.raises(PowerError) as caught:
        redfish(rack.url, system="reader", password="wrong-password", node="worker-9").status()
    text = str(caught.value)
    assert text.startswith("worker-9: ") and "401" in text and f"user '{USER}'" in text
    assert "wrong-password" not in text


def test_an_unknown_system_lists_the_ones_there(emulators):
    rack, _ = emulators
    with pytest.raises(PowerError) as caught:
        redfish(rack.url, system="nope").status()
    assert "has no system /redfish/v1/Systems/nope" in caught.value.message
    assert SYSTEMS["cli-1"].uuid in caught.value.message


@pytest.fixture(scope="module")
def tls_emulator(tmp_path_factory):
    binary = sushy_emulator()
    if binary is None:
        pytest.skip("needs sushy-emulator (pip: sushy-tools, a test dependency)")
    emulator = Emulator(tmp_path_factory.mktemp("redfish-tls"), [ONLY], binary, tls=True)
    yield emulator
    emulator.stop()


def test_an_untrusted_certificate_is_refused_unless_verify_tls_is_off(tls_emulator):
    bmc = Bmc(address=tls_emulator.url, username=USER, password_env="UNUSED")
    with pytest.raises(PowerError) as caught:
        Redfish("cp-1", bmc, password=PASSWORD).status()
    assert f"the certificate of BMC {tls_emulator.url} is not trusted" in caught.value.message
    assert "verify_tls: false" in caught.value.message
    unchecked = Redfish("cp-1", bmc.model_copy(update={"verify_tls": False}), password=PASSWORD)
    assert unchecked.status().power == "off"


def test_an_unreachable_bmc_says_so():
    with pytest.raises(PowerError, match=r"cp-1: cannot reach BMC http://127.0.0.1:\d+"):
        redfish(f"http://127.0.0.1:{free_port()}").status()


# -- through cluster.yaml and the command line -------------------------------------------------------
def bmc_config(url: str, directory: Path, wrong_password_for: str | None = None) -> Path:
    """The example cluster with cli-1 and cli-2 as cp-1 and worker-1 (Redfish at `url`), the others
    manual; `wrong_password_for` (a system) gets a password file the BMC refuses. (tests/k8s/
    test_init_real.py runs `init` with it against a real API server.)"""
    secret, wrong = directory / "bmc.pass", directory / "wrong.pass"
    for path, text in ((secret, PASSWORD), (wrong, "not-the-password")):
        path.write_text(text + "\n")
        path.chmod(0o600)
    # Without api_server_name: --online would also ask DNS for it, which this test is not about.
    text = "\n".join(x for x in EXAMPLE.read_text().splitlines() if "api_server_name:" not in x) + "\n"
    for node, system in (("cp-1", "cli-1"), ("worker-1", "cli-2")):
        line = next(x for x in text.splitlines() if x.startswith(f"  - {{name: {node},"))
        password = wrong if system == wrong_password_for else secret
        text = text.replace(line, line[:-1] + f", power: redfish,\n     bmc: {{address: '{url}', username: {USER},"
                                                f" password_file: {password}, system: {system}}}}}")
    path = directory / "cluster.yaml"
    path.write_text(text)
    return path


@pytest.fixture
def config(emulators, tmp_path):
    rack, _ = emulators
    return bmc_config(rack.url, tmp_path)


def test_validate_online_logs_in_and_reports_what_it_found(config, emulators):
    rack, _ = emulators
    result = runner.invoke(app, ["--config", str(config), "validate", "--online"])
    assert result.exit_code == 0, result.output
    assert (f"cp-1: Redfish {rack.url}/redfish/v1/Systems/{SYSTEMS['cli-1'].uuid}: power off" in result.output)
    assert f"worker-1: Redfish {rack.url}/redfish/v1/Systems/{SYSTEMS['cli-2'].uuid}" in result.output
    assert PASSWORD not in result.output


def test_validate_online_reports_a_refused_login_at_the_node(config):
    (config.parent / "bmc.pass").write_text("not-the-password\n")
    result = runner.invoke(app, ["--config", str(config), "validate", "--online"])
    assert result.exit_code == 1
    line = next(i for i, x in enumerate(config.read_text().splitlines(), 1) if "system: cli-1" in x)
    assert f"{config}:{line}:" in result.output and "nodes[0].bmc: cp-1: BMC" in result.output
    assert "(401)" in result.output and "not-the-password" not in result.output


def test_validate_points_at_a_missing_password_file(config, tmp_path):
    (tmp_path / "bmc.pass").unlink()
    result = runner.invoke(app, ["--config", str(config), "validate"])
    assert result.exit_code == 1
    assert f"nodes[0].bmc.password_file: cannot read {tmp_path / 'bmc.pass'}: No such file" in result.output


def test_power_command_on_status_and_manual_nodes(config, tmp_path):
    out = ["--config", str(config), "--output", str(tmp_path / "out")]
    result = runner.invoke(app, ["power", "on", "worker-1", "--timeout", str(DEADLINE), *out])
    assert result.exit_code == 0, result.output
    assert "worker-1: network boot once, powering on" in result.output and "worker-1: on" in result.output
    result = runner.invoke(app, ["power", "status", "cp-1", "worker-1", *out])
    assert result.exit_code == 0, result.output
    rows = {line.split()[0]: line.split() for line in result.output.splitlines()}
    assert rows["worker-1"][1:4] == ["redfish", "power", "on"] and "pxe" in rows["worker-1"][-2]
    assert rows["cp-1"][1:4] == ["redfish", "power", "off"]
    result = runner.invoke(app, ["power", "on", "cp-2", *out])
    assert result.exit_code == 1 and "cp-2: power: manual: power it on by hand" in result.output
    result = runner.invoke(app, ["power", "status", "cp-9", *out])
    assert result.exit_code == 1 and "no node named cp-9" in result.output


def test_installed_bmc_nodes_get_their_disk_while_init_watches(config, tmp_path):
    """init's hook: the watcher follows events.jsonl; an `installed` of a Redfish node sets its next
    boots to the disk, other nodes are not touched."""
    from app.cluster import load_cluster
    cluster, _ = load_cluster(config)
    output = tmp_path / "out"
    output.mkdir()
    append_event(output, Event("installed", mac="52:54:00:00:00:11", node="cp-1", source="node"))  # before: ignored
    way = redfish(config_url(cluster), system="cli-2", node="worker-1")
    way.pxe_once()
    stop, said, handled = threading.Event(), [], []
    tail = LogTail(output / "events.jsonl")  # from the end, as init starts it before powering on
    thread = threading.Thread(target=lambda: handled.extend(
        watch_installs(cluster, output / "events.jsonl", stop, said.append, poll=0.1, tail=tail)))
    thread.start()
    try:
        for mac, name in (("52:54:00:00:00:22", "worker-2"), ("52:54:00:00:00:21", "worker-1")):
            append_event(output, Event("installed", mac=mac, node=name, source="node"))
        deadline = threading.Event()
        for _ in range(int(DEADLINE / 0.1)):
            if said:
                break
            deadline.wait(0.1)
    finally:
        stop.set()
        thread.join(DEADLINE)
    assert handled == ["worker-1"]
    assert said == ["worker-1 installed; next boots from its disk: boot override now hdd (continuous)"]
    assert way.status().boot == "hdd (continuous)"


def config_url(cluster) -> str:
    return next(n.bmc.address for n in cluster.nodes if n.bmc)


def test_after_install_of_a_manual_node_touches_nothing(config):
    from app.cluster import load_cluster
    cluster, _ = load_cluster(config)
    assert after_install(cluster, cluster.nodes[1]) is None
    assert os.environ.get("UNUSED") is None  # the ways above were given their password directly
