"""Builders shared by the engineers' view tests: a small crossing, reports, a monitored city."""

from __future__ import annotations

from dataclasses import dataclass, field

from signal_gateway.core.city import CoreConfig, Event, Outcome
from signal_gateway.core.model import (
    Approach,
    GroupReading,
    Intersection,
    Mode,
    Movement,
    SignalGroup,
    SignalState,
    SpatReport,
    StatusReport,
)
from signal_gateway.core.monitor import Monitor, MonitoredCity
from signal_gateway.core.registry import Registry
from signal_gateway.core.rules import RuleConfig
from signal_gateway.testing import FakeClock

IID = "YT001"

# sg 2 E straight (the main group), 4 N straight, 1 W left, 9 N pedestrian.
GROUPS = (
    SignalGroup(2, Approach.E, Movement.STRAIGHT),
    SignalGroup(4, Approach.N, Movement.STRAIGHT),
    SignalGroup(1, Approach.W, Movement.LEFT),
    SignalGroup(9, Approach.N, Movement.PEDESTRIAN),
)
CONFLICTS = frozenset({frozenset({2, 4}), frozenset({1, 4}), frozenset({2, 9})})


def crossing(intersection_id: str = IID) -> Intersection:
    """A small crossing whose conflicts are listed explicitly: 2-4, 1-4, 2-9."""
    return Intersection(
        id=intersection_id,
        name_zh=f"测试路口{intersection_id}",
        name_en=f"Test crossing {intersection_id}",
        district="芝罘区",
        lat=37.5,
        lon=121.4,
        groups=GROUPS,
        conflicts=CONFLICTS,
    )


def registry(*ids: str) -> Registry:
    """A registry of crossings (default: YT001 and YT002)."""
    return Registry([crossing(i) for i in (ids or (IID, "YT002"))])


def g(
    sg: int,
    state: str,
    likely_s: float | None = None,
    min_s: float | None = None,
    max_s: float | None = None,
) -> GroupReading:
    """One group reading; seconds become ms; omitted min/max mean an exact end."""

    def ms(value: float | None) -> int | None:
        return None if value is None else round(value * 1000)

    return GroupReading(sg, SignalState(state), ms(likely_s), ms(min_s), ms(max_s), None)


def report(
    seq: int, ts_ms: int, *groups: GroupReading, mode: str = "normal", iid: str = IID
) -> SpatReport:
    """A SPaT report as the core sees it."""
    return SpatReport(iid, seq, ts_ms, Mode(mode), tuple(groups))


def kinds(events: tuple[Event, ...] | list[Event]) -> list[str]:
    """The kinds of some events."""
    return [event.kind for event in events]


@dataclass
class Rig:
    """A monitored city, a fake clock and a fake controller of YT001 (500 ms behind)."""

    city: MonitoredCity
    clock: FakeClock
    iid: str = IID
    seq: int = 0
    behind_ms: int = 500
    events: list[Event] = field(default_factory=list)

    def spat(self, *groups: GroupReading, mode: str = "normal", skew_ms: int = 0) -> Outcome:
        """Publish a report now (seq + 1), delivered 20 ms later."""
        self.seq += 1
        ts = self.clock.now_ms - self.behind_ms + skew_ms
        outcome = self.city.on_spat(
            report(self.seq, ts, *(groups or (g(2, "green"),)), mode=mode, iid=self.iid),
            self.clock.now_ms + 20,
        )
        self.events.extend(outcome.events)
        return outcome

    def resend(self, seq: int, *groups: GroupReading) -> Outcome:
        """Deliver a report with a given seq (duplicates, out of order)."""
        ts = self.clock.now_ms - self.behind_ms
        outcome = self.city.on_spat(
            report(seq, ts, *(groups or (g(2, "green"),)), iid=self.iid), self.clock.now_ms
        )
        self.events.extend(outcome.events)
        return outcome

    def status(self, online: bool) -> Outcome:
        """A status message; ``status(False)`` is the Last Will."""
        outcome = self.city.on_status(StatusReport(self.iid, online, None), self.clock.now_ms)
        self.events.extend(outcome.events)
        return outcome

    def tick(self, advance_ms: int = 0) -> tuple[Event, ...]:
        """Move the clock, then run the city's stale rule."""
        self.clock.advance(advance_ms)
        events = self.city.tick(self.clock.now_ms)
        self.events.extend(events)
        return events


def rig(rules: RuleConfig | None = None, config: CoreConfig | None = None) -> Rig:
    """A fresh rig over the two-crossing registry."""
    city = MonitoredCity(registry(), config, Monitor(rules))
    return Rig(city, FakeClock())
