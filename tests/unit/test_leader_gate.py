"""What a standby's HTTP server answers (app/serve/cluster/gate.py), in front of serve's real
application: nothing from the boot API (no config, no secret, no event), 503 with Retry-After;
health always; readiness on the leader only. And `serve --leader-elect`'s options are checked."""

from __future__ import annotations

import os

from aiohttp.test_utils import TestClient, TestServer

from app.events import EventLog
from app.serve.app import build_app
from app.serve.boot.services import Services
from app.serve.boot.store import MatchboxStore
from app.serve.cluster.gate import standby_gate
from app.serve.settings import AppSettings, Bind, BootSettings
from tests.support.assets import serve_options
from tests.support.processes import cli
from tests.support.serve import write_json

MAC = "52:54:00:00:00:11"


def data_dir(root):
    write_json(root / "profiles" / "install.json", {"id": "install", "ignition_id": "install.ign",
                                                     "boot": {"kernel": "/k", "initrd": ["/i"], "args": []}})
    (root / "ignition").mkdir(parents=True)
    (root / "ignition" / "install.ign").write_text('{"ignition": {"version": "3.4.0"}}')
    write_json(root / "groups" / "cp-1.json", {"id": "cp-1", "profile": "install", "selector": {"mac": MAC}})
    return root


async def client(tmp_path, leading: list[bool]) -> tuple[TestClient, EventLog]:
    store = MatchboxStore(data_dir(tmp_path / "matchbox"))
    events = EventLog(tmp_path, store.known_nodes, only_known=True)
    events.open()
    app = build_app(AppSettings(store.root,
                                boot=BootSettings(bind=Bind.address)), Services(store, events))
    app.middlewares.insert(0, standby_gate(lambda: leading[0], lambda: "replica-b", 4.2))
    test = TestClient(TestServer(app, host="127.0.0.1"))
    await test.start_server()
    return test, events


async def test_a_standby_serves_nothing_but_health(tmp_path):
    leading = [False]
    http, events = await client(tmp_path, leading)
    try:
        for path in (f"/ipxe?mac={MAC}", f"/ignition?mac={MAC}", "/status", "/metrics", "/assets/x", "/"):
            r = await http.get(path)
            assert r.status == 503, path
            assert r.headers["Retry-After"] == "5"  # the lease duration, rounded up: when a takeover may be done
            assert "replica-b holds the Lease" in await r.text()
        assert (await http.get("/healthz")).status == 200
        assert await (await http.get("/healthz")).text() == "standby\n"
        assert (await http.get("/readyz")).status == 503
        assert (tmp_path / "events.jsonl").read_bytes() == b""  # a standby writes no event

        leading[0] = True  # the same server, now leading: the boot API answers, and records
        r = await http.get(f"/ipxe?mac={MAC}")
        assert r.status == 200 and "kernel" in await r.text()
        assert (await http.get("/readyz")).status == 200
        assert await (await http.get("/healthz")).text() == "leader\n"
        assert b'"kind":"ipxe"' in (tmp_path / "events.jsonl").read_bytes()

        leading[0] = False  # lost: refused on the very next request
        assert (await http.get(f"/ignition?mac={MAC}")).status == 503
    finally:
        await http.close()
        events.close()


def test_leader_elect_options_are_checked(tmp_path):
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text("apiVersion: v1\nkind: Config\n")
    base = ["--output", str(tmp_path / "out"), "serve", "--listen", "127.0.0.1:1"]
    run = cli(*base, "--leader-elect", "--kubeconfig", str(kubeconfig), "--renew-deadline", "20")
    assert run.returncode == 1 and "renew deadline 20.0: must be above 0 and below the lease duration" in run.stderr
    run = cli(*base, "--leader-elect", "--kubeconfig", str(kubeconfig), "--workers", "2")
    assert run.returncode == 1 and "--workers 1" in run.stderr
    run = cli(*base, "--kubeconfig", str(kubeconfig))
    assert run.returncode == 1 and "--kubeconfig is for --leader-elect" in run.stderr
    run = cli(*base, "--leader-elect", "--kubeconfig", str(tmp_path / "missing"))
    assert run.returncode == 1 and "no such file" in run.stderr
    assert not (tmp_path / "out").exists()  # refused before anything was made


def test_without_a_kubeconfig_outside_a_pod_serve_says_so(tmp_path):
    (tmp_path / "out" / "matchbox").mkdir(parents=True)
    run = cli("--output", str(tmp_path / "out"), "serve", "--listen", "127.0.0.1:1",
              *serve_options(tmp_path / "assets"), "--leader-elect", env={"PATH": os.environ["PATH"]})
    assert run.returncode == 1, run.stderr
    assert "cannot load the in-cluster config (not in a pod? pass --kubeconfig)" in run.stderr
    assert not (tmp_path / "out" / "events.jsonl").exists() and not (tmp_path / "out" / "serve.json").exists()
