"""app/serve/boot/service.py: each boot route's transaction (decide, render, record) against the
in-memory store and a real event log, without HTTP; and the in-memory store checked against the
`Store` protocol the service reads through."""

from __future__ import annotations

import inspect
import json

from app.events import EventKind, EventLog, Phase
from app.serve.boot import policy, store
from app.serve.boot.service import MAX_DISCOVERED, BootService, Download
from app.serve.boot.services import Services
from app.serve.settings import Bind, BootSettings
from tests.support.fakes import MemoryStore, node_store

MAC, OTHER, ADDRESS = "52:54:00:00:00:11", "52:54:00:66:66:66", "10.0.0.50"
IGNITION = json.dumps({"ignition": {"version": "3.4.0"}}).encode()


def service(tmp_path, fake: MemoryStore | None = None, **settings) -> BootService:
    fake = fake or node_store({"cp-1": MAC})
    fake.files[("ignition", "cp-1-install.ign")] = IGNITION
    events = EventLog(tmp_path, fake.known_nodes)
    events.open()
    credentials = iter(f"cred-{i}" for i in range(100))
    return BootService(BootSettings(**settings), Services(fake, events, new_credential=lambda: next(credentials),
                                                          clock=lambda: 1_000_000.0))


def request(route: str, mac: str = MAC, link: str | None = MAC, credential: str | None = None,
            now: float = 1_000_000.0, **labels) -> policy.Request:
    return policy.Request(route, {"mac": mac, **labels}, ADDRESS, link, credential, now)


def test_the_memory_store_is_a_store():
    fake = MemoryStore()
    assert isinstance(fake, store.Store)
    for name in ("select", "profile", "known_nodes", "text", "served_ignition"):
        protocol = inspect.signature(getattr(store.Store, name))
        assert inspect.signature(getattr(MemoryStore, name)).parameters.keys() == protocol.parameters.keys(), name


def test_ipxe_renders_the_decision_and_records_its_window(tmp_path):
    boot = service(tmp_path)
    reply = boot.ipxe(request("ipxe"))
    assert reply.status == 200 and reply.body.startswith("#!ipxe\nkernel /assets/k")
    assert boot.events.state(MAC).window.address == ADDRESS


def test_a_served_config_is_recorded_with_its_size_without_touching_the_decision(tmp_path, monkeypatch):
    boot = service(tmp_path)
    boot.ipxe(request("ipxe"))
    decided = []
    original = policy.decide_config
    monkeypatch.setattr(policy, "decide_config", lambda *a: decided.append(original(*a)) or decided[-1])
    reply = boot.config(request("ignition"), f"mac={MAC}")
    assert reply.status == 200 and reply.content_type == "application/json"
    [served] = [e for e in json.loads(reply.body)["storage"]["files"]]
    assert served["contents"]["source"] == "data:,cred-0"
    recorded = boot.events.state(MAC).window
    assert recorded.install_served and recorded.install_credential == policy.digest("cred-0")
    assert "bytes" not in decided[0].events[0].detail  # the policy's events stay as decided


def test_alerts_are_counted_always_and_logged_once_a_period(tmp_path):
    boot = service(tmp_path)
    for _ in range(3):
        assert boot.ipxe(request("ipxe", link=OTHER)).status == 403  # another machine's MAC
    assert boot.metrics.alerts[policy.SPOOFED_PXE] == 3
    assert boot.events.alerts[policy.SPOOFED_PXE] == 3  # the operator's view counts every one (issue #33)...
    logged = (tmp_path / "events.jsonl").read_text().count(f'"reason":"{policy.SPOOFED_PXE}"')
    assert logged == 1  # ...while the log gets one line a period


def test_unknown_machines_are_kept_once_each_and_only_so_many(tmp_path):
    boot = service(tmp_path, bind=Bind.address)
    macs = [f"52:54:01:00:{i // 256:02x}:{i % 256:02x}" for i in range(MAX_DISCOVERED + 5)]
    for mac in macs + macs[:3]:
        assert "no node in cluster.yaml" in boot.ipxe(request("ipxe", mac=mac, link=None)).body
    assert len(boot.events.discovered) == MAX_DISCOVERED


def test_grub_and_metadata_go_through_the_policy(tmp_path):
    fake = node_store({"cp-1": MAC})
    boot = service(tmp_path, fake)
    assert boot.grub(request("grub", mac=OTHER)).status == 404
    assert "linuxefi" in boot.grub(request("grub")).body
    reply = boot.metadata(request("metadata"), f"mac={MAC}")
    assert reply.status == 200 and b"NAME=cp-1\n" in reply.body and reply.headers == {"Content-Type": "plain/text"}
    assert [e.kind for e in boot.events.recent_alerts] == []
    assert boot.events.nodes.get(MAC) is None  # /metadata is no phase


def test_callbacks_need_the_installs_credential(tmp_path):
    boot = service(tmp_path)
    boot.ipxe(request("ipxe"))
    boot.config(request("ignition"), f"mac={MAC}")
    assert boot.callback(request("events"), MAC, "installing", "").status == 401
    assert boot.callback(request("events", credential="wrong"), MAC, "installing", "").status == 403
    assert boot.metrics.bad_callbacks == 2
    assert boot.callback(request("events", credential="cred-0"), MAC, "installing", "").body == "ok\n"
    assert boot.events.state(MAC).phase == Phase.INSTALLING


def test_a_known_nodes_download_is_its_boot_asset_and_an_anonymous_one_is_throttled(tmp_path):
    boot = service(tmp_path)
    boot.ipxe(request("ipxe"))
    boot.downloaded(Download(ADDRESS, "/assets/k.vmlinuz", "", 100, 0.1))
    for _ in range(3):
        boot.downloaded(Download("10.0.0.99", "/assets/k.vmlinuz", "", 100, 0.1))
    boot.downloaded(Download(ADDRESS, "/assets/readme.txt", "", 5, 0.1))  # not a boot asset: no event
    kinds = [json.loads(line)["kind"] for line in (tmp_path / "events.jsonl").read_text().splitlines()]
    assert kinds.count(EventKind.BOOT_ASSET) == 1 and kinds.count(EventKind.HTTP) == 1
    assert boot.metrics.bytes_sent == 400 and boot.events.state(MAC).phase == Phase.KERNEL
