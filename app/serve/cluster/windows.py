"""Install windows as the Machines' status holds them (`status.installWindow`): the pure half, with no
I/O and no clock of its own (docs/high-availability.md, "Install windows across a takeover").

In cluster mode each replica keeps its own event log, so the window a leader opened must live in the
Machine, where the next leader reads it. The leader writes it *before* it answers (write-then-serve):

- `encode` turns what the policy keeps of an install (the window, the final config's callback
  credential, whether the install reported `installed`) into the object the status holds: hashes
  and deadlines, never a credential.
- `merged` feeds that object back into the policy's input: the node state the event log built, with
  the window, the callback credential and installed-ness taken from the Machine. The Machine wins:
  every change to them reached it before it reached any log, so a log can only be behind it.
- `status_patch` is the merge patch that makes the stored object equal a new encoding (keys it no
  longer has are removed with null), sent with the resourceVersion it was computed against: two
  replicas that both think they lead cannot both write from the same view (HTTP 409 for the second).
"""

from __future__ import annotations

import copy
import datetime as dt
from dataclasses import dataclass

from app.events.model import Event, NodeState, Phase, Window, epoch

FIELD = "installWindow"
# The keys `encode` writes; a stored key outside them is left alone by `status_patch`.
KEYS = ("opened", "deadline", "address", "linkMAC", "installCredentialHash", "installServed", "finalServed",
        "contested", "callbackCredentialHash", "callbackDeadline", "installed")
_PHASES = [p.value for p in Phase]
INSTALLED_AT = _PHASES.index(Phase.INSTALLED.value)


class WindowNotSaved(Exception):
    """The window could not be written to the Machine (the message says why): nothing is served."""


class WindowConflict(WindowNotSaved):
    """The Machine changed since it was read (409): decide again from what it holds now."""


@dataclass(frozen=True)
class Saved:
    """One Machine's install as its status holds it, at `version` (its resourceVersion)."""

    name: str
    version: str
    stored: dict | None  # status.installWindow as read
    window: Window | None
    callback_credential: str = ""
    callback_since: float = 0.0
    installed: bool = False


def timestamp(seconds: float) -> str:
    """RFC 3339 with microseconds: `epoch` reads back the very float a window was opened at."""
    return dt.datetime.fromtimestamp(seconds, dt.UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def encode(state: NodeState | None, window_seconds: float) -> dict | None:
    """What status.installWindow holds for `state`; None when there is nothing to hold."""
    if state is None:
        return None
    held: dict = {}
    window = state.window
    if window is not None:
        held.update(opened=timestamp(window.opened), deadline=timestamp(window.opened + window_seconds),
                    address=window.address, installServed=window.install_served, finalServed=window.final_served,
                    contested=window.contested)
        if window.link_mac:
            held["linkMAC"] = window.link_mac
        if window.install_credential:
            held["installCredentialHash"] = window.install_credential
    if state.callback_credential:
        held.update(callbackCredentialHash=state.callback_credential,
                    callbackDeadline=timestamp(state.callback_since + window_seconds))
    if state.installed:
        held["installed"] = True
    return held or None


def decode(name: str, version: str, status: dict | None, window_seconds: float) -> Saved:
    """A Machine's status as the policy's terms. A stored window the schema let through but that does
    not parse (no time it was opened) counts as no window: a PXE boot must open a fresh one."""
    status = status if isinstance(status, dict) else {}
    stored = status.get(FIELD) if isinstance(status.get(FIELD), dict) else None
    held = stored or {}
    phase = str(status.get("phase") or "")
    installed = bool(held.get("installed")) or (phase in _PHASES and _PHASES.index(phase) >= INSTALLED_AT)
    window = None
    opened = epoch(str(held.get("opened") or ""))
    if opened:
        window = Window(opened=opened, address=str(held.get("address") or ""), link_mac=str(held.get("linkMAC") or ""),
                        install_credential=str(held.get("installCredentialHash") or ""),
                        install_served=bool(held.get("installServed")), final_served=bool(held.get("finalServed")),
                        contested=bool(held.get("contested")))
    callback = str(held.get("callbackCredentialHash") or "")
    until = epoch(str(held.get("callbackDeadline") or ""))
    return Saved(name, version, stored, window, callback, until - window_seconds if callback and until else 0.0,
                 installed)



def merged(mac: str, local: NodeState | None, saved: Saved | None) -> NodeState | None:
    """The policy's node state: the log's (phase, history, disks) with the install taken from the
    Machine. No Machine in view: the log's state as it is (nothing can be written for it either)."""
    if saved is None:
        return local
    state = copy.deepcopy(local) if local is not None else NodeState(mac=mac, name=saved.name)
    state.window = copy.copy(saved.window)
    state.callback_credential, state.callback_since = saved.callback_credential, saved.callback_since
    state.installed = saved.installed
    return state


def after(mac: str, state: NodeState | None, events: list[Event]) -> NodeState | None:
    """`state` once `events` are applied, `state` itself untouched."""
    mine = [e for e in events if e.mac == mac]
    if not mine:
        return state
    result = copy.deepcopy(state) if state is not None else NodeState(mac=mac)
    for event in mine:
        result.apply(event)
    return result


def status_patch(stored: dict | None, wanted: dict | None) -> dict:
    """The status merge patch that turns `stored` into `wanted` (null removes)."""
    if wanted is None:
        return {FIELD: None}
    removed = {key: None for key in (stored or {}) if key in KEYS and key not in wanted}
    return {FIELD: {**removed, **wanted}}
