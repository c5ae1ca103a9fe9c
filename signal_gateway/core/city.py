"""The live state of the city: judges reports, keeps every intersection's view, says what changed.

Owns per-controller bookkeeping (sequence numbers, restarts, clock offset, staleness, online
status, counters) and the rules for when a driver may see a number. Pure and synchronous, in the
manner of a sans-I/O protocol: callers pass parsed reports and the gateway time ``now_ms``; the
city returns an :class:`Outcome` and remembers which views changed until :meth:`City.take_changed`.
It must not import asyncio, MQTT, pydantic or web code, and never reads a clock.

A group's ``end_ms`` is a number only when everything below holds, else it is None:
the controller is online, its last report is younger than ``stale_after_ms``, its mode is
``normal``, its clock offset is trusted, and the controller knows the end (max - min within
``exact_tolerance_ms``). See docs/protocol.md, "When is a number shown". Over all of them: the
gateway must be connected to the broker (:meth:`City.set_link`). And while reports reach it
late (:meth:`City.set_timely`), offsets are not learned from them: a transit delay cannot be
told from a controller clock that is behind.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace

from signal_gateway.core.model import (
    GroupReading,
    Intersection,
    Mode,
    Rejection,
    SpatReport,
    StatusReport,
)
from signal_gateway.core.registry import Registry
from signal_gateway.core.timing import OffsetEstimator, OffsetSample, to_absolute
from signal_gateway.core.views import GroupView, IntersectionView, blank_group


@dataclass(frozen=True, slots=True)
class CoreConfig:
    """Thresholds of the core; every one is a documented setting (docs/configuration.md)."""

    stale_after_ms: int = 2500
    skew_threshold_ms: int = 1000
    step_tolerance_ms: int = 1000
    # Samples the clock-offset minimum is taken over: 30 s at 10 Hz, 5 min at 1 Hz. Long, so
    # that seconds of lag in the gateway or the broker (a burst, a busy core) cannot raise the
    # minimum and push every end late; a slow controller clock drifts a few ms in that time.
    offset_window: int = 300
    restart_seq_gap: int = 1000
    exact_tolerance_ms: int = 100  # one J2735 TimeMark tick
    end_jitter_ms: int = 20  # re-reported ends closer than this to the shown one keep it
    max_remaining_ms: int = 3_600_000
    max_clock_offset_ms: int = 86_400_000


@dataclass(frozen=True, slots=True)
class Event:
    """Something an engineer wants to know happened (health transitions, rule violations)."""

    at_ms: int
    intersection_id: str
    kind: str
    severity: str  # "info" | "warning" | "critical"
    message: str


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one report did: accepted or why not, whether a view changed, and any events."""

    result: str  # "accepted", "status", or a drop/rejection reason
    changed: bool = False
    events: tuple[Event, ...] = ()
    rejection: Rejection | None = None

    @property
    def accepted(self) -> bool:
        """Whether the report was taken into the city's state."""
        return self.result in ("accepted", "status")


@dataclass(slots=True)
class ControllerState:
    """Mutable bookkeeping for one controller; only the City touches it."""

    intersection: Intersection
    offsets: OffsetEstimator
    view: IntersectionView
    report: SpatReport | None = None
    sample: OffsetSample | None = None
    last_seq: int | None = None
    last_ts_ms: int | None = None
    last_rx_ms: int | None = None
    online: bool = False
    status_seen: bool = False
    offline_since_report: bool = False  # an offline status came after the last accepted report
    expect_restart: bool = False
    stale: bool = True
    skewed: bool = False
    mode_since_ms: int | None = None
    counts: Counter[str] = field(default_factory=Counter)


class City:
    """The live state of every intersection in the registry."""

    def __init__(self, registry: Registry, config: CoreConfig | None = None) -> None:
        self.registry = registry
        self.config = config or CoreConfig()
        self._states: dict[str, ControllerState] = {}
        for intersection in registry:
            self._states[intersection.id] = ControllerState(
                intersection=intersection,
                offsets=self._new_estimator(),
                view=_unknown_view(intersection),
            )
        self._changed: set[str] = set()
        self.totals: Counter[str] = Counter()
        self.link_ok = True  # connected to the broker
        self.timely = True  # and reports are not held up on the way

    def _new_estimator(self) -> OffsetEstimator:
        return OffsetEstimator(
            window=self.config.offset_window, step_tolerance_ms=self.config.step_tolerance_ms
        )

    # -- reading -----------------------------------------------------------------------------

    def view(self, intersection_id: str) -> IntersectionView:
        """The current view of one intersection (KeyError for ids not in the registry)."""
        return self._states[intersection_id].view

    def views(self) -> Iterator[IntersectionView]:
        """Every intersection's current view, in registry order."""
        return (state.view for state in self._states.values())

    def state(self, intersection_id: str) -> ControllerState:
        """Bookkeeping of one controller, read-only by convention (health, engineers' view)."""
        return self._states[intersection_id]

    def states(self) -> Iterable[ControllerState]:
        """Bookkeeping of every controller, in registry order."""
        return self._states.values()

    def take_changed(self) -> set[str]:
        """Ids whose view changed since the last call; the caller now owns the set."""
        changed, self._changed = self._changed, set()
        return changed

    # -- writing -----------------------------------------------------------------------------

    def reject(self, rejection: Rejection, now_ms: int) -> Outcome:
        """Count a payload the edge refused (bad JSON, schema, size...)."""
        return self._refuse(rejection, now_ms)

    def on_status(self, report: StatusReport, now_ms: int) -> Outcome:
        """Take a controller's online/offline status (retained message or Last Will)."""
        state = self._states.get(report.intersection_id)
        if state is None:
            return self._refuse(
                Rejection(
                    "unknown_intersection",
                    f"id: {report.intersection_id!r} is not in the registry",
                    report.intersection_id,
                ),
                now_ms,
            )
        state.counts["status"] += 1
        self.totals["status"] += 1
        events: list[Event] = []
        if report.online and state.report is not None:
            # A controller announcing itself again has (re)connected: its seq may start over.
            state.expect_restart = True
        if state.online != report.online or not state.status_seen:
            kind = "online" if report.online else "offline"
            if state.status_seen or not report.online:
                events.append(
                    Event(now_ms, state.intersection.id, kind, _ONLINE_SEVERITY[kind], _msg(kind))
                )
        state.status_seen = True
        state.online = report.online
        if not report.online:
            # Rule 1 of "When is a number shown": after a Will / online:false, numbers stay
            # withheld until the controller's next message, even if it says online:true first.
            state.offline_since_report = True
        changed = self._refresh(state, now_ms)
        return Outcome("status", changed, tuple(events))

    def on_spat(self, report: SpatReport, now_ms: int) -> Outcome:
        """Judge one SPaT report and, if it is good and new, make it the intersection's state."""
        state = self._states.get(report.intersection_id)
        if state is None:
            return self._refuse(
                Rejection(
                    "unknown_intersection",
                    f"id: {report.intersection_id!r} is not in the registry",
                    report.intersection_id,
                ),
                now_ms,
            )
        rejection = judge_spat(report, state.intersection, now_ms, self.config)
        if rejection is not None:
            return self._refuse(rejection, now_ms)

        events: list[Event] = []
        restarted = False
        lost = 0
        if state.last_seq is not None and state.last_ts_ms is not None:
            if state.expect_restart and report.seq <= state.last_seq:
                restarted = True
            elif report.seq == state.last_seq:
                return self._drop(state, "duplicate")
            elif report.seq < state.last_seq:
                big_jump = state.last_seq - report.seq >= self.config.restart_seq_gap
                if big_jump or report.ts_ms > state.last_ts_ms:
                    restarted = True
                else:
                    return self._drop(state, "out_of_order")
            elif report.seq > state.last_seq + 1:
                lost = report.seq - state.last_seq - 1
        if restarted:
            state.offsets.reset()
            state.counts["restarts"] += 1
            events.append(
                Event(
                    now_ms,
                    state.intersection.id,
                    "restart",
                    "warning",
                    f"controller restarted: seq went from {state.last_seq} to {report.seq}",
                )
            )

        if self.timely:
            sample = state.offsets.add(now_ms, report.ts_ms)
        else:  # held up on the way: learning from it would take the delay for clock offset
            sample = state.offsets.peek(now_ms, report.ts_ms)
        if not sample.trusted and sample.late_ms > self.config.stale_after_ms:
            # Older than the stale time on arrival (a backlog after a broker hang): discard.
            return self._drop(state, "too_old")
        if sample.stepped:
            events.append(
                Event(
                    now_ms,
                    state.intersection.id,
                    "clock_step",
                    "warning",
                    f"controller clock stepped; offset now {sample.offset_ms} ms",
                )
            )
        skewed = abs(sample.offset_ms) > self.config.skew_threshold_ms
        if skewed != state.skewed:
            state.skewed = skewed
            kind = "skew" if skewed else "skew_cleared"
            events.append(
                Event(
                    now_ms,
                    state.intersection.id,
                    kind,
                    "warning" if skewed else "info",
                    f"clock offset {sample.offset_ms} ms "
                    f"({'beyond' if skewed else 'within'} ±{self.config.skew_threshold_ms} ms)",
                )
            )
        previous_mode = state.report.mode if state.report is not None else None
        if previous_mode is not report.mode:
            state.mode_since_ms = now_ms
            if previous_mode is not None:
                events.append(
                    Event(
                        now_ms,
                        state.intersection.id,
                        "mode",
                        "info" if report.mode is Mode.NORMAL else "warning",
                        f"mode {previous_mode.value} -> {report.mode.value}",
                    )
                )
        if not state.online:
            if state.status_seen:
                events.append(
                    Event(now_ms, state.intersection.id, "online", "info", _msg("online"))
                )
            state.online = True  # the broker delivered it: the controller is connected
        state.expect_restart = False
        state.offline_since_report = False
        state.counts["lost"] += lost  # counted only now: a dropped report moves no seq
        state.report = report
        state.sample = sample
        state.last_seq = report.seq
        state.last_ts_ms = report.ts_ms
        state.last_rx_ms = now_ms
        state.counts["accepted"] += 1
        self.totals["accepted"] += 1
        was_stale = state.stale
        state.stale = False
        if was_stale and state.counts["accepted"] > 1:
            events.append(Event(now_ms, state.intersection.id, "fresh", "info", _msg("fresh")))
        changed = self._refresh(state, now_ms)
        return Outcome("accepted", changed, tuple(events))

    def set_link(self, ok: bool, now_ms: int) -> bool:
        """Whether the gateway is connected to the broker; returns whether any view changed.

        While it is not, no report can arrive, so every view shows no time at once (``stale``)
        rather than after the stale time; reconnected, views within the stale time show theirs.
        """
        if ok is self.link_ok:
            return False
        self.link_ok = ok
        changed = False
        for state in self._states.values():
            changed |= self._refresh(state, now_ms)
        return changed

    def set_timely(self, timely: bool) -> None:
        """Whether reports reach the gateway without extra delay (its probe of the broker).

        A report's transit delay cannot be told from its controller's clock offset: a delay
        that lasts would be learned as offset, and every end shown late by it. While reports
        are held up (a slow link, a backlog the gateway is working through) the estimates learn
        nothing; reports are converted with what was learned before, and withheld if later
        than it allows (see ``OffsetEstimator.peek``).
        """
        self.timely = timely

    def tick(self, now_ms: int) -> tuple[Event, ...]:
        """Advance time: intersections with no report for ``stale_after_ms`` go stale."""
        events: list[Event] = []
        limit = self.config.stale_after_ms
        for state in self._states.values():
            if state.stale or state.last_rx_ms is None:
                continue
            if now_ms - state.last_rx_ms > limit:
                state.stale = True
                state.counts["stale_episodes"] += 1
                events.append(
                    Event(now_ms, state.intersection.id, "stale", "warning", _msg("stale"))
                )
                self._refresh(state, now_ms)
        return tuple(events)

    # -- internals ---------------------------------------------------------------------------

    def _refuse(self, rejection: Rejection, now_ms: int) -> Outcome:
        self.totals[rejection.reason] += 1
        state = self._states.get(rejection.intersection_id or "")
        if state is not None:
            state.counts["rejected:" + rejection.reason] += 1
        return Outcome(rejection.reason, rejection=rejection)

    def _drop(self, state: ControllerState, reason: str) -> Outcome:
        state.counts[reason] += 1
        self.totals[reason] += 1
        return Outcome(reason)

    def _refresh(self, state: ControllerState, now_ms: int) -> bool:
        """Rebuild one view; remember the id if what clients see changed.

        ``updated_ms`` alone moves with every accepted report; the new view is kept (snapshots
        and HTTP show it) but not reported as changed, else every 1 Hz re-report of the same
        ends would be pushed to every client while a countdown merely runs.
        """
        old = state.view
        view = build_view(state, self.config, link_ok=self.link_ok)
        if view == old:
            return False
        state.view = view
        if replace(view, updated_ms=old.updated_ms) == old:
            return False
        self._changed.add(state.intersection.id)
        return True


def judge_spat(
    report: SpatReport, intersection: Intersection, now_ms: int, config: CoreConfig
) -> Rejection | None:
    """The registry- and plausibility rules a well-formed report must also pass."""
    iid = intersection.id
    offset = now_ms - report.ts_ms
    if abs(offset) > config.max_clock_offset_ms:
        return Rejection(
            "absurd_time",
            f"ts_ms: {report.ts_ms} is {offset / 3_600_000:+.1f} h away from the gateway clock",
            iid,
        )
    seen: set[int] = set()
    for index, group in enumerate(report.groups):
        where = f"groups[{index}]"
        if intersection.group(group.sg) is None:
            return Rejection(
                "unknown_group", f"{where}.sg: {group.sg} is not a group of {iid}", iid
            )
        if group.sg in seen:
            return Rejection("duplicate_group", f"{where}.sg: {group.sg} is listed twice", iid)
        seen.add(group.sg)
        for name, value in (
            ("remaining_s", group.likely_ms),
            ("min_remaining_s", group.min_ms),
            ("max_remaining_s", group.max_ms),
        ):
            if value is not None and value < 0:
                return Rejection(
                    "absurd_time", f"{where}.{name}: {value / 1000} s is negative", iid
                )
            if value is not None and value > config.max_remaining_ms:
                return Rejection(
                    "absurd_time",
                    f"{where}.{name}: {value / 1000} s exceeds {config.max_remaining_ms / 1000} s",
                    iid,
                )
        low, high = group.min_ms, group.max_ms
        if low is not None and high is not None and low > high:
            return Rejection(
                "inconsistent_timing",
                f"{where}: min_remaining_s {low / 1000} > max_remaining_s {high / 1000}",
                iid,
            )
        likely = group.likely_ms
        if likely is not None and (
            (low is not None and likely < low) or (high is not None and likely > high)
        ):
            return Rejection(
                "inconsistent_timing",
                f"{where}.remaining_s: {likely / 1000} is outside [{_secs(low)}, {_secs(high)}]",
                iid,
            )
    return None


def build_view(
    state: ControllerState, config: CoreConfig, *, link_ok: bool = True
) -> IntersectionView:
    """The view of one controller's state; numbers only where the module docstring allows."""
    intersection = state.intersection
    report = state.report
    if report is None:
        unknown = _unknown_view(intersection)
        return IntersectionView(unknown.id, unknown.mode, state.online, True, None, unknown.groups)
    sample = state.sample
    trusted = sample is not None and sample.trusted
    stale = state.stale or not link_ok
    countdowns = (
        state.online
        and not state.offline_since_report
        and not stale
        and report.mode is Mode.NORMAL
        and trusted
    )
    readings = {group.sg: group for group in report.groups}
    previous = {group.sg: group for group in state.view.groups}
    groups: list[GroupView] = []
    for registered in intersection.groups:
        reading = readings.get(registered.sg)
        if reading is None:
            groups.append(blank_group(registered.sg))
        elif not countdowns or sample is None:
            groups.append(blank_group(registered.sg, reading.state))
        else:
            group = _timed_group(reading, report.ts_ms, sample.offset_ms, config)
            groups.append(_steady(previous.get(registered.sg), group, config.end_jitter_ms))
    return IntersectionView(
        id=intersection.id,
        mode=report.mode,
        online=state.online,
        stale=stale,
        updated_ms=state.last_rx_ms,
        groups=tuple(groups),
    )


def _timed_group(
    reading: GroupReading, ts_ms: int, offset_ms: int, config: CoreConfig
) -> GroupView:
    likely = to_absolute(ts_ms, offset_ms, reading.likely_ms)
    low = to_absolute(ts_ms, offset_ms, reading.min_ms)
    high = to_absolute(ts_ms, offset_ms, reading.max_ms)
    if low is None and high is None:
        low = high = likely  # the contract: omitted min/max mean a fixed-time (exact) end
    end: int | None = None
    if low is not None and high is not None and high - low <= config.exact_tolerance_ms:
        end = likely if likely is not None and low <= likely <= high else high
    return GroupView(reading.sg, reading.state, end, low, high, likely, reading.confidence)


def _steady(old: GroupView | None, new: GroupView, jitter_ms: int) -> GroupView:
    """Keep the shown times when a re-report moves them by less than the jitter bound.

    Controllers round their countdowns; without this every 1 Hz report would move each end
    by a few ms and be sent to every client although nothing a driver sees changed.
    """
    if old is None or old.state is not new.state or old.confidence != new.confidence:
        return new

    def keep(before: int | None, after: int | None) -> int | None:
        if before is None or after is None:
            return after
        return before if abs(after - before) < jitter_ms else after

    return GroupView(
        new.sg,
        new.state,
        keep(old.end_ms, new.end_ms),
        keep(old.min_end_ms, new.min_end_ms),
        keep(old.max_end_ms, new.max_end_ms),
        keep(old.likely_end_ms, new.likely_end_ms),
        new.confidence,
    )


def _unknown_view(intersection: Intersection) -> IntersectionView:
    return IntersectionView(
        id=intersection.id,
        mode=Mode.UNKNOWN,
        online=False,
        stale=True,
        updated_ms=None,
        groups=tuple(blank_group(group.sg) for group in intersection.groups),
    )


def _secs(value: int | None) -> str:
    return "-" if value is None else f"{value / 1000}"


_ONLINE_SEVERITY = {"online": "info", "offline": "critical"}


def _msg(kind: str) -> str:
    return {
        "online": "controller online",
        "offline": "controller offline (status or Last Will)",
        "stale": "no report within the stale time",
        "fresh": "reports resumed",
    }[kind]
