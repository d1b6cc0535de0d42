"""The red team's attacks on state an attacker can create, the operator's view and callback fields
(issue #33, items 4, 6 and 8), through HTTP and the CLI on loopback: the attacker and the nodes are
loopback addresses and a dict stands in for the kernel's neighbour table (loopback has none;
tests/root/test_red_team_lan.py does it on a real L2).

What must hold: made-up MACs never become nodes, however they are spelled into a request; `/`,
`/status` and the event log stay bounded; a real node's boot answer stays fast during a flood; the
status page and `status` name the first and the last sender of each alert group; malformed callbacks
are 4xx, never a traceback; the final config's credential dies once the node joined."""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time

import pytest

from tests.integration.conftest import runner
from tests.support.paths import EXAMPLE
from tests.support.serve import bearer, client_from, credential_in, pxe_and_install_config, running

NODES = {"cp-1": "52:54:00:00:00:11", "cp-2": "52:54:00:00:00:12", "cp-3": "52:54:00:00:00:13",
         "worker-1": "52:54:00:00:00:21", "worker-2": "52:54:00:00:00:22"}
ADDRESS = {name: f"127.0.0.{10 + i}" for i, name in enumerate(NODES)}
ATTACKER, ATTACKER_MAC = "127.0.0.2", "52:54:00:66:66:66"
CP1 = NODES["cp-1"]
MAX_DISCOVERED = 256  # unknown machines the appliance keeps (README: Security)


def neighbour_table() -> dict[str, str]:
    return {**{ADDRESS[name]: mac for name, mac in NODES.items()}, ATTACKER: ATTACKER_MAC}


def made_up_macs(count: int, seed: int = 33) -> list[str]:
    rng = random.Random(seed)
    return [":".join(f"{b:02x}" for b in [0x02, *rng.randbytes(5)]) for _ in range(count)]  # unicast, local


async def fetch_all(session, paths: list[str], concurrency: int = 32) -> list[int]:
    """GET every path, `concurrency` at a time: the statuses."""
    gate = asyncio.Semaphore(concurrency)

    async def one(path: str) -> int:
        async with gate, session.get(path) as r:
            await r.read()
            return r.status
    return await asyncio.gather(*(one(p) for p in paths))


@pytest.fixture
def tree(output):
    """The example's tree plus a Matchbox default group (no selector): a stranger's PXE boot matches a
    profile, the way many Matchbox setups catch unknown machines."""
    (output / "matchbox" / "groups" / "default.json").write_text(json.dumps(
        {"id": "default", "profile": "worker-2-install", "selector": {}}))
    return output


# -- item 3: an ARP/NDP claim moves the table's entry ------------------------------------------------------
async def test_a_claim_of_the_victims_mac_behind_the_attackers_address_contests_the_window(tree):
    """What an ARP request (or NDP advertisement) carrying the victim's MAC in its payload does to a real
    kernel, sent from the attacker's own MAC: the entry for the attacker's address names the victim's
    MAC (tests/root/test_red_team_lan.py sends the real packets). It won cp-1's keys; now it contests."""
    mac = NODES["cp-1"]
    table = neighbour_table()
    async with running(tree / "matchbox", tree, neighbours=table) as (http, ctx), \
            client_from(http, ADDRESS["cp-1"]) as node, client_from(http, ATTACKER) as attacker:
        async with node.get(f"/ipxe?mac={mac}") as r:
            assert r.status == 200
        async with attacker.get("/status") as r:  # the attacker's connection: its own MAC in the table
            assert r.status == 200
        table[ATTACKER] = mac  # the claim
        for path in (f"/ignition?mac={mac}", f"/ignition?mac={mac}&os=installed"):
            async with attacker.get(path) as r:
                assert r.status == 403, path
        async with attacker.get(f"/ipxe?mac={mac}") as r:
            assert "kernel " not in await r.text()  # held: no installer for anyone
        async with node.get(f"/ignition?mac={mac}") as r:
            assert r.status == 403  # contested: nobody gets it until `reinstall`
        async with http.get("/status") as r:
            groups = {g["reason"][:30]: g for g in (await r.json())["alert_groups"]}
    claim = groups["the MAC behind this address ch"]
    assert (claim["first_sender"], claim["first_mac"]) == (ATTACKER, mac)
    assert ctx.events.nodes[mac].window.contested
    logged = [json.loads(line) for line in (tree / "events.jsonl").read_text().splitlines() if "forged ARP" in line]
    assert logged[0]["detail"]["earlier_link_mac"] == ATTACKER_MAC  # both MACs the appliance saw


# -- item 4: one MAC label per request -----------------------------------------------------------------
@pytest.mark.parametrize("query", [f"MAC=02:00:00:00:00:01&mac={CP1}", f"mac={CP1}&MAC=02:00:00:00:00:01",
                                   f"mac={CP1}&mac={CP1}", f"mac={CP1}&Mac={CP1.upper()}",
                                   f"mac=02:00:00:00:00:01&mac={CP1}&os=installed"])
async def test_a_request_with_two_mac_labels_is_refused(tree, query):
    async with running(tree / "matchbox", tree, neighbours=neighbour_table()) as (http, ctx), \
            client_from(http, ATTACKER) as attacker:
        for route in ("/ipxe", "/ignition", "/generic", "/metadata", "/grub"):
            async with attacker.get(f"{route}?{query}") as r:
                assert r.status == 400, (route, r.status)
                assert "one mac" in (await r.text()).lower()
        async with attacker.get("/status") as r:
            status = await r.json()
    assert sorted(n["mac"] for n in status["nodes"]) == sorted(NODES.values())
    assert status["unknown_machines"] == []


# -- item 4: a flood of made-up machines ---------------------------------------------------------------
FLOOD = 1500  # per kind of request below; the red team sent 100,000 (the bound does not depend on it)


async def test_a_flood_of_made_up_machines_makes_no_node_and_stays_bounded(tree):
    fakes = made_up_macs(FLOOD)
    async with running(tree / "matchbox", tree, neighbours=neighbour_table()) as (http, ctx), \
            client_from(http, ATTACKER) as attacker:
        paths = [p for mac in fakes for p in (f"/ipxe?MAC={mac}&mac={CP1}", f"/ipxe?mac={mac}",
                                              f"/ipxe?mac={mac}&uuid=x", f"/ignition?mac={mac}",
                                              f"/metadata?mac={mac}")]
        statuses = await fetch_all(attacker, paths)
        assert 500 not in statuses
        for mac in fakes[:50]:
            async with attacker.post("/events", json={"mac": mac, "phase": "installed"}) as r:
                assert r.status == 404
        async with attacker.get("/status") as r:
            status = await r.json()
        async with attacker.get("/") as r:
            page = await r.read()
    assert sorted(n["mac"] for n in status["nodes"]) == sorted(NODES.values())  # no made-up node
    assert len(status["unknown_machines"]) <= MAX_DISCOVERED
    assert len(page) < 512 * 1024, len(page)  # the page of 5 nodes and 256 strangers; was 56.9 MB at 100k
    lines = (tree / "events.jsonl").read_bytes().count(b"\n")
    assert lines < MAX_DISCOVERED + 200, lines  # discoveries (capped) and throttled alerts, not one per request


async def test_a_real_node_is_answered_quickly_during_a_flood(tree):
    """A bound measured here, generous on purpose: 2 s. iPXE waits far longer for an answer, but an
    operator would call a 2 s boot answer broken; the red team measured 14.1 s with six concurrent
    /status requests over 100,000 made-up nodes, and a flood must not get anywhere near that."""
    fakes = made_up_macs(FLOOD, seed=34)
    flood = [p for mac in fakes for p in (f"/ipxe?MAC={mac}&mac={CP1}", f"/ipxe?mac={mac}")]
    flood += ["/status", "/"] * 200
    random.Random(35).shuffle(flood)
    async with running(tree / "matchbox", tree, neighbours=neighbour_table()) as (http, ctx), \
            client_from(http, ATTACKER) as attacker, client_from(http, ADDRESS["worker-1"]) as node:
        attack = asyncio.ensure_future(fetch_all(attacker, flood, concurrency=48))
        worst = 0.0
        answers = 0
        while not attack.done() or answers < 5:
            started = time.perf_counter()
            async with node.get("/boot.ipxe") as r:
                assert r.status == 200
                await r.read()
            worst = max(worst, time.perf_counter() - started)
            answers += 1
        await attack
    print(f"worst /boot.ipxe answer during the flood: {worst * 1000:.1f} ms over {answers} requests")
    assert worst < 2.0


async def test_the_status_view_is_built_off_the_event_loop(tree, monkeypatch):
    """A /status build that does not finish (held here on an Event) must not hold up a boot answer:
    the node is answered while the build is still running. Built on the loop, it was answered only
    after (the red team's six /status requests delayed a real node's /boot.ipxe by 14.1 s)."""
    import threading

    from app.status import view
    real, started, release, done = view.build, threading.Event(), threading.Event(), threading.Event()

    def held(*args, **kw):
        started.set()
        release.wait(10)
        done.set()
        return real(*args, **kw)
    monkeypatch.setattr(view, "build", held)
    async with running(tree / "matchbox", tree, neighbours=neighbour_table()) as (http, _):
        status = asyncio.ensure_future(http.get("/status"))
        try:
            await asyncio.to_thread(started.wait, 10)
            async with http.get("/boot.ipxe") as r:
                assert r.status == 200
            answered_during_build = not done.is_set()
        finally:
            release.set()
        async with await status as r:
            assert r.status == 200
    assert answered_during_build


# -- item 6: the operator's view of repeated contests --------------------------------------------------
async def test_repeated_contests_name_the_attacker_first_and_the_victim_last(tree):
    mac = NODES["cp-2"]
    table = neighbour_table()
    async with running(tree / "matchbox", tree, neighbours=table) as (http, ctx), \
            client_from(http, ATTACKER) as attacker, client_from(http, ADDRESS["cp-2"]) as node:
        async with node.get(f"/ipxe?mac={mac}") as r:
            assert r.status == 200
        table[ATTACKER] = mac  # the spoofer sends as cp-2 from its own address
        for _ in range(20):
            async with attacker.get(f"/ipxe?mac={mac}") as r:
                await r.read()
        async with node.get(f"/ignition?mac={mac}") as r:
            assert r.status == 403
        async with http.get("/status") as r:
            status = await r.json()
        async with http.get("/") as r:
            page = await r.text()
    groups = {g["reason"][:20]: g for g in status["alert_groups"]}
    contested, held = groups["a second machine ask"], groups["PXE boot for a node "]
    assert contested["count"] == 2  # the attacker's first boot, then the victim's refused config
    assert (contested["first_sender"], contested["first_mac"]) == (ATTACKER, mac)
    assert (contested["last_sender"], contested["last_mac"]) == (ADDRESS["cp-2"], mac)
    assert held["count"] == 19  # every repeat counted, though only the first is logged (a minute's throttle)
    assert (held["first_sender"], held["last_sender"]) == (ATTACKER, ATTACKER)
    assert ATTACKER in page and ADDRESS["cp-2"] in page
    shown = runner.invoke(__import__("app.cli", fromlist=["app"]).app,
                          ["--config", str(EXAMPLE), "--output", str(tree), "status"], env={"COLUMNS": "250"})
    assert shown.exit_code == 0, shown.output
    line = next(line for line in shown.output.splitlines() if "a second machine" in line)
    assert f"first from {ATTACKER} ({mac})" in line and f"last from {ADDRESS['cp-2']} ({mac})" in line


# -- item 8: callback fields ---------------------------------------------------------------------------
@pytest.mark.parametrize("body", [{"mac": CP1, "phase": []}, {"mac": CP1, "phase": {}}, {"mac": CP1, "phase": 1},
                                  {"mac": CP1, "phase": None}, {"mac": [], "phase": "installed"},
                                  {"mac": {"a": 1}, "phase": "installed"}, {"mac": 5, "phase": "failed"},
                                  {"mac": CP1, "phase": "failed", "message": {"x": 1}},
                                  {"mac": CP1, "phase": "failed", "message": ["x"]}])
async def test_malformed_callback_fields_are_4xx_and_one_log_line(tree, body, caplog):
    caplog.set_level(logging.WARNING)
    async with running(tree / "matchbox", tree, neighbours=neighbour_table()) as (http, ctx), \
            client_from(http, ATTACKER) as attacker:
        for credential in ("", "x" * 43, "", "x" * 43):
            async with attacker.post("/events", json=body, headers=bearer(credential) if credential else {}) as r:
                assert 400 <= r.status < 500, (body, r.status, await r.text())
    records = [r for r in caplog.records if r.name.startswith("bootstrap_node")]
    assert not any(r.levelno >= logging.ERROR or r.exc_info for r in records), records
    assert len(records) <= 1  # throttled: one line, however many


# -- item 8: the final config's credential after `joined` and after the window -------------------------
async def _installed_node(http, mac: str) -> str:
    """PXE, install config, final config, `installed`: the final config's own credential."""
    _, credential = await pxe_and_install_config(http, mac)
    async with http.get(f"/ignition?mac={mac}&os=installed", headers=bearer(credential)) as r:
        final = await r.read()
        assert r.status == 200
    async with http.post("/events", json={"mac": mac, "phase": "installed"}, headers=bearer(credential)) as r:
        assert r.status == 200
    return credential_in(final)


async def test_the_final_credential_dies_once_the_node_joined(tree):
    mac = NODES["worker-1"]
    async with running(tree / "matchbox", tree, bind="address") as (http, ctx):
        later = await _installed_node(http, mac)
        for phase in ("kubeadm", "joined"):
            async with http.post("/events", json={"mac": mac, "phase": phase}, headers=bearer(later)) as r:
                assert r.status == 200, phase
        for phase in ("joined", "failed", "kubeadm"):
            async with http.post("/events", json={"mac": mac, "phase": phase, "message": "forged"},
                                 headers=bearer(later)) as r:
                assert r.status == 403, phase  # a sniffed credential is spent
        assert ctx.events.nodes[mac].phase == "joined" and not ctx.events.nodes[mac].error


async def test_the_final_credential_dies_after_the_window(tree):
    mac = NODES["worker-2"]
    async with running(tree / "matchbox", tree, bind="address", window=600) as (http, ctx):
        clock = [time.time()]  # events carry the wall clock's time
        ctx.clock = lambda: clock[0]
        later = await _installed_node(http, mac)
        async with http.post("/events", json={"mac": mac, "phase": "kubeadm"}, headers=bearer(later)) as r:
            assert r.status == 200
        clock[0] += 601
        async with http.post("/events", json={"mac": mac, "phase": "joined"}, headers=bearer(later)) as r:
            assert r.status == 403
