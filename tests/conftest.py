"""Fixtures only; helpers live in tests/support/ and are imported from there."""

from __future__ import annotations

import logging

import pytest

from tests.support.paths import EXAMPLE


@pytest.fixture
def example_text() -> str:
    return EXAMPLE.read_text()


@pytest.fixture(autouse=True)
def _root_logger_left_as_found():
    """A command run in-process (CliRunner) sets up logging with the runner's stderr, which is closed
    when the command returns. Left on the root logger, that handler makes a later test's log line
    (another thread's access log) print a logging traceback into whatever that test captures."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
    root.setLevel(level)
