"""`bootstrap-node show NODE`: a generated node's configs as readable files and units, secrets withheld."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from app.cli import app
from app.ignition.contents import make_data_url
from app.ignition.readable import decode_contents, describe
from tests.support.paths import REPO

SINGLE = REPO / "examples" / "single-node.yaml"
runner = CliRunner()


@pytest.fixture(scope="module")
def output(tmp_path_factory):
    out = tmp_path_factory.mktemp("show") / "output"
    made = runner.invoke(app, ["--config", str(SINGLE), "--output", str(out), "generate", "--assets", "/nonexistent",
                               "--images", "/nonexistent"])
    assert made.exit_code == 0, made.output
    return out


def show(output, *args):
    return runner.invoke(app, ["--config", str(SINGLE), "--output", str(output), "show", *args])


def test_show_prints_files_and_units_readably(output):
    result = show(output, "solo-1")
    assert result.exit_code == 0, result.output
    assert "=== solo-1: install config" in result.output and "=== solo-1: final config" in result.output
    assert "--- file /etc/hostname (0644, 6 bytes)\nsolo-1\n" in result.output
    assert "Address=192.168.1.20/24" in result.output  # a percent-encoded file, decoded
    assert "flatcar-install -d /dev/disk/by-id/nvme-Samsung_SSD_980_1TB_S64ANS0T100001" in result.output  # a gzip one
    assert "--- unit bootstrap-node-kubeadm.service (enabled)" in result.output
    assert "--- file /opt/extensions/kubernetes/kubernetes-v1.36.3-x86-64.raw (0644): fetched by the node from " \
           "http://192.168.1.2:8080/assets/sysext/" in result.output


def test_secrets_are_named_never_printed(output):
    result = show(output, "solo-1", "--stage", "final")
    assert "--- file /opt/bootstrap-node/kubernetes/pki/ca.key (0600): secret," in result.output
    assert "PRIVATE KEY" not in result.output
    token = (output / "credentials" / "bootstrap-token").read_text().strip()
    assert token and token not in result.output
    assert "install config" not in result.output


def test_unknown_node_and_missing_tree(output, tmp_path):
    unknown = show(output, "nuc-9")
    assert unknown.exit_code == 1 and "no node named 'nuc-9'" in unknown.output and "solo-1" in unknown.output
    missing = show(tmp_path / "nothing", "solo-1")
    assert missing.exit_code == 1 and "run `bootstrap-node generate` first" in missing.output


def test_control_characters_are_escaped():
    url, compression = make_data_url(b"\x1b[31mred\x1b[0m\n" * 40)
    config = {"storage": {"files": [{"path": "/etc/motd", "mode": 0o644,
                                     "contents": {"source": url, "compression": compression}}]},
              "systemd": {"units": [{"name": "x.service", "contents": "[Unit]\nDescription=\x07bell\n"}]}}
    text = describe(config)
    assert "\x1b" not in text and "\x07" not in text
    assert "\\x1b[31mred" in text and "Description=\\x07bell" in text


def test_decode_contents_round_trips_every_encoding():
    for payload in (b"plain text\n", bytes(range(256)), b"a" * 5000):
        url, compression = make_data_url(payload)
        assert decode_contents({"source": url, "compression": compression}).data == payload
    with pytest.raises(ValueError):
        decode_contents({"source": "data:;base64,@@@"})
    assert json.dumps(describe({"storage": {"files": [{"path": "/x", "contents": {"source": "data:,%ff"}}]}}))
