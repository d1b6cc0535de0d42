"""Fixture parity with the real Butane (v0.19.0 --strict): ../shared/fixtures/butane, read in place."""

from __future__ import annotations

import base64
import gzip
import json
import os
import shutil

import pytest

from app.ignition.butane import ButaneError, make_data_url, translate
from tests.support.paths import SHARED, shared_path

FIXTURES = SHARED / "fixtures" / "butane"
GOLDEN = sorted(p.stem for p in FIXTURES.glob("*.bu"))
ERRORS = sorted(p.stem for p in (FIXTURES / "errors").glob("*.bu"))


@pytest.fixture(scope="module")
def files_dir(tmp_path_factory):
    """A writable copy of fixtures/butane/files. The tree's one symlink (hello-link) points at an
    absolute path that exists only on the node (Butane turns it into a link with that target), so
    it dangles here: copy symlinks as symlinks. Some copies of shared/ store it as a plain file
    holding its target; turn that back into the symlink Butane saw."""
    src = shared_path("fixtures", "butane", "files")
    dst = tmp_path_factory.mktemp("butane") / "files"
    shutil.copytree(src, dst, symlinks=True)
    link = dst / "tree" / "opt" / "bin" / "hello-link"
    if not link.is_symlink():
        target = link.read_text()
        link.unlink()
        os.symlink(target, link)
    return dst


def _decode_gzip_sources(node):
    """Replace gzip data URLs by their decoded payload: Go's and Python's gzip bytes differ."""
    if isinstance(node, dict):
        if node.get("compression") == "gzip" and node.get("source", "").startswith("data:;base64,"):
            raw = gzip.decompress(base64.b64decode(node["source"].split(",", 1)[1]))
            return {**node, "source": ("decoded", raw.decode())}
        return {k: _decode_gzip_sources(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_decode_gzip_sources(v) for v in node]
    return node


@pytest.mark.parametrize("name", GOLDEN or ["(no fixtures)"])
@pytest.mark.parametrize("pretty", [False, True], ids=["compact", "pretty"])
def test_golden_output(name, pretty, files_dir):
    source = shared_path("fixtures", "butane", f"{name}.bu")
    want = (FIXTURES / f"{name}{'.pretty' if pretty else ''}.ign").read_bytes()
    got = translate(source.read_text(), files_dir=files_dir).json(pretty=pretty)
    if b'"gzip"' in want:
        assert _decode_gzip_sources(json.loads(got)) == _decode_gzip_sources(json.loads(want))
        # Everything but the gzip payload is byte-equal, key order included.
        assert list(json.loads(got)) == list(json.loads(want))
    else:
        assert got == want


@pytest.mark.parametrize("name", ERRORS or ["(no fixtures)"])
def test_error_cases_fail_with_butanes_words(name, files_dir):
    source = shared_path("fixtures", "butane", "errors", f"{name}.bu")
    expected = (FIXTURES / "errors" / f"{name}.err").read_text().strip()
    variants = [(None, expected)]
    with_dir = FIXTURES / "errors" / f"{name}.with-files-dir.err"
    if with_dir.exists():
        variants.append((files_dir, with_dir.read_text().strip()))
    for directory, want in variants:
        if not want:  # Butane accepted this one (rc 0): so must we
            translate(source.read_text(), files_dir=directory)
            continue
        with pytest.raises(ButaneError) as exc:
            translate(source.read_text(), files_dir=directory)
        assert str(exc.value) == want


@pytest.mark.parametrize("data", [b"", b"x", b"hello world\n", "ünïcode ✓".encode(), bytes(range(256)),
                                  b"a" * 500, b"#!/bin/sh\necho hi\n"])
def test_data_url_round_trip(data):
    url, compression = make_data_url(data)
    header, payload = url[len("data:"):].split(",", 1)
    raw = base64.b64decode(payload) if header == ";base64" else bytes.fromhex("")
    if header == ";base64":
        decoded = gzip.decompress(raw) if compression == "gzip" else raw
    else:
        from urllib.parse import unquote_to_bytes
        decoded = unquote_to_bytes(payload)
    assert decoded == data


def test_user_compression_is_kept_and_never_recompressed():
    url, compression = make_data_url(b"x" * 400, "gzip")
    assert compression is None and url.startswith("data:") and ";base64," + "H4sI" not in url


def test_non_strict_returns_warnings_instead_of_failing():
    result = translate("variant: flatcar\nversion: 1.1.0\nstorage:\n  files:\n    - path: /a\n      mode: 644\n",
                       strict=False)
    assert result.config["storage"]["files"][0]["mode"] == 644
    assert [w.message.split(";")[0] for w in result.warnings] == [
        "unreasonable mode would be reasonable if specified in octal"]
