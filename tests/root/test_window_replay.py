"""The red team's window attacks, on a real L2 (a bridge, real ARP, the kernel's neighbour table and
`serve` as a real process with the default link binding): a victim installs, an attacker takes the
victim's MAC and address afterwards (a replay) or contests first and then moves to the window's
address. Neither gets a config; both are alerts naming both machines; `reinstall` clears it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.root.lan import events, serving
from tests.root.netns import require_root_tools
from tests.support.paths import REPO
from tests.support.processes import wait_for
from tests.support.secrets import cluster_secrets, leaked
from tests.support.serve import credential_in

SERVER_IP, PORT = "10.233.0.2", 8080
URL = f"http://{SERVER_IP}:{PORT}"
CP1, CP2 = "52:54:00:00:00:11", "52:54:00:00:00:12"
VICTIM_IP, ATTACKER_IP, ATTACKER_MAC = "10.233.0.11", "10.233.0.66", "52:54:00:66:66:66"


def alerts(out: Path, mac: str) -> list[dict]:
    return [e for e in events(out) if e["kind"] == "alert" and e.get("mac") == mac]


@pytest.fixture(scope="module")
def appliance():
    require_root_tools()
    with serving("rp", "10.233.0", f"{SERVER_IP}:{PORT}") as (lan, out, config):
        lan.add("victim", CP1, VICTIM_IP)
        lan.add("attacker", ATTACKER_MAC, ATTACKER_IP)
        yield lan, out, config


def reinstall(config: Path, out: Path, node: str) -> None:
    run = subprocess.run([sys.executable, "-m", "app", "--config", str(config), "--output", str(out), "reinstall",
                          node], cwd=REPO, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr


def test_a_replay_of_the_victims_mac_and_address_after_its_configs_went_out_gets_nothing(appliance):
    lan, out, config = appliance
    secrets = cluster_secrets(out)
    lan.become("victim", CP1, VICTIM_IP)
    status, script = lan.http("victim", f"{URL}/ipxe?mac={CP1}")
    assert status == 200 and b"kernel " in script
    status, install = lan.http("victim", f"{URL}/ignition?mac={CP1}")
    assert status == 200
    credential = credential_in(install)
    status, final = lan.http("victim", f"{URL}/ignition?mac={CP1}&os=installed",
                             {"Authorization": f"Bearer {credential}"})
    assert status == 200 and "ca.key" in leaked(final, secrets)

    # The victim reboots into its new disk; the attacker takes its MAC and its PXE-time address.
    lan.unplug("victim")
    lan.become("attacker", CP1, VICTIM_IP)
    lan.forget_neighbours()
    status, script = lan.http("attacker", f"{URL}/ipxe?mac={CP1}")
    assert status == 200 and b"kernel " not in script and b"reinstall" in script  # held, no installer
    got = [lan.http("attacker", f"{URL}/ignition?mac={CP1}"),
           lan.http("attacker", f"{URL}/ignition?mac={CP1}&os=installed")]
    assert [s for s, _ in got] == [403, 403]
    assert not any(leaked(body, secrets) for _, body in got)
    held = [a for a in alerts(out, CP1) if a["detail"].get("route") == "ipxe"]
    assert held and held[-1]["detail"]["window_address"] == VICTIM_IP and held[-1]["detail"]["remote"] == VICTIM_IP

    # Only `reinstall` clears it (serve follows the log it writes): then the machine may boot again.
    reinstall(config, out, "cp-1")
    wait_for(lambda: b"kernel " in lan.http("attacker", f"{URL}/ipxe?mac={CP1}")[1], what="the reinstall to be seen")


def test_a_contested_window_is_not_reopened_from_its_first_address(appliance):
    lan, out, config = appliance
    secrets = cluster_secrets(out)
    lan.become("victim", CP2, "10.233.0.12")
    lan.become("attacker", CP2, ATTACKER_IP)  # the spoofer sends as cp-2 from its own address
    assert lan.http("victim", f"{URL}/ipxe?mac={CP2}")[0] == 200
    lan.http("attacker", f"{URL}/ipxe?mac={CP2}")
    assert lan.http("victim", f"{URL}/ignition?mac={CP2}")[0] == 403  # contested: nobody gets it

    lan.unplug("victim")
    lan.become("attacker", CP2, "10.233.0.12")  # and moves to the window's own address
    lan.forget_neighbours()
    status, script = lan.http("attacker", f"{URL}/ipxe?mac={CP2}")
    assert status == 200 and b"kernel " not in script
    got = [lan.http("attacker", f"{URL}/ignition?mac={CP2}"),
           lan.http("attacker", f"{URL}/ignition?mac={CP2}&os=installed")]
    assert [s for s, _ in got] == [403, 403]
    assert not any(leaked(body, secrets) for _, body in got)
