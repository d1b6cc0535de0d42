"""The README is the user's front door: its reference must list every cluster.yaml field."""

import re

from app.cluster import iter_field_paths
from tests.support.paths import REPO

README = (REPO / "README.md").read_text()


def test_reference_lists_every_field():
    """The README's table, plus the rows docs/configuration-notes.md adds for the fields it introduces."""
    section = README.split("## cluster.yaml reference", 1)[1].split("\n## ", 1)[0]
    notes = (REPO / "docs" / "configuration-notes.md").read_text().split("\n## ", 1)[0]
    documented = set(re.findall(r"^\| `([^`]+)` \|", section + "\n" + notes, re.M))
    fields = set(iter_field_paths())
    assert fields - documented == set(), "fields missing from the README reference"
    assert documented - fields == set(), "README documents fields the model does not have"


def test_test_command_is_what_ci_runs():
    ci = (REPO / ".ci" / "run").read_text()
    assert "```sh\nmake test\n```" in README
    assert re.search(r"^make test\b", ci, re.M)
