"""Secure provisioning over real sockets (threat-model.md): an attacker on a second loopback address
knows every MAC and races real nodes; it must get no key, token or certificate key from any route
or MAC spelling, and its callbacks must change nothing. The real nodes still install.

Loopback has no neighbour table, so these tests pin requests to machines by address (the fallback
binding); tests/root/test_secure_lan.py does the same on a real L2 network with real ARP.
"""

from __future__ import annotations

import itertools
import json

import pytest

from app.events import CALLBACK_PHASES
from tests.support.secrets import cluster_secrets, leaked
from tests.support.serve import bearer, client_from, credential_in, running

NODES = {"cp-1": "52:54:00:00:00:11", "cp-2": "52:54:00:00:00:12", "worker-1": "52:54:00:00:00:21"}
ADDRESS = {"cp-1": "127.0.0.11", "cp-2": "127.0.0.12", "worker-1": "127.0.0.21"}
ATTACKER, ATTACKER_MAC = "127.0.0.2", "52:54:00:66:66:66"


def neighbour_table() -> dict[str, str]:
    """What the kernel's table would hold on the provisioning L2: each node's address -> its MAC, and
    the attacker's own MAC (tests/root/test_secure_lan.py has the real table)."""
    return {**{ADDRESS[name]: mac for name, mac in NODES.items()}, ATTACKER: ATTACKER_MAC}


def spellings(mac: str) -> list[str]:
    digits = mac.replace(":", "")
    return [mac, mac.upper(), mac.replace(":", "-"), mac.replace(":", "-").upper(),
            ".".join(digits[i:i + 4] for i in range(0, 12, 4)), mac.replace(":", "%3A")]


def attack_paths(mac: str) -> list[str]:
    paths = []
    for spelled in spellings(mac):
        for query in (f"mac={spelled}&os=installed", f"mac={spelled}", f"MAC={spelled}&OS=installed",
                      f"os=installed&mac={spelled}", f"mac={spelled}&os=installed&os=other",
                      f"mac={spelled}&os=installed&uuid=x&hostname=cp-1"):
            paths += [f"/ignition?{query}", f"/generic?{query}", f"/metadata?{query}", f"/ipxe?{query}"]
    return paths + ["/status", "/", "/metrics", "/boot.ipxe", "/assets/", "/ignition", "/ignition?os=installed"]


async def try_everything(session, macs, credentials=("", "x" * 43)) -> list[tuple[str, int, bytes]]:
    seen = []
    for mac in macs:
        for path, credential in itertools.product(attack_paths(mac), credentials):
            headers = bearer(credential) if credential else {}
            async with session.get(path, headers=headers) as r:
                seen.append((path, r.status, await r.read()))
    return seen


@pytest.fixture
def tree(output):
    return output  # a generated tree of cluster.yaml.example, copied per test


async def test_attacker_with_every_mac_gets_no_secret_and_changes_nothing(tree):
    secrets = cluster_secrets(tree)
    async with running(tree / "matchbox", tree, neighbours=neighbour_table()) as (http, ctx), \
            client_from(http, ATTACKER) as attacker, client_from(http, ADDRESS["cp-1"]) as node:
        # cp-1 PXE-boots for real (its window opens, bound to its address) and fetches its install config.
        async with node.get(f"/ipxe?mac={NODES['cp-1']}") as r:
            assert r.status == 200
        async with node.get(f"/ignition?mac={NODES['cp-1']}") as r:
            install = await r.read()
        credential = credential_in(install)
        # The attacker, knowing every MAC (from /status), tries every route and spelling.
        results = await try_everything(attacker, NODES.values())
        for path, status, body in results:
            assert not leaked(body, secrets), (path, status)
        assert not any(path.startswith("/ignition") and status == 200 for path, status, _ in results)
        # ...and every progress report it can forge.
        before = {mac: (s.phase, s.installed) for mac, s in ctx.events.nodes.items()}
        for mac, phase in itertools.product(NODES.values(), sorted(CALLBACK_PHASES)):
            for headers in ({}, bearer("guess"), {"Authorization": "Basic x"}):
                async with attacker.post("/events", json={"mac": mac, "phase": phase}, headers=headers) as r:
                    assert r.status in (401, 403), (mac, phase, headers)
        assert {mac: (s.phase, s.installed) for mac, s in ctx.events.nodes.items()} == before
        assert ctx.metrics.bad_callbacks == len(NODES) * len(CALLBACK_PHASES) * 3
        # The real node still completes its install: final config with its credential, then `installed`.
        async with node.get(f"/ignition?mac={NODES['cp-1']}&os=installed", headers=bearer(credential)) as r:
            final = await r.read()
            assert r.status == 200 and "ca.key" in leaked(final, secrets)
        async with node.post("/events", json={"mac": NODES["cp-1"], "phase": "installed"},
                             headers=bearer(credential)) as r:
            assert r.status == 200
        assert ctx.events.nodes[NODES["cp-1"]].installed
    alerts = [json.loads(line) for line in (tree / "events.jsonl").read_text().splitlines()
              if '"kind":"alert"' in line]
    assert alerts and all(a["detail"]["remote"] == ATTACKER for a in alerts)


async def test_each_config_goes_out_once_and_only_inside_the_window(tree):
    secrets = cluster_secrets(tree)
    mac = NODES["worker-1"]
    async with running(tree / "matchbox", tree, neighbours=neighbour_table()) as (http, ctx), \
            client_from(http, ADDRESS["worker-1"]) as node:
        async with node.get(f"/ignition?mac={mac}") as r:
            assert r.status == 403  # no PXE boot yet: no window
        install, credential = await _pxe_and_install(node, mac)
        async with node.get(f"/ignition?mac={mac}") as r:
            assert r.status == 403 and "already served" in await r.text()
        async with node.get(f"/ignition?mac={mac}&os=installed", headers=bearer(credential)) as r:
            final = await r.read()
            assert r.status == 200 and "bootstrap-token" in leaked(final, secrets)
            assert "ca.key" not in leaked(final, secrets)  # a worker: token and CA pin only
        async with node.get(f"/ignition?mac={mac}&os=installed", headers=bearer(credential)) as r:
            assert r.status == 403  # once
        # The final config's own credential authenticates the installed system's reports.
        async with node.post("/events", json={"mac": mac, "phase": "installed"}, headers=bearer(credential)) as r:
            assert r.status == 200
        later = credential_in(final)
        assert later != credential
        async with node.post("/events", json={"mac": mac, "phase": "joined"}, headers=bearer(credential)) as r:
            assert r.status == 403  # the install credential is not the installed system's
        async with node.post("/events", json={"mac": mac, "phase": "joined"}, headers=bearer(later)) as r:
            assert r.status == 200
        async with node.get(f"/ignition?mac={mac}&os=installed", headers=bearer(credential)) as r:
            assert r.status == 403  # installed closed the window
        assert ctx.metrics.alerts


async def test_the_window_times_out(tree):
    mac = NODES["cp-2"]
    async with running(tree / "matchbox", tree, window=60, neighbours=neighbour_table()) as (http, ctx), \
            client_from(http, ADDRESS["cp-2"]) as node:
        clock = [1_000_000_000.0]
        ctx.clock = lambda: clock[0]
        async with node.get(f"/ipxe?mac={mac}") as r:
            assert r.status == 200
        # The window opened at the event's wall-clock time; a minute later it is closed.
        clock[0] = ctx.events.nodes[mac].window.opened + 61
        async with node.get(f"/ignition?mac={mac}") as r:
            assert r.status == 403 and "no install window" in await r.text()


async def test_a_second_machine_booting_as_a_node_contests_the_window(tree):
    """A spoofer with the node's MAC on the wire, from another address: a loud failure, not a theft."""
    mac = NODES["cp-2"]
    table = neighbour_table()
    async with running(tree / "matchbox", tree, neighbours=table) as (http, ctx), \
            client_from(http, ATTACKER) as attacker, client_from(http, ADDRESS["cp-2"]) as node:
        async with node.get(f"/ipxe?mac={mac}"):
            pass
        table[ATTACKER] = mac
        async with attacker.get(f"/ipxe?mac={mac}") as r:
            assert r.status == 200  # a boot script holds no secret...
        async with node.get(f"/ignition?mac={mac}") as r:
            assert r.status == 403 and "second machine" in await r.text()  # ...but nobody gets a config
        assert ctx.events.nodes[mac].window.contested
        assert any(a.detail["reason"].startswith("a second machine") for a in ctx.events.recent_alerts)


async def test_a_replayed_boot_after_the_configs_went_out_gets_nothing_and_the_node_still_installs(tree):
    """The red team's replay: after cp-1 received both configs and before it reported `installed`, a
    machine with cp-1's MAC and PXE-time address PXE-boots. It gets neither installer nor config; the
    real node's reports still count (tests/root/test_window_replay.py does this on a real L2)."""
    secrets = cluster_secrets(tree)
    mac = NODES["cp-1"]
    async with running(tree / "matchbox", tree, neighbours=neighbour_table()) as (http, ctx), \
            client_from(http, ADDRESS["cp-1"]) as node, client_from(http, ADDRESS["cp-1"]) as replay:
        _, credential = await _pxe_and_install(node, mac)
        async with node.get(f"/ignition?mac={mac}&os=installed", headers=bearer(credential)) as r:
            assert r.status == 200
            final_credential = credential_in(await r.read())
        received = []
        for path in (f"/ipxe?mac={mac}", f"/ignition?mac={mac}", f"/ignition?mac={mac}&os=installed"):
            async with replay.get(path) as r:
                received.append((r.status, await r.read()))
        assert [status for status, _ in received] == [200, 403, 403]
        assert b"kernel" not in received[0][1] and not any(leaked(body, secrets) for _, body in received)
        async with node.post("/events", json={"mac": mac, "phase": "installed"}, headers=bearer(credential)) as r:
            assert r.status == 200  # the window was not replaced: the real node's credential still counts
        async with node.post("/events", json={"mac": mac, "phase": "joined"},
                             headers=bearer(final_credential)) as r:
            assert r.status == 200
        assert ctx.events.nodes[mac].installed


async def test_the_neighbour_table_binds_a_boot_to_the_machine(tree):
    """With the sender's MAC known (on our L2), a boot asked for another MAC opens no window, and the
    install config follows the machine, not its address (it changes between iPXE and the installer)."""
    mac = NODES["cp-2"]
    neighbours = {"127.0.0.1": mac, ATTACKER: ATTACKER_MAC}
    async with running(tree / "matchbox", tree, neighbours=neighbours) as (node, ctx), \
            client_from(node, ATTACKER) as attacker:
        async with attacker.get(f"/ipxe?mac={mac}") as r:
            assert r.status == 403
        assert ctx.events.nodes.get(mac) is None or ctx.events.nodes[mac].window is None
        async with node.get(f"/ipxe?mac={mac}") as r:
            assert r.status == 200
        # The same machine, now with another address (one no other MAC held: that would be a claim,
        # tests/integration/test_red_team.py).
        neighbours["127.0.0.99"] = mac
        async with client_from(node, "127.0.0.99") as moved, moved.get(f"/ignition?mac={mac}") as r:
            assert r.status == 200


async def test_without_a_neighbour_entry_no_window_opens(tree):
    """Link binding (the default): a request from an address the neighbour table does not know (not on
    the provisioning L2) opens no window and gets no config."""
    async with running(tree / "matchbox", tree, neighbours={}) as (node, ctx):
        async with node.get(f"/ipxe?mac={NODES['cp-1']}") as r:
            assert r.status == 403 and "neighbour table" in await r.text()
        async with node.get(f"/ignition?mac={NODES['cp-1']}") as r:
            assert r.status == 403


async def test_address_binding_is_first_boot_wins_and_second_is_loud(tree):
    """`--bind address` (routed sites): the first machine to PXE-boot as a node owns its window; a
    second one from another address is refused and raises an alert (the README says this is weaker)."""
    mac = NODES["worker-1"]
    async with running(tree / "matchbox", tree, bind="address") as (http, ctx), \
            client_from(http, ADDRESS["worker-1"]) as node, client_from(http, ATTACKER) as attacker:
        _, credential = await _pxe_and_install(node, mac)
        async with attacker.get(f"/ignition?mac={mac}") as r:
            assert r.status == 403
        async with attacker.get(f"/ignition?mac={mac}&os=installed") as r:
            assert r.status == 403
        async with attacker.get(f"/ipxe?mac={mac}") as r:
            assert b"kernel" not in await r.read()
        window = ctx.events.nodes[mac].window
        assert window.install_served and window.address == ADDRESS["worker-1"]  # not renewed for the attacker
        [alert] = [a for a in ctx.events.recent_alerts if a.detail.get("route") == "ipxe"]
        assert (alert.detail["remote"], alert.detail["window_address"]) == (ATTACKER, ADDRESS["worker-1"])


async def test_foreign_matchbox_data_keeps_matchbox_behaviour(tree):
    async with running(tree / "matchbox", tree, own_tree=False) as (node, _):
        async with node.get(f"/ignition?mac={NODES['cp-1']}&os=installed") as r:
            assert r.status == 200  # Matchbox mode: no windows (the README says so)


async def _pxe_and_install(http, mac):
    async with http.get(f"/ipxe?mac={mac}") as r:
        assert r.status == 200
    async with http.get(f"/ignition?mac={mac}") as r:
        body = await r.read()
        assert r.status == 200
    return body, credential_in(body)
