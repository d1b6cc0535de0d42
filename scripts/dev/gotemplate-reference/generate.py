#!/usr/bin/env python3
"""Regenerate tests/unit/gotemplate_cases.json with Go's own text/template (dev tool, not a test).

    scripts/dev/gotemplate-reference/generate.py [--matchbox-git DIR] [--go /opt/gotools/bin/go]

Every case in cases.py, plus Matchbox's example Butane templates rendered with the data Matchbox would
give them (group metadata, lower-cased selectors, `request`), goes through main.go, which uses
text/template with missingkey=error and encoding/json data, as Matchbox does. DIR is a bare git
directory of poseidon/matchbox (the examples are read from old commits with `git show`).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlencode

HERE = Path(__file__).resolve().parent
FIXTURE = HERE.parents[2] / "tests/unit/gotemplate_cases.json"
# Commits of poseidon/matchbox whose examples/ still held Go-template Butane/CLC files.
EXAMPLE_COMMITS = {"2017": "dabba64850078bc6820f851c6dd52a04facf59bb^",
                   "2020": "da0df01763693b6391b3f6f9b7a267818075cef8^"}

SSH_KEYS = ["ssh-ed25519 AAAAC3Nza one@example", "ssh-rsa AAAAB3Nza two@example"]

sys.path.insert(0, str(HERE))
from cases import template_cases  # noqa: E402 - beside this script, found once its folder is on the path


def git(git_dir: Path, *args: str) -> str:
    return subprocess.run(["git", "--git-dir", str(git_dir), *args], check=True, capture_output=True,
                          text=True).stdout


def matchbox_variables(group: dict) -> dict:
    """What Matchbox's collectVariables builds for a machine that sent exactly the group's selectors."""
    data = dict(group.get("metadata") or {})
    selector = group.get("selector") or {}
    data.update({k.lower(): v for k, v in selector.items()})
    data["request"] = {"query": dict(selector), "raw_query": urlencode(selector)}
    return data


def example_cases(git_dir: Path) -> list[dict]:
    """One case per distinct example template (with its first group's data), and the same with SSH keys
    added so that the `{{range}}` over them runs too."""
    cases: list[dict] = []
    seen: set[str] = set()
    for era, commit in EXAMPLE_COMMITS.items():
        files = git(git_dir, "ls-tree", "-r", "--name-only", commit, "--", "examples").split()
        for group_path in sorted(f for f in files if f.startswith("examples/groups/") and f.endswith(".json")):
            group = json.loads(git(git_dir, "show", f"{commit}:{group_path}"))
            profile_path = f"examples/profiles/{group.get('profile')}.json"
            if profile_path not in files:
                continue
            ignition_id = json.loads(git(git_dir, "show", f"{commit}:{profile_path}")).get("ignition_id", "")
            template_path = f"examples/ignition/{ignition_id}"
            if not ignition_id.endswith(".yaml") or template_path not in files:
                continue
            template = git(git_dir, "show", f"{commit}:{template_path}")
            if template in seen:
                continue
            seen.add(template)
            name = f"matchbox {era} {group_path[len('examples/groups/'):]} -> {ignition_id}"
            data = matchbox_variables(group)
            cases.append({"name": name, "template_name": "", "query_strings": True, "template": template,
                          "data": data})
            cases.append({"name": name + " with ssh keys", "template_name": "", "query_strings": True,
                          "template": template, "data": {**data, "ssh_authorized_keys": SSH_KEYS}})
    return cases


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--matchbox-git", type=Path, default=Path("/work/.mirror/poseidon+matchbox/repo"))
    parser.add_argument("--go", default="/opt/gotools/bin/go")
    args = parser.parse_args()
    cases = template_cases()
    if args.matchbox_git.is_dir():
        cases += example_cases(args.matchbox_git)
    else:
        print(f"no Matchbox git dir at {args.matchbox_git}: skipping its examples", file=sys.stderr)
    env = {"GOFLAGS": "-mod=mod", "GOTOOLCHAIN": "local", "HOME": str(Path.home()), "PATH": "/usr/bin:/bin"}
    done = subprocess.run([args.go, "run", "."], check=False, cwd=HERE, input=json.dumps(cases), capture_output=True,
                          text=True, env=env)
    if done.returncode:
        print(done.stderr, file=sys.stderr)
        return 1
    results = json.loads(done.stdout)
    FIXTURE.write_text(json.dumps(results, indent=1, ensure_ascii=False) + "\n")
    errors = sum("error" in r for r in results)
    print(f"{len(results)} cases ({errors} errors) -> {FIXTURE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
