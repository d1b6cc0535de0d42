"""Matchbox compatibility, measured: the same requests asked of real Matchbox (built from source by
scripts/matchbox-binary) and of `serve --matchbox-data --strict-matchbox` on the same data dir,
answers compared (status, Content-Type, body; Ignition as JSON). The data dir holds the contract
cases of test_serve_boot_matchbox_api.py and test_matchbox_templates.py, Butane templates of both Flatcar
spec versions with the contents whose encoding Matchbox chooses, raw Ignition of every spec it
upgrades, and the appliance's own generated tree (a real cluster's groups, profiles and configs)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from app import pki
from app.cluster import load_cluster
from app.render.templates import Templates
from app.render.tree import Appliance, render_tree
from tests.integration.test_matchbox_templates import BUTANE as BUTANE_WITH_RANGE
from tests.integration.test_matchbox_templates import GENERIC
from tests.integration.test_serve_boot_matchbox_api import BOOT, BUTANE_TEMPLATE
from tests.support.matchbox_pair import ask, side_by_side
from tests.support.paths import EXAMPLE
from tests.support.real_programs import matchbox_binary
from tests.support.serve import write_json

KEYS = ["ssh-ed25519 AAAAC3Nza one@example", "ssh-rsa AAAAB3Nza two@example"]
# Flatcar 1.0.0 (Ignition 3.3.0 from Butane) with the entries whose shape Matchbox's Go structs
# decide: a short file (plain or gzip?), a long compressible one, directories, links, a unit with a
# drop-in, users, a filesystem with a mount unit.
BUTANE_V1_0 = """variant: flatcar
version: 1.0.0
passwd:
  users:
    - name: core
      ssh_authorized_keys: [{{ index .keys 0 }}]
storage:
  directories:
    - path: /opt/site
      mode: 0750
  links:
    - path: /etc/site-link
      target: /opt/site
  files:
    - path: /etc/hostname
      contents:
        inline: {{ .domain }}
    - path: /etc/profile.d/site.sh
      mode: 0644
      contents:
        inline: |
          # site profile for {{ .domain }}: proxies and the registry mirror
          export NO_PROXY=localhost,127.0.0.1
    - path: /etc/motd
      contents:
        inline: |
{{ range $i := .lines }}          line {{ $i }}: the same words over and over, which gzip likes
{{ end }}
  filesystems:
    - device: /dev/disk/by-label/DATA
      format: ext4
      path: /var/lib/data
      with_mount_unit: true
systemd:
  units:
    - name: site.service
      enabled: true
      contents: |
        [Unit]
        Description=site
        [Service]
        Type=oneshot
        ExecStart=/usr/bin/true
        [Install]
        WantedBy=multi-user.target
      dropins:
        - name: 10-env.conf
          contents: |
            [Service]
            Environment=A=b
"""
# A ~100-byte file where zlib's gzip would be short enough to win and Go's (Matchbox's) is not: the
# choice follows Go's length (app/ignition/go_gzip.py).
BUTANE_GZIP_CHOICE = """variant: flatcar
version: 1.0.0
storage:
  files:
    - path: /etc/proxy.conf
      contents:
        inline: |
          Environment=HTTP_PROXY=http://10.0.0.2:3128
          [Service]
          ExecStart=/usr/bin/true
          ExecStart=/usr/bin/true
"""
BUTANE_BAD_VARIANT = "variant: fcos\nversion: 9.9.9\n"
BUTANE_WARNS = "variant: flatcar\nversion: 1.1.0\nstorage:\n  files:\n    - path: /etc/x\n      unknown_key: 1\n"


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("parity") / "data"
    # The appliance's own tree for the example cluster first; the hand-written cases beside it.
    cluster = load_cluster(EXAMPLE)[0]
    secrets = pki.create_secrets(dt.datetime(2025, 1, 1, tzinfo=dt.UTC))
    for path, (data, _) in render_tree(cluster, secrets, Templates(None), Appliance(Path("/srv/out"))).items():
        if path.startswith("matchbox/"):
            (d / path.removeprefix("matchbox/")).parent.mkdir(parents=True, exist_ok=True)
            (d / path.removeprefix("matchbox/")).write_bytes(data)
    profiles = {"p1": {"boot": BOOT, "ignition_id": "raw.ign", "generic_id": "gen.txt"},
                "tmpl": {"ignition_id": "t.yaml"}, "noboot": {}, "missing-ign": {"boot": BOOT, "ignition_id": "nope.ign"},
                "range": {"ignition_id": "range.yaml", "generic_id": "env.txt"}, "v10": {"ignition_id": "v10.yaml"},
                "bad-variant": {"ignition_id": "bad.yaml"}, "gzip": {"ignition_id": "gz.yaml"}, "warns": {"ignition_id": "warns.yaml"}}
    profiles |= {f"raw{v}": {"ignition_id": f"raw{v}.ign"} for v in ("300", "310", "320", "330", "340", "220", "junk", "bad")}
    for name, profile in profiles.items():
        write_json(d / f"profiles/{name}.json", {"id": name, **profile})
    metadata = {"pod_network": "10.2.0.0/16", "some": {"nested": {"data": "v"}}, "num": 3, "yes": True, "no": False,
                "big": 1000000, "domain_name": "node1.example.com", "nested": {"b": 0.5, "a": True},
                "ssh_authorized_keys": KEYS, "keys": KEYS, "domain": "n1.example.com", "lines": list(range(6))}
    groups = {"uuid": ({"uuid": "a1b2c3d4"}, "p1"), "tmpl": ({"uuid": "tmpl"}, "tmpl"),
              "noboot": ({"uuid": "noboot"}, "noboot"), "ghost": ({"uuid": "ghost"}, "ghost"),
              "missing": ({"uuid": "mi"}, "missing-ign"), "range": ({"uuid": "range"}, "range"),
              "v10": ({"uuid": "v10"}, "v10"), "bad-variant": ({"uuid": "bad"}, "bad-variant"),
              "warns": ({"uuid": "warns"}, "warns"), "gzip": ({"uuid": "gzip"}, "gzip"), "empty-value": ({"uuid": "", "os": "x"}, "p1")}
    groups |= {f"raw{v}": ({"uuid": f"raw{v}"}, f"raw{v}") for v in ("300", "310", "320", "330", "340", "220", "junk", "bad")}
    for name, (selector, profile) in groups.items():
        write_json(d / f"groups/{name}.json", {"id": name, "profile": profile, "selector": selector,
                                                "metadata": metadata})
    write_json(d / "groups/nokeys.json", {"id": "nokeys", "profile": "range", "selector": {"uuid": "nokeys"},
                                          "metadata": {k: v for k, v in metadata.items() if k != "ssh_authorized_keys"}})
    files = {"raw.ign": json.dumps({"ignition": {"version": "3.4.0"}, "storage": {
                 "files": [{"path": "/a", "contents": {"source": "data:,a&b"}}]}}),
             "t.yaml": BUTANE_TEMPLATE, "range.yaml": BUTANE_WITH_RANGE, "v10.yaml": BUTANE_V1_0,
             "bad.yaml": BUTANE_BAD_VARIANT, "gz.yaml": BUTANE_GZIP_CHOICE, "warns.yaml": BUTANE_WARNS,
             "raw220.ign": json.dumps({"ignition": {"version": "2.2.0"}}), "rawjunk.ign": "{not json",
             "rawbad.ign": json.dumps({"ignition": {"version": "3.4.0"}, "storage": {"files": [{"path": "relative"}]}})}
    files |= {f"raw{v}.ign": json.dumps({"ignition": {"version": ".".join(v)}, "passwd": {"users": [
        {"name": "core", "sshAuthorizedKeys": KEYS}]}}) for v in ("300", "310", "320", "330", "340")}
    for name, text in files.items():
        (d / "ignition" / name).write_text(text)
    (d / "generic").mkdir()
    (d / "generic/gen.txt").write_text("uuid={{.uuid}} net={{.pod_network}}\n")
    (d / "generic/env.txt").write_text(GENERIC)
    return d


ENDPOINTS = ["/ipxe", "/grub", "/ignition", "/generic", "/metadata"]
QUERIES = ["uuid=a1b2c3d4", "uuid=tmpl&foo=some-param&bar=b", "uuid=noboot", "uuid=ghost", "uuid=mi", "uuid=range",
           "uuid=nokeys&os=installed", "uuid=v10", "uuid=bad", "uuid=warns", "uuid=gzip", "os=x", "os=x&uuid=y", "uuid=nobody",
           "uuid=raw300", "uuid=raw310", "uuid=raw320", "uuid=raw330", "uuid=raw340", "uuid=raw220", "uuid=rawjunk", "uuid=rawbad",
           # the appliance's tree: install stage by MAC, final stage by MAC and os, MAC spellings
           "mac=52:54:00:00:00:11", "mac=52-54-00-00-00-21", "mac=52:54:00:00:00:21&os=installed",
           "mac=52:54:00:00:00:12&os=installed", "MAC=52:54:00:00:00:22&OS=installed", "mac=x:x", ""]
REQUESTS = [("GET", f"{e}?{q}" if q else e) for e in ENDPOINTS for q in QUERIES]
REQUESTS += [("GET", p) for p in ["/", "/boot.ipxe", "/boot.ipxe.0", "/nope", "/ipxe/extra", "/%2e%2e/etc/passwd",
                                  "/assets/", "/assets/missing"]]
REQUESTS += [("POST", "/boot.ipxe?x=1"), ("DELETE", "/ipxe?uuid=a1b2c3d4"), ("HEAD", "/ignition?uuid=v10")]

# Requests whose answers differ on purpose, with the reason (docs/ignition-and-matchbox.md).
KNOWN_DIFFERENCES: dict[tuple[str, str], str] = {
    ("GET", "/ignition?uuid=raw220"): "a config Matchbox cannot parse (spec 2.x): Matchbox answers 200 with an empty "
                                      "config of version \"\", which Ignition rejects; ours answers 404 and logs why",
    ("GET", "/ignition?uuid=rawjunk"): "not JSON: as above",
    ("GET", "/ignition?uuid=rawbad"): "a 3.4.0 config that fails Ignition's validation (a relative path): as above",
}


@pytest.fixture(scope="module")
def answers(data_dir, tmp_path_factory):
    scratch = tmp_path_factory.mktemp("servers")
    with side_by_side(matchbox_binary(), data_dir, scratch) as (matchbox, ours):
        return {req: (ask(matchbox, *req), ask(ours, *req)) for req in REQUESTS}


@pytest.mark.parametrize("request_", REQUESTS, ids=[f"{m} {p}" for m, p in REQUESTS])
def test_same_answer_as_real_matchbox(request_, answers):
    theirs, ours = answers[request_]
    if request_ in KNOWN_DIFFERENCES:
        assert ours.comparable() != theirs.comparable(), "now matches: drop it from KNOWN_DIFFERENCES"
        return
    assert ours.comparable() == theirs.comparable()


def test_the_comparison_sees_real_answers(answers):
    """Not a comparison of two 404 pages: most requests are answered, with each kind of body."""
    matchbox = [theirs for theirs, _ in answers.values()]
    assert sum(a.status == 200 for a in matchbox) >= 50
    kinds = {a.content_type for a in matchbox if a.status == 200}
    assert {"application/json", "text/plain; charset=utf-8", "plain/text"} <= kinds
