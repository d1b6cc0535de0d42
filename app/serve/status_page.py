"""Node progress for people: the HTML status page and the terminal table share these rows."""

from __future__ import annotations

import html as _html

from app.events import PHASES, NodeState

REFRESH_SECONDS = 5


def as_dict(state: NodeState) -> dict:
    return {"name": state.name, "mac": state.mac, "phase": state.phase or "pending", "error": state.error,
            "installed": state.installed, "updated": state.updated, "first_seen": state.first_seen,
            "history": [{"ts": ts, "phase": phase} for ts, phase in state.history]}


def progress(state: NodeState) -> str:
    """`5/10` steps along PHASES."""
    done = PHASES.index(state.phase) + 1 if state.phase in PHASES else 0
    return f"{done}/{len(PHASES)}"


def rows(states: list[NodeState]) -> list[list[str]]:
    return [[s.name or "(unknown)", s.mac, s.phase or "pending", progress(s), s.updated or "-",
             s.error or ""] for s in states]


HEADERS = ["node", "mac", "phase", "step", "updated", "error"]


def html(states: list[NodeState], discovered: list[str]) -> str:
    """A page that refreshes itself with a meta tag: readable without JavaScript."""
    head = "".join(f"<th>{h}</th>" for h in HEADERS)
    body = "".join("<tr>" + "".join(f"<td>{_html.escape(c)}</td>" for c in row) + "</tr>\n" for row in rows(states))
    unknown = "".join(f"<li><code>{_html.escape(m)}</code></li>" for m in discovered)
    extra = (f"<h2>Machines not in cluster.yaml</h2><ul>{unknown}</ul>"
             "<p>Run <code>bootstrap-node discover</code> for a ready-to-paste <code>nodes:</code> snippet.</p>"
             if discovered else "")
    return (f'<!doctype html>\n<html><head><meta charset="utf-8"><meta http-equiv="refresh" '
            f'content="{REFRESH_SECONDS}"><title>bootstrap-node</title>'
            "<style>body{font-family:sans-serif}td,th{padding:2px 10px;text-align:left}"
            "tr:nth-child(even){background:#f3f3f3}</style></head><body>"
            f"<h1>bootstrap-node</h1><table><tr>{head}</tr>\n{body}</table>{extra}"
            '<p><a href="/status">JSON</a> · <a href="/metrics">metrics</a></p></body></html>\n')
