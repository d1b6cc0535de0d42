"""Fixtures only; helpers live in tests/support/ and are imported from there."""

from __future__ import annotations

import pytest

from tests.support.paths import EXAMPLE


@pytest.fixture
def example_text() -> str:
    return EXAMPLE.read_text()
