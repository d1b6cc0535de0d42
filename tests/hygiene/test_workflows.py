"""The GitHub workflows pass actionlint (built from the Go module proxy) and zizmor's offline audit,
pin every action by commit, and the release notes come from CHANGELOG.md."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.built import built
from tests.support.paths import REPO

WORKFLOWS = REPO / ".github" / "workflows"
ACTIONLINT = "v1.7.12"
USES = re.compile(r"^\s*(?:-\s+)?uses:\s*(\S+)(.*)$", re.M)


def workflow_files() -> list[Path]:
    return sorted(WORKFLOWS.glob("*.yml"))


def test_the_workflows_exist():
    assert {p.name for p in workflow_files()} >= {"ci.yml", "release.yml", "newest-dependencies.yml"}


def test_actionlint_finds_nothing():
    actionlint = built("actionlint-binary", "actionlint", ACTIONLINT, "actionlint") / "actionlint"
    done = subprocess.run([str(actionlint), "-no-color", *map(str, workflow_files())], capture_output=True,
                          text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_zizmor_finds_nothing():
    zizmor = shutil.which("zizmor", path=str(Path(sys.executable).parent))
    assert zizmor, "zizmor is in the test extra: pip install -e '.[test]'"
    done = subprocess.run([zizmor, "--offline", "--no-progress", "--format", "plain", str(WORKFLOWS)],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("workflow", workflow_files(), ids=lambda p: p.name)
def test_every_action_is_pinned_by_commit_with_its_version(workflow):
    uses = USES.findall(workflow.read_text())
    assert uses or workflow.name != "release.yml"
    for ref, comment in uses:
        assert re.fullmatch(r"[\w.-]+/[\w./-]+@[0-9a-f]{40}", ref), f"{ref}: pin a commit SHA"
        assert re.search(r"#\s*v\d", comment), f"{ref}: say which version the SHA is"


def test_the_release_builds_both_arches_signs_and_publishes():
    text = (WORKFLOWS / "release.yml").read_text()
    for needed in ("platforms: linux/amd64,linux/arm64", "type=semver,pattern={{version}}",
                   "type=semver,pattern={{major}}.{{minor}}", "type=semver,pattern={{major}}", "latest=auto",
                   "sbom: true", "provenance: mode=max", "cosign sign --yes", "id-token: write",
                   "pypa/gh-action-pypi-publish@", "scripts/changelog-section"):
        assert needed in text, needed


def changelog_section(version: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / "scripts" / "changelog-section"), version],
                          capture_output=True, text=True)


def test_release_notes_are_the_changelog_section():
    import app
    notes = changelog_section(app.__version__)
    assert notes.returncode == 0, notes.stderr
    assert notes.stdout.startswith("### ") and "## [" not in notes.stdout
    missing = changelog_section("99.0.0")
    assert missing.returncode == 1 and "no section '## [99.0.0]'" in missing.stderr
