"""Leader election over a coordination.k8s.io/v1 Lease: the decisions, with no I/O and no clock of
their own (docs/high-availability.md).

The rules are client-go's leaderelection, with a stricter fence:

- A replica takes the Lease when it is absent, released (no holder) or expired. "Expired" is judged
  by the replica's *own* monotonic clock: `lease_duration` after it last saw the record change. Clocks
  of different machines are never compared (renewTime is written for people and kubectl, not read).
- Every write carries the resourceVersion that was read: a conflict means someone else wrote first,
  and a leader that meets one stops leading at once.
- The holder renews every `retry_period`. It stops leading `renew_deadline` after the *start* of its
  last successful renewal, whatever its requests are doing. Another replica saw that renewal only
  after it was written, so it cannot take over before `lease_duration` after that start: between
  the two lies `lease_duration - renew_deadline`, the margin in which nobody leads.
- Taking over from another holder (or from no holder) increments leaseTransitions.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass
from enum import Enum

from app.serve.settings import LeaseSettings


@dataclass(frozen=True)
class Record:
    """A Lease's spec, as read or as it is to be written."""

    holder: str = ""  # holderIdentity; "" once released
    duration: int = 15  # leaseDurationSeconds, as the holder declared it
    acquired: str = ""  # acquireTime, RFC 3339 with microseconds (written for people, never compared)
    renewed: str = ""  # renewTime, likewise
    transitions: int = 0  # leaseTransitions

    def spec(self) -> dict:
        spec: dict = {"holderIdentity": self.holder or None, "leaseDurationSeconds": self.duration,
                      "leaseTransitions": self.transitions}
        if self.acquired:
            spec["acquireTime"] = self.acquired
        if self.renewed:
            spec["renewTime"] = self.renewed
        return spec

    @classmethod
    def from_spec(cls, spec: dict | None, default_duration: int) -> Record:
        spec = spec or {}
        return cls(holder=spec.get("holderIdentity") or "",
                   duration=int(spec.get("leaseDurationSeconds") or default_duration),
                   acquired=spec.get("acquireTime") or "", renewed=spec.get("renewTime") or "",
                   transitions=int(spec.get("leaseTransitions") or 0))


@dataclass(frozen=True)
class Lease:
    """What a GET returned: the record and the version any write must name."""

    record: Record
    version: str


class Act(str, Enum):
    CREATE = "create"  # no Lease yet: create it naming us
    RENEW = "renew"  # it names us: write a new renewTime
    TAKE = "take"  # released or expired: write ourselves in, one transition more
    WAIT = "wait"  # another replica holds it and, by our clock, may still be alive


@dataclass(frozen=True)
class Decision:
    act: Act
    write: Record | None = None  # what to write (CREATE, RENEW, TAKE)
    expires_in: float = 0.0  # WAIT: seconds until, by our clock, the holder's claim lapses


@dataclass(frozen=True)
class Seen:
    """The last record this replica saw and when (its monotonic clock) it first saw it so."""

    record: Record | None
    since: float


def observe(previous: Seen | None, record: Record | None, now: float) -> Seen:
    """The observation after reading `record` at `now`: the clock restarts only when it changed."""
    if previous is not None and previous.record == record:
        return previous
    return Seen(record, now)


def decide(me: str, lease: Lease | None, seen: Seen, now: float, wall: str, duration: int) -> Decision:
    """What to do about the Lease just read (`seen` already includes it). `wall` is the UTC time to
    write, `duration` our leaseDurationSeconds."""
    if lease is None:
        return Decision(Act.CREATE, Record(me, duration, wall, wall, 0))
    current = lease.record
    if current.holder == me:
        return Decision(Act.RENEW, dataclasses.replace(current, duration=duration, renewed=wall))
    if current.holder:
        lapses = seen.since + current.duration
        if now < lapses:
            return Decision(Act.WAIT, expires_in=lapses - now)
    return Decision(Act.TAKE, Record(me, duration, wall, wall, current.transitions + 1))


def released(current: Record, wall: str) -> Record:
    """The record a leader writes on a clean stop: no holder, so the next replica need not wait
    out the lease (client-go writes the same: a 1 s duration, the transitions kept)."""
    return Record("", 1, wall, wall, current.transitions)


class Role(str, Enum):
    STANDBY = "standby"
    LEADER = "leader"


@dataclass
class Candidate:
    """One replica's side of the election, fed what its I/O saw. Pure: times are arguments.

    `read(lease, t)` → (for CREATE/RENEW/TAKE) `wrote(ok, began, t)`, `began` being when the round's
    first request went out; and at any time `fence(t)`, which ends leadership once the renew deadline
    has passed."""

    me: str
    settings: LeaseSettings
    role: Role = Role.STANDBY
    seen: Seen | None = None
    deadline: float = 0.0  # stop leading at this monotonic time (kept after, saying when it had to end)
    transitions: int = 0  # the Lease's count when last read or written
    lost_because: str = ""  # why leadership last ended, for the event saying so
    _pending: Decision | None = None

    def read(self, lease: Lease | None, now: float, wall: str) -> Decision:
        self.seen = observe(self.seen, lease.record if lease else None, now)
        decision = decide(self.me, lease, self.seen, now, wall, self.settings.lease_duration)
        if lease is not None:
            self.transitions = lease.record.transitions
        if self.role is Role.LEADER and decision.act is not Act.RENEW:
            holder = lease.record.holder if lease else ""
            self._stop(f"the Lease now names {holder!r}" if holder else "the Lease was deleted or released")
        self._pending = decision if decision.act is not Act.WAIT else None
        return decision

    def wrote(self, ok: bool, began: float, now: float, conflict: bool = False) -> None:
        """The outcome of the write `read` asked for. A conflict: someone else wrote in between. A
        write that succeeded only after the renew deadline (counted from `began`) gives no leadership:
        by then another replica may be about to take over."""
        decision, self._pending = self._pending, None
        if decision is None:
            return
        if ok and now < began + self.settings.renew_deadline:
            self.deadline = began + self.settings.renew_deadline  # before the role: leading() reads both
            self.role = Role.LEADER
            self.transitions = decision.write.transitions
            self.lost_because = ""
        elif ok:
            self._stop(f"the write took longer than the renew deadline ({self.settings.renew_deadline:g} s)")
        elif conflict and self.role is Role.LEADER:
            self._stop("another replica wrote the Lease (conflict)")

    def fence(self, now: float) -> bool:
        """End leadership if the renew deadline has passed; True if it ended just now."""
        if self.role is Role.LEADER and now >= self.deadline:
            self._stop(f"no renewal within the renew deadline ({self.settings.renew_deadline:g} s)")
            return True
        return False

    def leading(self, now: float) -> bool:
        """Whether this replica may act as leader at `now`: asked per request, so it holds even when
        the loop that fences has not run yet."""
        return self.role is Role.LEADER and now < self.deadline

    def _stop(self, why: str) -> None:
        self.role = Role.STANDBY  # the deadline stays: when the last leadership had to end, for reports
        self.lost_because = why


def rfc3339(moment: dt.datetime) -> str:
    """MicroTime's spelling, as the API server writes it."""
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
