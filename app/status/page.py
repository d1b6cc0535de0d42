"""The status page at `/`: server-rendered HTML with inline SVG timelines, no JavaScript.

Every string that reaches the page may come from the network (MACs, callback messages, addresses,
file names), so each goes through `esc` exactly once, at the point it is placed in markup. A
Content-Security-Policy forbids scripts outright, so a missed escape still could not run code.
"""

from __future__ import annotations

import html as _html

from app.events import PHASES, epoch
from app.events.disks import disk_line
from app.status.text import clock, download_text, duration, last_error, senders_text, summary_text, total
from app.status.view import AlertGroup, NodeView, StatusView

REFRESH_SECONDS = 5
TIMELINE_WIDTH = 1000  # SVG user units; the SVG stretches to the row's width
TIMELINE_HEIGHT = 18
# Boot in blues, install in ambers, cluster in greens: a glance tells how far a node got.
COLOURS = {"dhcp": "#9ecae1", "tftp": "#6baed6", "ipxe": "#4292c6", "kernel": "#2171b5",
           "install-ignition": "#fdd49e", "installing": "#fdae6b", "installed": "#e6550d",
           "final-ignition": "#a1d99b", "kubeadm": "#74c476", "joined": "#31a354", "ready": "#006d2c"}
CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"

CSS = """
:root{--fg:#1d2329;--muted:#5b6670;--line:#dde3e8;--bad:#b3261e;--badbg:#fdecea;--ok:#006d2c}
*{box-sizing:border-box}
body{font:15px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:var(--fg);margin:0;padding:12px 16px 32px;max-width:1200px}
h1{font-size:1.3rem;margin:0 0 4px}h2{font-size:1.05rem;margin:20px 0 8px}
.summary{font-size:1.05rem;margin:0 0 12px}.summary b{font-weight:600}
.muted{color:var(--muted)}code{font-size:.92em;overflow-wrap:anywhere}
.legend{display:flex;flex-wrap:wrap;gap:4px 12px;font-size:.8rem;color:var(--muted);margin:0 0 10px;padding:0;list-style:none}
.legend i{display:inline-block;width:10px;height:10px;border-radius:2px;margin-right:4px;vertical-align:-1px}
.node{display:grid;grid-template-columns:minmax(11rem,16rem) 1fr;gap:2px 16px;padding:10px 0;border-top:1px solid var(--line)}
.who{overflow-wrap:anywhere}.who .name{font-weight:600}
.phase{display:inline-block;padding:0 6px;border-radius:8px;background:#eef2f5;font-size:.85rem}
.phase.ready{background:#d9f0d3;color:var(--ok)}.phase.failed{background:var(--badbg);color:var(--bad)}
svg.timeline{display:block;width:100%;height:18px;background:#f4f6f8;border-radius:3px}
ol.phases{list-style:none;margin:4px 0 0;padding:0;display:flex;flex-wrap:wrap;gap:2px 10px;font-size:.8rem;color:var(--muted)}
ol.phases i{display:inline-block;width:8px;height:8px;border-radius:2px;margin-right:3px}
.download{font-size:.85rem;margin-top:4px}.download progress{width:12rem;max-width:60%;vertical-align:middle;margin-right:6px}
.error{color:var(--bad);background:var(--badbg);border-radius:4px;padding:2px 6px;margin-top:4px;overflow-wrap:anywhere}
.alerts{border:1px solid var(--line);border-radius:6px;padding:4px 12px}
.alerts li{margin:6px 0;overflow-wrap:anywhere}.alerts .count{font-weight:600;color:var(--bad)}
footer{margin-top:24px;font-size:.85rem}
@media (max-width:640px){.node{grid-template-columns:1fr}body{padding:8px 10px 24px}}
"""


def esc(value: object) -> str:
    return _html.escape(str(value), quote=True)


def html(view: StatusView) -> str:
    """The whole page; it reloads itself every REFRESH_SECONDS with a meta tag."""
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
        f'<meta http-equiv="refresh" content="{REFRESH_SECONDS}">'
        '<link rel="icon" href="data:,"><title>bootstrap-node status</title>'
        f"<style>{CSS}</style></head><body>\n"
        f'<h1>bootstrap-node</h1><p class="summary" id="summary">{esc(summary_text(view))}</p>\n'
        f"{_alerts(view)}<h2>Nodes</h2>{_legend()}"
        f'<section id="nodes" aria-label="nodes">{"".join(_node(n, view.span) for n in view.nodes)}</section>\n'
        f'<footer class="muted">As of {esc(view.generated)}; refreshes every {REFRESH_SECONDS}s. '
        '<a href="/status">JSON</a> · <a href="/metrics">metrics</a></footer>\n</body></html>\n')


def _legend() -> str:
    items = "".join(f'<li><i style="background:{COLOURS[p]}"></i>{esc(p)}</li>' for p in PHASES)
    return f'<ul class="legend" aria-label="phase colours">{items}</ul>\n'


def _node(node: NodeView, span: tuple[float, float]) -> str:
    badge = "failed" if node.failed else ("ready" if node.ready else "")
    step = f"step {node.step}/{len(PHASES)}" if node.step else "waiting for its first PXE boot"
    parts = [f'<div class="timeline-cell">{_timeline(node, span)}{_chips(node)}']
    if node.download and not node.installed:
        parts.append(_download(node))
    if node.failed:
        parts.append(f'<div class="error" role="alert">{esc(last_error(node))}</div>')
    if node.disks:
        parts.append(_disks(node))
    parts.append("</div>")
    return (f'<article class="node" data-mac="{esc(node.mac)}"><div class="who">'
            f'<div class="name">{esc(node.name)}</div><code>{esc(node.mac)}</code><br>'
            f'<span class="phase {badge}">{esc(node.phase)}</span> <span class="muted">{esc(step)}</span></div>'
            + "".join(parts) + "</article>\n")


def _disks(node: NodeView) -> str:
    """The disks the machine reported, open when its install failed (a refused install_disk is the
    usual reason: the list shows what to set instead)."""
    items = "".join(f"<li><code>{esc(d.path)}</code> {esc(disk_line(d))}"
                    + (f' <span class="muted">(not for install_disk: {esc(d.unsuitable)})</span>' if d.unsuitable
                       else "") + "</li>" for d in node.disks)
    return (f'<details class="disks"{" open" if node.failed else ""}><summary>{len(node.disks)} disks reported'
            f'</summary><ul>{items}</ul></details>')


def _timeline(node: NodeView, span: tuple[float, float]) -> str:
    """Each phase a rect placed on the time axis all rows share; hover shows its duration."""
    start, end = span
    scale = TIMELINE_WIDTH / max(end - start, 1.0)
    rects = []
    for seg in node.segments:
        x = (epoch(seg.start) - start) * scale
        width = max(seg.seconds * scale, 3.0)  # a phase of a moment still shows as a sliver
        tip = f"{seg.phase}: {duration(seg.seconds)} (from {clock(seg.start)})"
        rects.append(f'<rect x="{x:.1f}" y="0" width="{width:.1f}" height="{TIMELINE_HEIGHT}" '
                     f'fill="{COLOURS.get(seg.phase, "#999")}"><title>{esc(tip)}</title></rect>')
    if node.failed and node.segments:
        end = (epoch(node.segments[-1].start) + node.segments[-1].seconds - start) * scale
        rects.append(f'<rect x="{max(end - 4, 0):.1f}" y="0" width="4" height="{TIMELINE_HEIGHT}" fill="#b3261e">'
                     f"<title>{esc(last_error(node))}</title></rect>")
    label = f"{node.name}: " + (", ".join(f"{s.phase} {duration(s.seconds)}" for s in node.segments) or "no boot yet")
    return (f'<svg class="timeline" viewBox="0 0 {TIMELINE_WIDTH} {TIMELINE_HEIGHT}" preserveAspectRatio="none" '
            f'role="img" aria-label="{esc(label)}">{"".join(rects)}</svg>')


def _chips(node: NodeView) -> str:
    if not node.segments:
        return ""
    items = "".join(f'<li><i style="background:{COLOURS.get(s.phase, "#999")}"></i>{esc(s.phase)} '
                    f"{esc(_chip_time(node, s))}</li>" for s in node.segments)
    return f'<ol class="phases">{items}</ol>'


def _chip_time(node: NodeView, segment) -> str:
    # Ready is where the path ends: its chip tells how long the whole way took.
    return f"after {duration(total(node))}" if segment.phase == "ready" else duration(segment.seconds)


def _download(node: NodeView) -> str:
    download = node.download
    bar = (f'<progress value="{download.sent}" max="{download.size}"></progress>'
           if download.size else "")
    return f'<div class="download">{bar}<span>{esc(download_text(download))}</span></div>'


def _alerts(view: StatusView) -> str:
    items = [_alert(group) for group in view.alerts]
    if view.dnsmasq_restarts:
        items.append(f'<li><span class="count">{view.dnsmasq_restarts}×</span> dnsmasq restarted '
                     f'(last at {esc(clock(view.last_dnsmasq_restart))}): PXE answers paused while it came back</li>')
    if view.write_failures:
        items.append(f'<li><span class="count">{view.write_failures}×</span> an event could not be written '
                     "to events.jsonl (disk full or unwritable?): boot answers went out, the record is "
                     "incomplete</li>")
    if view.unknown:
        machines = "".join(f"<li><code>{esc(u.mac)}</code>" + (f" from {esc(u.address)}" if u.address else "")
                           + f' <span class="muted">first seen {esc(clock(u.first_seen))}</span></li>'
                           for u in view.unknown)
        items.append(f'<li><span class="count">{len(view.unknown)}</span> unknown machine(s) PXE-booted; '
                     f"<code>bootstrap-node discover</code> prints a <code>nodes:</code> snippet for them"
                     f"<ul>{machines}</ul></li>")
    body = f"<ul>{''.join(items)}</ul>" if items else '<p class="muted">No alerts.</p>'
    return f'<h2>Alerts</h2><section class="alerts" id="alerts">{body}</section>\n'


def _alert(group: AlertGroup) -> str:
    last = ", ".join(part for part in (
        esc(senders_text(group)),
        f"last on {esc(group.last_route)}" if group.last_route else "",
        f"for {esc(group.last_node)}" if group.last_node else "") if part)
    return (f'<li><span class="count">{group.count}×</span> {esc(group.reason)}'
            + (f' <span class="muted">({last})</span>' if last else "") + "</li>")
