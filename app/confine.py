"""Path confinement: the one rule for turning a request's path into a file under a root.

The path is percent-decoded once, may not hold NUL, backslashes or `..` segments, and its real path
(symlinks resolved) must stay under the root's real path. Used by /assets and by the registry's
blob store; see docs/security.md.
"""

from __future__ import annotations

import os
import urllib.parse
from pathlib import Path


def confine(root: Path, raw_path: str) -> Path | None:
    """The file or directory `raw_path` (relative, still percent-encoded) names inside `root`, or
    None when it would leave the root in any way."""
    path = urllib.parse.unquote(raw_path)
    if "\0" in path or "\\" in path:
        return None
    parts = [p for p in path.split("/") if p not in ("", ".")]
    if any(p == ".." for p in parts):
        return None
    real_root = os.path.realpath(root)
    candidate = os.path.realpath(os.path.join(real_root, *parts))
    if candidate != real_root and not candidate.startswith(real_root + os.sep):
        return None
    return Path(candidate)
