"""The README is the front door and docs/ the rest: short, current, and self-contained."""

import re

import pytest

from app.cluster import iter_field_paths
from app.cluster.schema import reference_rows, splice_reference
from tests.support.paths import REPO
from tests.unit.test_cli_common import COMMANDS

README = (REPO / "README.md").read_text()
CONFIGURATION = REPO / "docs" / "configuration.md"
MARKDOWN = sorted([REPO / "README.md", REPO / "CONTRIBUTING.md", REPO / "SECURITY.md", REPO / "CHANGELOG.md",
                   REPO / "bench" / "README.md", *(REPO / "docs").glob("*.md"), *(REPO / "examples").glob("*.md")])
LINK = re.compile(r"\]\(([^)\s]+)\)")


def test_reference_is_generated_from_the_schema():
    text = CONFIGURATION.read_text()
    assert splice_reference(text) == text, "docs/configuration.md is stale: run `make schema`"


def test_reference_lists_every_field():
    documented = {path for path, *_ in reference_rows()}
    assert documented == set(iter_field_paths())


def test_test_command_is_what_ci_runs():
    ci = (REPO / ".ci" / "run").read_text()
    assert "```sh\nmake test\n```" in README
    assert "```sh\nmake lab\n```" in README
    assert re.search(r"^target=\$\{CI_MAKE_TARGET:-test\}$", ci, re.M)  # make test, unless told otherwise
    assert re.search(r'^make "\$target"', ci, re.M)


def test_readme_is_a_front_door():
    assert len(README.splitlines()) <= 220
    first_screen = "\n".join(README.splitlines()[:40])
    assert "What is verified" in first_screen


@pytest.mark.parametrize("page", MARKDOWN, ids=lambda p: str(p.relative_to(REPO)))
def test_links_stay_inside_the_repository(page):
    text = page.read_text()
    assert "../shared" not in text
    for target in LINK.findall(text):
        assert not re.match(r"[a-z]+:", target), f"{target}: links point inside the repository"
        path = (page.parent / target.split("#", 1)[0]).resolve()
        assert path.is_relative_to(REPO.resolve()) and path.exists(), f"{target}: no such file in the repository"


def test_commands_md_names_every_option_in_its_commands_row():
    rows = {}
    for line in (REPO / "docs" / "commands.md").read_text().splitlines():
        if found := re.match(r"\| `([a-z]+(?: [a-z]+)?)", line):
            rows[found.group(1)] = line
    rows["power"] = rows["power on"]  # one row spells `power on|off|cycle|status`
    rows["init"] += rows["wait"]  # init's row says "[wait's options]"
    shared = {"--help", "--config", "--output", "--templates"}  # the page's first paragraph
    missing = {name: [o for p in command.params for o in p.opts if o.startswith("--") and o not in shared
                      and not re.search(re.escape(o) + r"(?![-\w])", rows.get(name, ""))]
               for name, command in ((" ".join(path), command) for path, command in COMMANDS)}
    assert {name: opts for name, opts in missing.items() if opts} == {}
