"""Differential parity with the real Butane over tests/fixtures/butane-corpus.

Each case was run through Butane (see BUTANE_VERSION) with `--strict` and without, by
scripts/dev/butane-corpus; out/<case>.json holds both runs' exit code, stdout and stderr. We run our
translator the same two ways and demand the same outcome: the same Ignition config (gzip payloads
compared decoded: Go's and Python's gzip bytes differ) and the same report lines, word for word,
with the same `$.path, line L col C`.
"""

from __future__ import annotations

import base64
import gzip
import json
import os
import shutil
import urllib.parse
from pathlib import Path

import pytest

from app.ignition.butane import ButaneError, translate

CORPUS = Path(__file__).resolve().parents[1] / "fixtures" / "butane-corpus"
CASES = sorted(p.stem for p in (CORPUS / "cases").glob("*.bu"))
NO_FILES_DIR = "# corpus: no-files-dir"


@pytest.fixture(scope="module")
def files_dir(tmp_path_factory):
    """The corpus files dir, copied so the tree's symlink and executable bit are what Butane saw
    even when a checkout lost them."""
    dst = tmp_path_factory.mktemp("corpus") / "files"
    shutil.copytree(CORPUS / "files", dst, symlinks=True)
    link = dst / "tree" / "current"
    if not link.is_symlink():
        link.unlink(missing_ok=True)
        os.symlink("bin/run.sh", link)
    (dst / "tree" / "bin" / "run.sh").chmod(0o755)
    return dst


def decoded(node):
    """Data URLs replaced by their payload (gunzipped when compressed)."""
    if isinstance(node, dict):
        out = {k: decoded(v) for k, v in node.items()}
        source = node.get("source")
        if isinstance(source, str) and source.startswith("data:"):
            header, payload = source[5:].split(",", 1)
            raw = base64.b64decode(payload) if header.endswith(";base64") else urllib.parse.unquote_to_bytes(payload)
            out["source"] = ("data", gzip.decompress(raw) if node.get("compression") == "gzip" else raw)
        return out
    if isinstance(node, list):
        return [decoded(v) for v in node]
    return node


def _run(name: str, strict: bool, files_dir: Path):
    text = (CORPUS / "cases" / f"{name}.bu").read_text()
    directory = None if text.startswith(NO_FILES_DIR) else files_dir
    try:
        return translate(text, files_dir=directory, strict=strict, name=f"{name}.bu"), None
    except ButaneError as exc:
        return None, exc


@pytest.mark.parametrize("mode", ["strict", "lax"])
@pytest.mark.parametrize("name", CASES)
def test_same_outcome_as_butane(name, mode, files_dir):
    want = json.loads((CORPUS / "out" / f"{name}.json").read_text())[mode]
    result, error = _run(name, mode == "strict", files_dir)
    if want["rc"] != 0:
        assert error is not None, f"Butane refused this ({want['stderr'].strip()!r}); we accepted it"
        expected = want["stderr"].strip().replace(str(CORPUS / "files"), str(files_dir))
        assert str(error) == expected
        return
    assert error is None, f"Butane accepted this; we refused it: {error}"
    got = json.loads(result.json())
    expected_config = json.loads(want["stdout"])
    assert decoded(got) == decoded(expected_config)
    assert list(got) == list(expected_config)  # key order: same Go struct order
    assert [r.text() for r in result.warnings] == want["stderr"].splitlines()


def test_corpus_is_big_and_recorded():
    assert len(CASES) >= 80
    assert all((CORPUS / "out" / f"{name}.json").exists() for name in CASES)
    assert "coreos/butane" in (CORPUS / "BUTANE_VERSION").read_text()
