"""credentials/: the cluster's secrets, created once and reused by every later `generate`."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from app import pki
from app.generations import OutputError


def load_secrets(output: Path, *, rotate: bool, now: dt.datetime) -> tuple[pki.Secrets, bool]:
    """The persisted secrets, or new ones when there are none (or `rotate`). Returns (secrets, created).

    A partial set is an error, never silently completed: a new CA would orphan every installed node.
    `generate` stages credentials with the rest of the tree, so a crash never leaves a partial set:
    only someone deleting files does.
    """
    creds = output / "credentials"
    present = {name: (creds / name).exists() for name in pki.FILES.values()}
    if rotate or not any(present.values()):
        return pki.create_secrets(now), True
    missing = [name for name, ok in present.items() if not ok]
    if missing:
        raise OutputError(f"{creds} is incomplete (missing {', '.join(missing)}); restore the files, or run "
                          "with --rotate-secrets to replace every secret (installed nodes will not trust the new CA)")
    try:
        return pki.from_files(lambda name: (creds / name).read_bytes()), False
    except (OSError, ValueError) as exc:
        raise OutputError(f"cannot read {creds}: {exc}") from None
