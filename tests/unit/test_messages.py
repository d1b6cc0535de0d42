"""The small things a new user trips over get a message that says what to do."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from app.cli import common
from app.cluster.fields import parse_mac, parse_ssh_key
from app.cluster.schema import cluster_schema
from app.yaml_source import SourceError, parse_source
from tests.support.paths import REPO


def syntax_error(text: str) -> str:
    with pytest.raises(SourceError) as caught:
        parse_source(text, Path("cluster.yaml"))
    return caught.value.message


def test_a_key_indented_too_far_gets_a_hint():
    message = syntax_error("cluster:\n  name: x\n   k8s_version: v1.31.4\n")
    assert "line 3 starts in column 4, the key on line 2 in column 3" in message


def test_a_list_item_key_out_of_line_gets_a_hint():
    message = syntax_error("nodes:\n  - name: a\n   role: worker\n")
    assert "line 3 starts in column 4, the key on line 2 in column 5" in message


def test_a_tab_gets_a_hint():
    assert "line 2 is indented with a tab" in syntax_error("cluster:\n\tname: x\n")


def test_no_indentation_hint_where_indentation_is_right():
    message = syntax_error('cluster:\n  name: "x\nnetwork:\n  a: 1\n')
    assert "hint" not in message


def test_a_bare_mac_gets_did_you_mean():
    with pytest.raises(ValueError, match='did you mean "1c:69:7a:0a:11:01"'):
        parse_mac("1C697A0A1101")


PRIVATE = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ\n-----END OPENSSH PRIVATE KEY-----"


@pytest.mark.parametrize("pasted", [PRIVATE, PRIVATE.replace("OPENSSH", "RSA"), "b3Blbn PRIVATE KEY"])
def test_a_pasted_private_key_is_named_and_never_echoed(pasted):
    with pytest.raises(ValueError) as caught:
        parse_ssh_key(pasted)
    message = str(caught.value)
    assert "this is a private key" in message and ".pub" in message
    assert "b3Bl" not in message


@pytest.mark.parametrize("name,ok", [("nuc-1", True), ("NUC_1", False), ("x nuc-1 x", False), ("-a", False)])
def test_the_schema_refuses_names_the_cli_refuses(name, ok):
    pattern = cluster_schema()["$defs"]["Node"]["properties"]["name"]
    assert jsonschema.Draft202012Validator(pattern).is_valid(name) is ok


def test_the_schema_anchors_every_pattern():
    text = (REPO / "cluster.schema.json").read_text()
    patterns = []

    def walk(node):
        if isinstance(node, dict):
            if isinstance(node.get("pattern"), str):
                patterns.append(node["pattern"])
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)
    walk(json.loads(text))
    assert patterns and all(p.startswith("^") for p in patterns), patterns


def test_a_warning_is_printed_once_per_command_run(capsys):
    single = REPO / "examples" / "single-node.yaml"
    common._warned.clear()
    for _ in range(3):  # init reads cluster.yaml for generate, serve and wait
        common.load_or_exit(single)
    assert capsys.readouterr().err.count("only one controller") == 1
