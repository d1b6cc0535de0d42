"""What `serve` reports to the user as a problem to fix (a taken port, a missing directory), not a bug."""

from __future__ import annotations


class ServeError(Exception):
    pass
