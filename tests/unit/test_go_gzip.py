"""app/ignition/go_gzip.py against Go itself: the sizes Go 1.22's compress/gzip wrote for each case
(recorded by scripts/dev/go-gzip-sizes; Go cannot run in the unit tier), and the one decision that
length makes: whether Butane embeds a file gzip'd."""

from __future__ import annotations

import base64
import gzip
import json

import pytest

from app.ignition import go_gzip
from app.ignition.contents import make_data_url
from tests.support.paths import REPO

CASES = json.loads((REPO / "tests/fixtures/go-gzip-sizes.json").read_text())
# zlib's gzip of this file makes the shortest data URL; Go's (what Butane and Matchbox decide by)
# does not, so they embed it percent-encoded.
TIE = b"Environment=HTTP_PROXY=http://10.0.0.2:3128\n[Service]\nExecStart=/usr/bin/true\nExecStart=/usr/bin/true\n"


@pytest.mark.parametrize("case", CASES, ids=[f"{i}:{len(base64.b64decode(c['data']))}B" for i, c in enumerate(CASES)])
def test_size_is_what_go_wrote(case):
    assert go_gzip.size(base64.b64decode(case["data"])) == case["go_size"]


def test_cases_cover_every_block_kind():
    """Stored (random bytes), fixed and dynamic Huffman blocks all occur among the recorded cases."""
    sizes = [(len(base64.b64decode(c["data"])), c["go_size"]) for c in CASES]
    assert any(n > 100 and size >= n + 23 for n, size in sizes)  # stored: no smaller than the input
    assert any(n > 1000 and size < n // 3 for n, size in sizes)  # dynamic: text compresses well


def test_large_inputs_are_not_modelled():
    assert go_gzip.size(b"x" * go_gzip.LIMIT) is None


def test_the_tie_goes_the_way_go_decides():
    zlib_url = ";base64," + base64.b64encode(gzip.compress(TIE, 9, mtime=0)).decode()
    url, compression = make_data_url(TIE)
    assert len(zlib_url) + len("gzip") < len(url) - len("data:")  # zlib alone would have gzip'd it
    assert compression == "" and url.startswith("data:,Environment%3D")
