"""Controller health for traffic engineers, computed from the city's bookkeeping and ``now``.

Owns the status classification of a controller (online, offline, stale, flash, manual,
preempt, dark, fault), when its status last changed (outage durations), its message rate over a
sliding window, and the :class:`ControllerHealth` row engineers see. It reads the city's
``ControllerState`` (counters, offsets, online, stale, mode) and never writes it. Pure: no clock,
no I/O; every function takes ``now_ms``.
"""

from __future__ import annotations

import enum
from collections import Counter, deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from signal_gateway.core.city import ControllerState
from signal_gateway.core.model import Mode


class Status(enum.StrEnum):
    """One word for a controller's condition, worst first in :data:`STATUS_ORDER`."""

    ONLINE = "online"  # connected, reporting, normal mode
    OFFLINE = "offline"  # Last Will / online:false, or never heard from
    STALE = "stale"  # connected, but no report within the stale time
    FLASH = "flash"
    MANUAL = "manual"
    PREEMPT = "preempt"
    DARK = "dark"
    FAULT = "fault"


STATUS_ORDER: tuple[Status, ...] = (
    Status.OFFLINE,
    Status.STALE,
    Status.FAULT,
    Status.DARK,
    Status.FLASH,
    Status.MANUAL,
    Status.PREEMPT,
    Status.ONLINE,
)
"""Statuses from the most to the least alarming (dashboards sort by it)."""

_MODE_STATUS = {
    Mode.NORMAL: Status.ONLINE,
    Mode.FLASH: Status.FLASH,
    Mode.MANUAL: Status.MANUAL,
    Mode.PREEMPT: Status.PREEMPT,
    Mode.DARK: Status.DARK,
    Mode.FAULT: Status.FAULT,
    Mode.UNKNOWN: Status.STALE,  # nothing trustworthy known (J2735 noValidSPAT)
}


def classify(state: ControllerState) -> Status:
    """The status of one controller: offline beats stale beats its mode."""
    if not state.online:
        return Status.OFFLINE
    if state.stale or state.report is None:
        return Status.STALE
    return _MODE_STATUS[state.report.mode]


@dataclass(slots=True)
class RateWindow:
    """Receive times of the last ``window_ms``; the rate is their count per second."""

    window_ms: int = 10_000
    times: deque[int] = field(default_factory=lambda: deque(maxlen=1024))

    def add(self, now_ms: int) -> None:
        """Count one message received at ``now_ms``."""
        self.times.append(now_ms)
        self._trim(now_ms)

    def rate(self, now_ms: int) -> float:
        """Messages per second over the last ``window_ms``."""
        self._trim(now_ms)
        return len(self.times) * 1000 / self.window_ms

    def _trim(self, now_ms: int) -> None:
        while self.times and self.times[0] <= now_ms - self.window_ms:
            self.times.popleft()


@dataclass(frozen=True, slots=True)
class RuleNote:
    """The last rule violation told for a controller."""

    kind: str
    severity: str
    at_ms: int
    message: str


@dataclass(frozen=True, slots=True)
class ControllerHealth:
    """One row of the engineers' table: everything known about one controller's health."""

    id: str
    status: Status
    status_since_ms: int | None
    online: bool
    stale: bool
    mode: str
    mode_since_ms: int | None
    last_rx_ms: int | None
    age_ms: int | None  # since the last accepted report
    rate_per_s: float
    accepted: int
    lost: int
    duplicates: int
    out_of_order: int
    restarts: int
    stale_episodes: int
    rejected: Mapping[str, int]
    clock_offset_ms: int | None
    clock_trusted: bool
    skewed: bool
    rules: Mapping[str, int]
    last_rule: RuleNote | None
    faulty: bool  # fault mode, or a critical rule broken within the fault window

    def as_dict(self) -> dict[str, object]:
        """The JSON row of ``GET /api/v1/engineer/controllers`` and the engineers' WebSocket."""
        last = self.last_rule
        return {
            "id": self.id,
            "status": self.status.value,
            "status_since_ms": self.status_since_ms,
            "online": self.online,
            "stale": self.stale,
            "mode": self.mode,
            "mode_since_ms": self.mode_since_ms,
            "last_rx_ms": self.last_rx_ms,
            "age_ms": self.age_ms,
            "rate_per_s": round(self.rate_per_s, 2),
            "accepted": self.accepted,
            "lost": self.lost,
            "duplicates": self.duplicates,
            "out_of_order": self.out_of_order,
            "restarts": self.restarts,
            "stale_episodes": self.stale_episodes,
            "rejected": dict(self.rejected),
            "rejected_total": sum(self.rejected.values()),
            "clock_offset_ms": self.clock_offset_ms,
            "clock_trusted": self.clock_trusted,
            "skewed": self.skewed,
            "rules": dict(self.rules),
            "last_rule": None
            if last is None
            else {
                "kind": last.kind,
                "severity": last.severity,
                "at_ms": last.at_ms,
                "message": last.message,
            },
            "faulty": self.faulty,
        }


@dataclass(slots=True)
class _Book:
    status: Status = Status.OFFLINE
    since_ms: int | None = None
    rate: RateWindow = field(default_factory=RateWindow)
    last_rule: RuleNote | None = None
    last_critical_ms: int | None = None


class HealthBook:
    """Per-controller health bookkeeping the city does not keep: status since, rate, rules."""

    def __init__(self, rate_window_ms: int = 10_000, fault_window_ms: int = 15 * 60_000) -> None:
        self.rate_window_ms = rate_window_ms
        self.fault_window_ms = fault_window_ms
        self._books: dict[str, _Book] = {}
        self._dirty: set[str] = set()

    def _book(self, intersection_id: str) -> _Book:
        book = self._books.get(intersection_id)
        if book is None:
            book = self._books[intersection_id] = _Book(rate=RateWindow(self.rate_window_ms))
        return book

    def on_accepted(self, intersection_id: str, now_ms: int) -> None:
        """Count an accepted report towards the message rate."""
        self._book(intersection_id).rate.add(now_ms)

    def on_rule(
        self, intersection_id: str, kind: str, severity: str, message: str, now_ms: int
    ) -> None:
        """Remember the last rule violation told (critical ones make the controller faulty)."""
        book = self._book(intersection_id)
        book.last_rule = RuleNote(kind, severity, now_ms, message)
        if severity == "critical":
            book.last_critical_ms = now_ms
            self._dirty.add(intersection_id)

    def observe(self, state: ControllerState, now_ms: int) -> tuple[Status, Status] | None:
        """Re-classify one controller; (old, new) if its status changed, else None."""
        book = self._book(state.intersection.id)
        status = classify(state)
        if status is book.status and book.since_ms is not None:
            return None
        old = book.status
        book.status = status
        book.since_ms = now_ms
        self._dirty.add(state.intersection.id)
        return (old, status) if old is not status else None

    def take_dirty(self) -> set[str]:
        """Ids whose status changed (or turned faulty) since the last call."""
        dirty, self._dirty = self._dirty, set()
        return dirty

    def status(self, intersection_id: str) -> tuple[Status, int | None]:
        """The last observed status of a controller and since when."""
        book = self._book(intersection_id)
        return book.status, book.since_ms

    def health(
        self, state: ControllerState, now_ms: int, rules: Mapping[str, int] | None = None
    ) -> ControllerHealth:
        """The full health row of one controller at ``now_ms``."""
        iid = state.intersection.id
        book = self._book(iid)
        status = classify(state)
        counts = state.counts
        rejected = {
            key.removeprefix("rejected:"): value
            for key, value in counts.items()
            if key.startswith("rejected:") and value
        }
        sample = state.sample
        report = state.report
        critical = book.last_critical_ms
        faulty = status is Status.FAULT or (
            critical is not None and now_ms - critical <= self.fault_window_ms
        )
        return ControllerHealth(
            id=iid,
            status=status,
            status_since_ms=book.since_ms if status is book.status else now_ms,
            online=state.online,
            stale=state.stale,
            mode=Mode.UNKNOWN.value if report is None else report.mode.value,
            mode_since_ms=state.mode_since_ms,
            last_rx_ms=state.last_rx_ms,
            age_ms=None if state.last_rx_ms is None else max(0, now_ms - state.last_rx_ms),
            rate_per_s=book.rate.rate(now_ms),
            accepted=counts["accepted"],
            lost=counts["lost"],
            duplicates=counts["duplicate"],
            out_of_order=counts["out_of_order"],
            restarts=counts["restarts"],
            stale_episodes=counts["stale_episodes"],
            rejected=rejected,
            clock_offset_ms=None if sample is None else sample.offset_ms,
            clock_trusted=sample is not None and sample.trusted,
            skewed=state.skewed,
            rules=dict(rules or {}),
            last_rule=book.last_rule,
            faulty=faulty,
        )


def count_statuses(rows: Iterable[ControllerHealth]) -> dict[str, int]:
    """Counts for the dashboard's header: every status, plus ``faults`` and ``total``."""
    counts: Counter[str] = Counter({status.value: 0 for status in Status})
    total = faults = 0
    for row in rows:
        counts[row.status.value] += 1
        total += 1
        faults += row.faulty
    out = dict(counts)
    out["faults"] = faults
    out["total"] = total
    return out
