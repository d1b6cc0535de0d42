"""The Matchbox HTTP contract (spec §1-6), over a real socket: every §6 behaviour is a test."""

from __future__ import annotations

import json
from functools import partial

import pytest

from app.serve.boot.labels import parse_labels
from tests.support.serve import running as running_appliance
from tests.support.serve import write_json

# The Matchbox contract is for foreign data dirs (`--matchbox-data`): served the way Matchbox does,
# without install windows. The appliance's own tree is tested in test_serve_boot_features/test_secure_*.
running = partial(running_appliance, own_tree=False)

BOOT = {"kernel": "/image/kernel", "initrd": ["/image/initrd_a", "/image/initrd_b"], "args": ["a=b", "c"]}
IPXE = "#!ipxe\nkernel /image/kernel a=b c\ninitrd /image/initrd_a\ninitrd /image/initrd_b\nboot\n"
GRUB = ('default=0\nfallback=1\ntimeout=1\nmenuentry "CoreOS (EFI)" {\necho "Loading kernel"\n'
        'linuxefi "/image/kernel" a=b c\necho "Loading initrd"\ninitrdefi  "/image/initrd_a" "/image/initrd_b"\n}\n'
        'menuentry "CoreOS (BIOS)" {\necho "Loading kernel"\nlinux "/image/kernel" a=b c\necho "Loading initrd"\n'
        'initrd  "/image/initrd_a" "/image/initrd_b"\n}\n')
BOOT_IPXE = ("#!ipxe\nchain ipxe?uuid=${uuid}&mac=${mac:hexhyp}&domain=${domain}&hostname=${hostname}"
             "&serial=${serial}&arch=${buildarch:uristring}\n")
# An empty config as Matchbox serves it: Go's encoding/json of Ignition's v3_4 types keeps every
# struct-typed field (test_matchbox_parity.py checks this against real Matchbox).
EMPTY_CONFIG = {"ignition": {"config": {"replace": {"verification": {}}}, "proxy": {}, "security": {"tls": {}},
                             "timeouts": {}, "version": "3.4.0"},
                "kernelArguments": {}, "passwd": {}, "storage": {}, "systemd": {}}
BUTANE_TEMPLATE = """variant: flatcar
version: 1.1.0
storage:
  files:
    - path: /etc/metadata
      contents:
        inline: "{{.uuid}} {{.pod_network}} {{.request.query.foo}} {{.request.raw_query}}"
"""


@pytest.fixture
def data_dir(tmp_path):
    d = tmp_path / "data"
    write_json(d / "profiles/p1.json", {"id": "p1", "boot": BOOT, "ignition_id": "raw.ign", "generic_id": "gen.txt"})
    write_json(d / "profiles/old.json", {"id": "old", "boot": BOOT, "ignition_id": "old.ign"})
    write_json(d / "profiles/tmpl.json", {"id": "tmpl", "ignition_id": "t.yaml"})
    write_json(d / "profiles/noboot.json", {"id": "noboot"})
    write_json(d / "profiles/missing-ign.json", {"id": "missing-ign", "boot": BOOT, "ignition_id": "nope.ign"})
    write_json(d / "groups/uuid.json", {"id": "uuid", "profile": "p1", "selector": {"uuid": "a1b2c3d4"},
                                        "metadata": {"pod_network": "10.2.0.0/16"}})
    write_json(d / "groups/old.json", {"id": "old", "profile": "old", "selector": {"uuid": "old"}})
    write_json(d / "groups/tmpl.json", {"id": "tmpl", "profile": "tmpl", "selector": {"uuid": "tmpl"},
                                        "metadata": {"pod_network": "10.2.0.0/16", "some": {"nested": {"data": "v"}},
                                                     "num": 3, "yes": True, "no": False, "big": 1000000}})
    write_json(d / "groups/noboot.json", {"id": "noboot", "profile": "noboot", "selector": {"uuid": "noboot"}})
    write_json(d / "groups/ghost.json", {"id": "ghost", "profile": "ghost", "selector": {"uuid": "ghost"}})
    write_json(d / "groups/missing.json", {"id": "missing", "profile": "missing-ign", "selector": {"uuid": "mi"}})
    write_json(d / "groups/mac.json", {"id": "mac", "profile": "p1", "selector": {"mac": "52:da:00:89:d8:10"}})
    write_json(d / "groups/mac-os.json", {"id": "mac-os", "profile": "old",
                                          "selector": {"mac": "52:da:00:89:d8:10", "os": "installed"}})
    write_json(d / "groups/bad-selector.json", {"id": "bad", "profile": "p1", "selector": {"uuid": 7}})
    (d / "groups/not-json.json").write_text("{")
    (d / "ignition").mkdir()
    (d / "ignition/raw.ign").write_text(json.dumps({"ignition": {"version": "3.4.0"}, "storage": {
        "files": [{"path": "/a", "contents": {"source": "data:,a&b"}}]}}))
    (d / "ignition/old.ign").write_text(json.dumps({"ignition": {"version": "3.1.0"}}))
    (d / "ignition/t.yaml").write_text(BUTANE_TEMPLATE)
    (d / "generic").mkdir()
    (d / "generic/gen.txt").write_text("uuid={{.uuid}} net={{.pod_network}}\n")
    return d


@pytest.mark.parametrize("query,labels", [
    ("", {}),                                                              # 1
    ("uuid=a1b2c3", {"uuid": "a1b2c3"}),                                   # 1
    ("mac=52:da:00:89:d8:10", {"mac": "52:da:00:89:d8:10"}),               # 2
    ("mac=52-da-00-89-d8-10", {"mac": "52:da:00:89:d8:10"}),               # 2
    ("UUID=a1b2c3&MAC=52:DA:00:89:d8:10", {"UUID": "a1b2c3", "MAC": "52:da:00:89:d8:10"}),  # 3
    ("mac=x:x:x:x:x:x", {}),                                               # 4
    ("uuid=a&uuid=b", {"uuid": "a"}),
    ("mac=52da.0089.d810", {"mac": "52:da:00:89:d8:10"}),
])
def test_labels_from_query(query, labels):
    assert parse_labels(query) == labels


async def test_boot_ipxe_exact_text_any_method(data_dir, tmp_path):           # 5
    async with running(data_dir, tmp_path) as (http, _):
        for method, path in [("GET", "/boot.ipxe"), ("POST", "/boot.ipxe?x=1"), ("GET", "/boot.ipxe.0")]:
            async with http.request(method, path) as r:
                assert r.status == 200 and await r.text() == BOOT_IPXE
                assert r.headers["Content-Type"] == "text/plain; charset=utf-8"


async def test_ipxe_script_shape(data_dir, tmp_path):                          # 6, 9
    async with running(data_dir, tmp_path) as (http, _):
        async with http.get("/ipxe?uuid=a1b2c3d4") as r:
            assert r.status == 200 and await r.text() == IPXE
            assert r.headers["Content-Type"] == "text/plain; charset=utf-8"


async def test_ipxe_without_profile_or_boot_is_404(data_dir, tmp_path):       # 7, 11
    async with running(data_dir, tmp_path, strict=True) as (http, _):
        for query in ["uuid=ghost", "uuid=noboot"]:
            async with http.get(f"/ipxe?{query}") as r:
                assert r.status == 404 and await r.text() == "404 page not found\n"
                assert r.headers["Content-Type"] == "text/plain; charset=utf-8"


async def test_grub_exact_text(data_dir, tmp_path):                           # 8
    async with running(data_dir, tmp_path) as (http, _):
        async with http.get("/grub?uuid=a1b2c3d4") as r:
            assert r.status == 200 and await r.text() == GRUB


async def test_no_labels_and_empty_store_never_match(data_dir, tmp_path):     # 10
    empty = tmp_path / "empty"
    empty.mkdir()
    async with running(data_dir, tmp_path) as (http, _):
        async with http.get("/ignition") as r:
            assert r.status == 404
    async with running(empty, tmp_path / "o2") as (http, _):
        async with http.get("/ignition?uuid=a1b2c3d4") as r:
            assert r.status == 404


async def test_raw_ignition_served_and_upgraded(data_dir, tmp_path):          # 12
    async with running(data_dir, tmp_path) as (http, _):
        async with http.get("/ignition?uuid=a1b2c3d4") as r:
            body = await r.read()
            assert r.status == 200 and r.headers["Content-Type"] == "application/json"
            assert not body.endswith(b"\n") and b"data:,a\\u0026b" in body
            assert json.loads(body)["ignition"]["version"] == "3.4.0"
        async with http.get("/ignition?uuid=old") as r:
            assert r.status == 200 and json.loads(await r.read()) == EMPTY_CONFIG


async def test_butane_template_with_selector_metadata_and_request(data_dir, tmp_path):  # 13
    async with running(data_dir, tmp_path) as (http, _):
        async with http.get("/ignition?uuid=tmpl&foo=some-param&bar=b") as r:
            assert r.status == 200
            config = json.loads(await r.read())
    source = config["storage"]["files"][0]["contents"]["source"]
    from urllib.parse import unquote
    assert unquote(source.split(",", 1)[1]) == "tmpl 10.2.0.0/16 some-param uuid=tmpl&foo=some-param&bar=b"


async def test_missing_key_missing_file_and_no_group_are_404(data_dir, tmp_path):  # 14
    (data_dir / "ignition/t.yaml").write_text(BUTANE_TEMPLATE.replace(".uuid", ".not_there"))
    async with running(data_dir, tmp_path) as (http, _):
        for query in ["uuid=tmpl", "uuid=mi", "uuid=nobody"]:
            async with http.get(f"/ignition?{query}") as r:
                assert r.status == 404 and await r.text() == "404 page not found\n", query
        async with http.get("/generic?uuid=tmpl") as r:
            assert r.status == 404


async def test_generic_is_rendered(data_dir, tmp_path):
    async with running(data_dir, tmp_path) as (http, _):
        async with http.get("/generic?uuid=a1b2c3d4") as r:
            assert r.status == 200 and await r.text() == "uuid=a1b2c3d4 net=10.2.0.0/16\n"


async def test_metadata_env(data_dir, tmp_path):                                # 15
    async with running(data_dir, tmp_path) as (http, _):
        async with http.get("/metadata?uuid=tmpl&mac=52-DA-00-89-D8-10&foo=bar") as r:
            assert r.status == 200 and r.headers["Content-Type"] == "plain/text"
            lines = set((await r.text()).splitlines())
    assert {"SOME_NESTED_DATA=v", "NUM=3", "YES=true", "NO=false", "UUID=tmpl", "POD_NETWORK=10.2.0.0/16",
            "REQUEST_QUERY_MAC=52:da:00:89:d8:10", "REQUEST_QUERY_FOO=bar", "BIG=1e+06",  # Go: float64, %v
            "REQUEST_RAW_QUERY=uuid=tmpl&mac=52-DA-00-89-D8-10&foo=bar"} <= lines


async def test_more_selector_pairs_win(data_dir, tmp_path):
    async with running(data_dir, tmp_path, strict=True) as (http, _):
        async with http.get("/ignition?mac=52:da:00:89:d8:10&os=installed&uuid=tmpl") as r:
            assert r.status == 200 and json.loads(await r.read()) == EMPTY_CONFIG
        async with http.get("/ipxe?mac=52-da-00-89-d8-10") as r:
            assert r.status == 200 and await r.text() == IPXE  # mac group (p1), not mac+os


async def test_root_and_unknown_paths(data_dir, tmp_path):
    async with running(data_dir, tmp_path, strict=True) as (http, _):
        async with http.get("/") as r:
            assert r.status == 200 and await r.text() == "matchbox\n"
        for path in ["/nope", "/ipxe/extra", "/%2e%2e/etc/passwd"]:
            async with http.get(path) as r:
                assert r.status == 404 and await r.text() == "404 page not found\n", path
        async with http.delete("/ipxe?uuid=a1b2c3d4") as r:
            assert r.status == 200  # every method, never 405


async def test_edits_on_disk_apply_to_the_next_request(data_dir, tmp_path):
    async with running(data_dir, tmp_path, recheck=0.0) as (http, _):
        async with http.get("/ipxe?uuid=new") as r:
            assert r.status == 404
        write_json(data_dir / "groups/new.json", {"id": "new", "profile": "p1", "selector": {"uuid": "new"}})
        async with http.get("/ipxe?uuid=new") as r:
            assert r.status == 200
        boot = dict(BOOT, args=["changed"])
        write_json(data_dir / "profiles/p1.json", {"id": "p1", "boot": boot, "ignition_id": "raw.ign"})
        async with http.get("/ipxe?uuid=new") as r:
            assert "kernel /image/kernel changed" in await r.text()


async def test_empty_selector_value_matches_missing_key(tmp_path):
    d = tmp_path / "d"
    write_json(d / "profiles/p.json", {"id": "p", "boot": BOOT})
    write_json(d / "groups/g.json", {"id": "g", "profile": "p", "selector": {"uuid": "", "os": "x"}})
    async with running(d, tmp_path, strict=True) as (http, _):
        async with http.get("/ipxe?os=x") as r:
            assert r.status == 200
        async with http.get("/ipxe?os=x&uuid=y") as r:
            assert r.status == 404


@pytest.mark.parametrize("config", [
    {"ignition": {"version": "3.4.0"}, "storage": {"files": [{"path": "relative"}]}},     # invalid
    {"ignition": {"version": "3.2.0"}, "storage": {"files": [{"path": "/a", "mode": "x"}]}},  # wrong type
    {"ignition": {"version": "3.4.0"}, "storage": {"files": "x"}},
])
async def test_raw_config_ignition_would_reject_is_404(data_dir, tmp_path, config):
    """Matchbox serves an empty config for these (Ignition rejects it); ours says 404 and logs why."""
    (data_dir / "ignition/raw.ign").write_text(json.dumps(config))
    async with running(data_dir, tmp_path, strict=True) as (http, _):
        async with http.get("/ignition?uuid=a1b2c3d4") as r:
            assert r.status == 404 and await r.text() == "404 page not found\n"


class AskedTable(dict):
    """A neighbour table that remembers who asked it."""

    def __init__(self):
        super().__init__()
        self.asked: list[str] = []

    def get(self, address, default=None):
        self.asked.append(address)
        return super().get(address, default)


async def test_only_the_routes_the_policy_binds_ask_the_neighbour_table(data_dir, tmp_path):
    table = AskedTable()
    async with running_appliance(data_dir, tmp_path, neighbours=table) as (http, _):
        async with http.get("/boot.ipxe") as r:  # the connection is looked at once, when accepted
            await r.read()
        accepted = len(table.asked)
        for path in ("/grub?mac=52:da:00:89:d8:10", "/metadata?mac=52:da:00:89:d8:10", "/boot.ipxe"):
            async with http.get(path) as r:  # the same kept-alive connection
                await r.read()
        assert len(table.asked) == accepted
        async with http.get("/ipxe?mac=52:da:00:89:d8:10") as r:
            await r.read()
        assert table.asked[accepted:] == ["127.0.0.1"]
