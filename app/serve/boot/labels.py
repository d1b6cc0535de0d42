"""Labels from a query string, as Matchbox reads them (Go's URL.Query and net.ParseMAC)."""

from __future__ import annotations

import logging
import re
import urllib.parse

log = logging.getLogger("bootstrap_node.matchbox")

# One separator style per address (Go's net.ParseMAC): `52:54-00:…` is not a MAC.
_MAC_SHAPES = (re.compile(r"[0-9A-Fa-f]{2}([:-])(?:[0-9A-Fa-f]{2}\1){4}[0-9A-Fa-f]{2}"),
               re.compile(r"([0-9A-Fa-f]{4}\.){2}[0-9A-Fa-f]{4}"))


def normalize_mac(text: str) -> str | None:
    """Go's net.ParseMAC for 48-bit addresses, printed lower-case with colons; None if invalid."""
    if not any(shape.fullmatch(text) for shape in _MAC_SHAPES):
        return None
    digits = re.sub(r"[:\-.]", "", text).lower()
    return ":".join(digits[i:i + 2] for i in range(0, 12, 2))


def is_unicast(mac: str) -> bool:
    """A NIC's own address: not multicast or broadcast (low bit of the first octet), not all zeros."""
    return not int(mac[:2], 16) & 1 and mac != "00:00:00:00:00:00"


class LabelError(ValueError):
    """A query no machine sends: answered 400 (app.py)."""


TWO_MACS = "one mac label per request"


def parse_labels(raw_query: str) -> dict[str, str]:
    """Query → labels like Go's URL.Query(): first value wins, key case kept, MACs normalised,
    an unparsable MAC dropped (not an error). Unlike Matchbox, a second `mac` label in any case
    (`MAC=x&mac=y`, `mac=x&mac=x`) raises LabelError: which one names the machine could differ between
    the group selection and the policy, and a made-up one beside a real one was how a flood of
    requests became a flood of nodes (issue #33)."""
    labels: dict[str, str] = {}
    macs = 0
    for key, value in urllib.parse.parse_qsl(raw_query, keep_blank_values=True):
        if key.lower() == "mac":
            macs += 1
            if macs > 1:
                raise LabelError(TWO_MACS)
        if key in labels:
            continue
        if key.lower() == "mac":
            mac = normalize_mac(value)
            if mac is None:
                log.debug("dropping unparsable mac label %r", value)  # not logged by default: anyone can send it
                continue
            value = mac
        labels[key] = value
    return labels
