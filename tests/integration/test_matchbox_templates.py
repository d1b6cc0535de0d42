"""Matchbox data dirs that use Go templates beyond field lookups (if/index/range, pipelines), served over
a real socket, and /metadata printing numbers as Go's %v of a float64."""

from __future__ import annotations

import json
from functools import partial

import pytest

from tests.support.serve import running as running_appliance
from tests.support.serve import write_json

running = partial(running_appliance, own_tree=False)  # a foreign Matchbox data dir

KEYS = ["ssh-ed25519 AAAAC3Nza one@example", "ssh-rsa AAAAB3Nza two@example"]
# The shape of poseidon/matchbox's examples/ignition/*.yaml (the SSH block is theirs verbatim).
BUTANE = """variant: flatcar
version: 1.1.0
storage:
  files:
    - path: /etc/hostname
      contents:
        inline: "{{.domain_name}}"
{{ if index . "ssh_authorized_keys" }}
passwd:
  users:
    - name: core
      ssh_authorized_keys:
        {{ range $element := .ssh_authorized_keys }}
        - {{$element}}
        {{end}}
{{end}}
"""
GENERIC = ('host={{.domain_name | printf "%q"}} keys={{len .ssh_authorized_keys}} big={{.big}} '
           'first={{index .ssh_authorized_keys 0 | urlquery}} os={{.request.query.os}}'
           '{{range $k, $v := .nested}} {{$k}}={{$v}}{{end}}\n')


@pytest.fixture
def data_dir(tmp_path):
    d = tmp_path / "data"
    write_json(d / "profiles/node.json", {"id": "node", "ignition_id": "node.yaml", "generic_id": "env.txt"})
    metadata = {"domain_name": "node1.example.com", "big": 1234567, "nested": {"b": 0.5, "a": True}}
    write_json(d / "groups/keys.json", {"id": "keys", "profile": "node", "selector": {"uuid": "keys"},
                                        "metadata": {**metadata, "ssh_authorized_keys": KEYS}})
    write_json(d / "groups/nokeys.json", {"id": "nokeys", "profile": "node", "selector": {"uuid": "nokeys"},
                                          "metadata": metadata})
    (d / "ignition").mkdir()
    (d / "ignition/node.yaml").write_text(BUTANE)
    (d / "generic").mkdir()
    (d / "generic/env.txt").write_text(GENERIC)
    return d


async def test_butane_template_with_if_index_and_range(data_dir, tmp_path):
    async with running(data_dir, tmp_path, strict=True) as (http, _):
        async with http.get("/ignition?uuid=keys") as r:
            assert r.status == 200
            with_keys = json.loads(await r.read())
        async with http.get("/ignition?uuid=nokeys") as r:
            assert r.status == 200
            without_keys = json.loads(await r.read())
    assert with_keys["passwd"]["users"] == [{"name": "core", "sshAuthorizedKeys": KEYS}]
    assert "passwd" not in without_keys or not without_keys["passwd"].get("users")
    files = {f["path"]: f["contents"]["source"] for f in with_keys["storage"]["files"]}
    assert files == {"/etc/hostname": "data:,node1.example.com"}


async def test_generic_template_with_pipelines(data_dir, tmp_path):
    async with running(data_dir, tmp_path, strict=True) as (http, _), \
            http.get("/generic?uuid=keys&os=installed") as r:
        assert r.status == 200
        body = await r.text()
    assert body == ('host="node1.example.com" keys=2 big=1.234567e+06 first=ssh-ed25519+AAAAC3Nza+one%40example '
                    "os=installed a=true b=0.5\n")


async def test_missing_key_is_404(data_dir, tmp_path):
    async with running(data_dir, tmp_path, strict=True) as (http, _):
        async with http.get("/generic?uuid=nokeys&os=installed") as r:  # no .ssh_authorized_keys
            assert r.status == 404 and await r.text() == "404 page not found\n"
        async with http.get("/generic?uuid=keys") as r:  # no request.query.os
            assert r.status == 404


async def test_metadata_prints_numbers_as_go_float64(data_dir, tmp_path):
    async with running(data_dir, tmp_path, strict=True) as (http, _), http.get("/metadata?uuid=keys") as r:
        assert r.status == 200
        lines = set((await r.text()).splitlines())
    assert {"BIG=1.234567e+06", "NESTED_B=0.5", "NESTED_A=true", "DOMAIN_NAME=node1.example.com",
            "UUID=keys", "REQUEST_QUERY_UUID=keys", "REQUEST_RAW_QUERY=uuid=keys"} <= lines
    assert not any(line.startswith("SSH_AUTHORIZED_KEYS") for line in lines)  # lists are left out
