"""The disks a machine reports in its first install callback, through the real HTTP server: bounded,
stripped of control characters, escaped on the page, kept in the node's state (and across a
compaction), and shown by `status`, `show` and `discover`; a report of the wrong shape is refused
whole and records nothing."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from app.cli import app
from app.events import EventLog
from app.events.disks import MAX_DISKS, MAX_FIELD
from tests.support.serve import bearer, pxe_and_install_config, running, write_json

MAC = "52:54:00:00:00:0a"
HTML = '<img src=x onerror=alert(1)>'
GOOD = {"name": "nvme0n1", "id": "nvme-Samsung_SSD_980_1TB_S64A", "size": 1000204886016, "removable": False,
        "transport": "nvme", "model": "Samsung SSD 980 1TB"}
CDROM = {"name": "sr0", "id": "usb-AMI_Virtual_CDROM0", "size": 1073741824, "removable": True, "transport": "usb",
         "model": "Virtual CDROM"}
HOSTILE = {"name": "sdz\x1b\x07", "id": "x" * 1_000, "size": "huge", "removable": "yes",
           "transport": ["usb"], "model": f"{HTML}\u202e\x9b31m"}


@pytest.fixture
def data_dir(tmp_path):
    d = tmp_path / "matchbox"
    write_json(d / "profiles/n.json", {"id": "n", "ignition_id": "n.ign", "boot": {"kernel": "/assets/k"}})
    write_json(d / "groups/n.json", {"id": "n", "profile": "n", "selector": {"mac": MAC}, "metadata": {"name": "cp-1"}})
    write_json(d / "ignition/n.ign", {"ignition": {"version": "3.4.0"}})
    return d


async def report(http, credential: str, body: dict) -> int:
    async with http.post("/events", json={"mac": MAC, **body}, headers=bearer(credential)) as r:
        return r.status


async def test_a_hostile_report_is_bounded_and_escaped(data_dir, tmp_path):
    disks = [GOOD, CDROM, HOSTILE] + [{**GOOD, "name": f"sd{i}"} for i in range(60)]  # within the 16 KiB body cap
    async with running(data_dir, tmp_path) as (http, ctx):
        _, credential = await pxe_and_install_config(http, MAC)
        assert await report(http, credential, {"phase": "installing", "disks": disks}) == 200
        state = ctx.events.nodes[MAC]
        assert len(state.disks) == MAX_DISKS
        assert state.disks[0].path == "/dev/disk/by-id/nvme-Samsung_SSD_980_1TB_S64A"
        odd = state.disks[2]
        assert odd.name == "sdz" and len(odd.id) == MAX_FIELD and odd.size == 0
        assert odd.removable is False and odd.transport == "" and odd.model == HTML + "31m"
        async with http.get("/status") as r:
            reported = (await r.json())["nodes"][0]["disks"]
        assert reported[1] == CDROM and len(reported) == MAX_DISKS
        async with http.get("/") as r:
            page = await r.text()
        assert "<img" not in page and "&lt;img src=x onerror=alert(1)&gt;" in page
        assert "\x1b" not in page and "\u202e" not in page and "32 disks reported" in page
        assert "(not for install_disk: removable)" in page
    line = json.loads((tmp_path / "events.jsonl").read_text().splitlines()[-1])
    assert line["detail"]["disks_dropped"] == len(disks) - MAX_DISKS
    again = EventLog(tmp_path, {MAC: "cp-1"})  # read back from the file: the same disks
    assert again.nodes[MAC].disks == state.disks


@pytest.mark.parametrize("disks", ["sda sdb", [["sda"]], {"name": "sda"}, [1, 2]])
async def test_a_report_of_the_wrong_shape_is_refused_whole(data_dir, tmp_path, disks):
    async with running(data_dir, tmp_path) as (http, ctx):
        _, credential = await pxe_and_install_config(http, MAC)
        before = (tmp_path / "events.jsonl").read_text()
        assert await report(http, credential, {"phase": "installing", "disks": disks}) == 400
        assert ctx.events.nodes[MAC].disks == [] and ctx.events.nodes[MAC].phase == "install-ignition"
        assert (tmp_path / "events.jsonl").read_text() == before


async def test_a_refused_disk_shows_what_to_set_instead(data_dir, tmp_path):
    """The install refused its disk: `status` lists the disks under the table, `discover` as
    install_disk candidates, `show` under the node's configs; a compaction keeps them."""
    async with running(data_dir, tmp_path) as (http, ctx):
        _, credential = await pxe_and_install_config(http, MAC)
        assert await report(http, credential, {"phase": "installing", "disks": [GOOD, CDROM, HOSTILE]}) == 200
        assert await report(http, credential, {"phase": "failed", "message": "refusing to install to /dev/sr0"}) == 200
        snapshot = ctx.events.nodes[MAC].snapshot_event()
    compacted = EventLog(tmp_path / "nowhere", {MAC: "cp-1"})
    compacted.record(snapshot)
    assert compacted.nodes[MAC].disks == ctx.events.nodes[MAC].disks
    runner = CliRunner()
    where = ["--config", str(tmp_path / "no-cluster.yaml"), "--output", str(tmp_path)]  # from the log alone
    status = runner.invoke(app, [*where, "status"], env={"COLUMNS": "400"})  # one disk, one line
    assert status.exit_code == 0, status.output
    assert "reported 3 disks:" in status.output
    assert "/dev/disk/by-id/nvme-Samsung_SSD_980_1TB_S64A  nvme-Samsung_SSD_980_1TB_S64A (nvme0n1): 1.0 TB, " \
           "nvme, Samsung SSD 980 1TB" in status.output
    assert "usb-AMI_Virtual_CDROM0 (sr0): 1.1 GB, usb, Virtual CDROM, removable (not for install_disk: " \
           "removable)" in status.output
    assert "\x1b" not in status.output and "\x9b" not in status.output
    discover = runner.invoke(app, [*where, "discover"])
    assert discover.exit_code == 0, discover.output
    assert "#   cp-1: /dev/disk/by-id/nvme-Samsung_SSD_980_1TB_S64A" in discover.output
    assert all(line.startswith("#") for line in discover.output.splitlines())  # still pastes as YAML
    for stage in ("cp-1-install.ign", "cp-1.ign"):  # what `generate` would have written
        write_json(data_dir / "ignition" / stage, {"ignition": {"version": "3.4.0"}})
    show = runner.invoke(app, [*where, "show", "cp-1"])
    assert show.exit_code == 0, show.output
    assert "=== cp-1: disks it reported" in show.output
    assert "/dev/disk/by-id/usb-AMI_Virtual_CDROM0  usb-AMI_Virtual_CDROM0 (sr0)" in show.output
    assert "\x1b" not in show.output


@pytest.mark.parametrize("headers, status", [({}, 401), (bearer("0" * 64), 403)])
async def test_a_report_without_this_installs_credential_records_no_disks(data_dir, tmp_path, headers, status):
    """Anyone on the LAN may post to /events naming a node's MAC (the status page lists them): the disks
    `discover` would then suggest for install_disk must come from the machine being installed only."""
    planted = {**GOOD, "id": "usb-Attacker_Stick_0", "name": "sdq"}
    async with running(data_dir, tmp_path) as (http, ctx):
        await pxe_and_install_config(http, MAC)
        async with http.post("/events", json={"mac": MAC, "phase": "installing", "disks": [planted]},
                             headers=headers) as r:
            assert r.status == status
        assert ctx.events.nodes[MAC].disks == []
    assert "Attacker_Stick" not in (tmp_path / "events.jsonl").read_text()
