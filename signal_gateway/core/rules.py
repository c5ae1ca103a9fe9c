"""SPaT consistency rules: judge each accepted report against the one before it, live.

Owns the rule catalogue (name, severity, what it checks), the per-intersection memory the
rules need (each group's state and when it began, the cycle being measured, which conflicts
are already open), and the repeat limit that keeps a misbehaving controller from flooding the
event log. Produces core :class:`~signal_gateway.core.city.Event` objects of kind
``rule:<name>``. Pure: no clock (``now_ms`` is passed in), no I/O, no asyncio. It must not
touch the city's state; the caller (``core.monitor``) hands it the previous and the new report.

The rules follow the US DOT conflict monitor (jpo-conflictmonitor) and ATSPM event codes,
adapted to Chinese practice (GB 14886: green → flashing green → yellow → red; pedestrians
green → flashing green → red), see /work/shared/reference/signals.md:

* ``conflicting_greens`` (critical): two groups the registry marks as conflicting are green
  (or flashing green) in the same report.
* ``forbidden_transition`` (critical): a group moves between two states of the normal cycle
  in a way the transition table does not allow (green → red skips the clearance).
* ``short_yellow`` (critical): a vehicle yellow announced or measured shorter than 3 s
  (less a 200 ms tolerance for rounding), from the change into yellow to the change out of it,
  each placed where the report before it predicted, so a late report does not shorten it.
* ``min_end_earlier`` / ``max_end_later`` (warning): within one state, minEndTime moved earlier
  or maxEndTime moved later by more than 100 ms (one TimeMark tick) between reports.
* ``countdown_jump`` (warning): within one state, an exact end (the number a driver sees)
  moved by more than ``countdown_jump_ms`` (ATSPM would call it a timing correction).
* ``cycle_length_change`` (info): the fixed-time cycle, measured from one start of green of the
  main group to the next, changed by more than ``cycle_tolerance_ms`` (Indiana code 132).

Rules comparing two reports only run when the pair is *continuous*: consecutive ``seq``, no
restart or clock step in between, both in ``normal`` mode. A lost report may have carried the
flashing green that makes a green → red legal, and that loss is counted elsewhere.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field

from signal_gateway.core.city import Event
from signal_gateway.core.model import (
    GroupReading,
    Intersection,
    Mode,
    Movement,
    SignalState,
    SpatReport,
)

S = SignalState

GO_STATES = frozenset({S.GREEN, S.FLASHING_GREEN})
"""States in which traffic may enter: two conflicting groups must never both be in one."""

CYCLE_STATES = frozenset({S.RED, S.RED_YELLOW, S.GREEN, S.FLASHING_GREEN, S.YELLOW})
"""States of the normal cycle; transitions into or out of flash and dark are mode changes."""

Transitions = Mapping[SignalState, frozenset[SignalState]]

VEHICLE_TRANSITIONS: Transitions = {
    S.GREEN: frozenset({S.FLASHING_GREEN, S.YELLOW}),
    S.FLASHING_GREEN: frozenset({S.YELLOW}),
    S.YELLOW: frozenset({S.RED}),
    S.RED: frozenset({S.GREEN, S.RED_YELLOW}),
    S.RED_YELLOW: frozenset({S.GREEN}),
}
"""Allowed changes of a vehicle group: GB 14886 plus red+yellow where controllers use it."""

PEDESTRIAN_TRANSITIONS: Transitions = {
    S.GREEN: frozenset({S.FLASHING_GREEN}),
    S.FLASHING_GREEN: frozenset({S.RED}),
    S.RED: frozenset({S.GREEN}),
}
"""Allowed changes of a pedestrian group: green, flashing green, red (no yellow)."""


@dataclass(frozen=True, slots=True)
class Rule:
    """One consistency rule: its event kind is ``rule:<name>``."""

    name: str
    severity: str  # "info" | "warning" | "critical"
    description: str

    @property
    def kind(self) -> str:
        """The event kind this rule's violations carry."""
        return "rule:" + self.name


RULES: tuple[Rule, ...] = (
    Rule("conflicting_greens", "critical", "two conflicting groups green at the same time"),
    Rule("forbidden_transition", "critical", "a state change the transition table forbids"),
    Rule("short_yellow", "critical", "a vehicle yellow shorter than the minimum (3 s)"),
    Rule("min_end_earlier", "warning", "within one state, min end moved earlier by > 100 ms"),
    Rule("max_end_later", "warning", "within one state, max end moved later by > 100 ms"),
    Rule("countdown_jump", "warning", "within one state, an exact end jumped"),
    Rule("cycle_length_change", "info", "the fixed-time cycle length changed"),
)
"""Every rule, in the order they are evaluated."""

RULES_BY_NAME: Mapping[str, Rule] = {rule.name: rule for rule in RULES}
"""The catalogue by name."""


@dataclass(frozen=True, slots=True)
class RuleConfig:
    """Thresholds of the rules; each is a documented setting (``SIGNAL_GATEWAY_RULE_*``)."""

    min_yellow_ms: int = 3000
    yellow_tolerance_ms: int = 200  # rounding of the announced times at both ends of a yellow
    end_tolerance_ms: int = 100  # one J2735 TimeMark tick
    countdown_jump_ms: int = 1000
    cycle_tolerance_ms: int = 2000
    repeat_ms: int = 10_000  # one event per rule and intersection per this long; more are counted
    vehicle_transitions: Transitions = field(default_factory=lambda: dict(VEHICLE_TRANSITIONS))
    pedestrian_transitions: Transitions = field(
        default_factory=lambda: dict(PEDESTRIAN_TRANSITIONS)
    )


def parse_transitions(text: str) -> list[tuple[SignalState, SignalState]]:
    """Parse ``"green>red,yellow>green"`` into pairs; ValueError names the bad entry."""
    pairs: list[tuple[SignalState, SignalState]] = []
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        before, sep, after = item.partition(">")
        try:
            if not sep:
                raise ValueError
            pairs.append((SignalState(before.strip()), SignalState(after.strip())))
        except ValueError:
            states = ", ".join(s.value for s in SignalState)
            raise ValueError(f"{item!r} is not FROM>TO with states among {states}") from None
    return pairs


def with_allowed(
    table: Transitions, extra: list[tuple[SignalState, SignalState]]
) -> dict[SignalState, frozenset[SignalState]]:
    """A copy of a transition table that also allows the ``extra`` pairs."""
    out = dict(table)
    for before, after in extra:
        out[before] = out.get(before, frozenset()) | {after}
    return out


@dataclass(slots=True)
class _GroupTrack:
    """What the rules remember about one signal group."""

    state: SignalState
    since_ts_ms: int | None  # controller time the state began; None if its start was not seen
    yellow_flagged: bool = False


@dataclass(slots=True)
class _Track:
    """What the rules remember about one intersection."""

    pedestrians: frozenset[int] = frozenset()  # sg of pedestrian groups (registry)
    groups: dict[int, _GroupTrack] = field(default_factory=dict)
    open_conflicts: frozenset[frozenset[int]] = frozenset()
    cycle_start_ts_ms: int | None = None
    cycle_clean: bool = False
    last_cycle_ms: int | None = None
    last_emitted_ms: dict[str, int] = field(default_factory=dict)
    suppressed: Counter[str] = field(default_factory=Counter)
    counts: Counter[str] = field(default_factory=Counter)


@dataclass(frozen=True, slots=True)
class Violation:
    """One rule broken by one report (before the repeat limit decides whether to tell)."""

    rule: Rule
    message: str


class RuleBook:
    """Evaluates every rule per accepted report and remembers what the rules need."""

    def __init__(self, config: RuleConfig | None = None) -> None:
        self.config = config or RuleConfig()
        self._tracks: dict[str, _Track] = {}
        self.totals: Counter[str] = Counter()

    def counts(self, intersection_id: str) -> Mapping[str, int]:
        """Violations per rule name for one intersection, including those not told as events."""
        track = self._tracks.get(intersection_id)
        return {} if track is None else dict(track.counts)

    def forget(self, intersection_id: str) -> None:
        """Drop the pairwise memory of one intersection (offline, stale: next is a new start)."""
        track = self._tracks.get(intersection_id)
        if track is not None:
            track.groups.clear()
            track.open_conflicts = frozenset()
            track.cycle_start_ts_ms = None
            track.cycle_clean = False

    def evaluate(
        self,
        intersection: Intersection,
        previous: SpatReport | None,
        report: SpatReport,
        now_ms: int,
        *,
        continuous: bool,
    ) -> tuple[Event, ...]:
        """Judge ``report`` (just accepted) against ``previous``; returns the events to record.

        ``continuous``: the pair is consecutive (seq + 1), with no restart or clock step between.
        """
        track = self._tracks.get(intersection.id)
        if track is None:
            pedestrians = frozenset(
                g.sg for g in intersection.groups if g.movement is Movement.PEDESTRIAN
            )
            track = self._tracks[intersection.id] = _Track(pedestrians)
        pairwise = (
            continuous
            and previous is not None
            and previous.mode is Mode.NORMAL
            and report.mode is Mode.NORMAL
        )
        violations = list(_conflicts(intersection, report, track))
        if pairwise and previous is not None:
            violations += _transitions(track, previous, report, self.config)
            violations += _end_moves(previous, report, self.config)
        flagged: set[int] = set()
        starts: dict[int, int] = {}
        violations += _yellows(previous, report, track, pairwise, self.config, flagged, starts)
        violations += _cycle(intersection, report, track, pairwise, self.config)
        _remember(report, track, pairwise, flagged, starts)
        events: list[Event] = []
        for violation in violations:
            track.counts[violation.rule.name] += 1
            self.totals[violation.rule.name] += 1
            event = self._limit(intersection.id, track, violation, now_ms)
            if event is not None:
                events.append(event)
        return tuple(events)

    def _limit(
        self, intersection_id: str, track: _Track, violation: Violation, now_ms: int
    ) -> Event | None:
        """At most one event per rule and intersection per ``repeat_ms``; count the rest."""
        name = violation.rule.name
        last = track.last_emitted_ms.get(name)
        if last is not None and now_ms - last < self.config.repeat_ms:
            track.suppressed[name] += 1
            return None
        message = violation.message
        more = track.suppressed.pop(name, 0)
        if more:
            message += f" (+{more} more since the last event of this rule)"
        track.last_emitted_ms[name] = now_ms
        rule = violation.rule
        return Event(now_ms, intersection_id, rule.kind, rule.severity, message)


# -- the rules ---------------------------------------------------------------------------------


def _conflicts(intersection: Intersection, report: SpatReport, track: _Track) -> list[Violation]:
    """Conflicting greens: told when a pair starts being green together, not every report."""
    going = {group.sg for group in report.groups if group.state in GO_STATES}
    now_open = frozenset(pair for pair in intersection.conflicts if pair <= going)
    new = sorted(sorted(pair) for pair in now_open - track.open_conflicts)
    track.open_conflicts = now_open
    if not new:
        return []
    states = {group.sg: group.state.value for group in report.groups}
    pairs = "; ".join(f"sg {a} ({states[a]}) and sg {b} ({states[b]})" for a, b in new)
    return [
        Violation(
            RULES_BY_NAME["conflicting_greens"],
            f"conflicting groups green together: {pairs} (registry conflicts), seq {report.seq}",
        )
    ]


def _transitions(
    track: _Track, previous: SpatReport, report: SpatReport, config: RuleConfig
) -> list[Violation]:
    before = {group.sg: group.state for group in previous.groups}
    out: list[Violation] = []
    for group in report.groups:
        old = before.get(group.sg)
        new = group.state
        if old is None or old is new or old not in CYCLE_STATES or new not in CYCLE_STATES:
            continue
        table = (
            config.pedestrian_transitions
            if group.sg in track.pedestrians
            else config.vehicle_transitions
        )
        allowed = table.get(old, frozenset())
        if new in allowed:
            continue
        expected = "/".join(sorted(s.value for s in allowed)) or "nothing"
        out.append(
            Violation(
                RULES_BY_NAME["forbidden_transition"],
                f"sg {group.sg}: {old.value} -> {new.value} is not allowed "
                f"(after {old.value} comes {expected}), seq {previous.seq} -> {report.seq}",
            )
        )
    return out


def _bounds(group: GroupReading, ts_ms: int) -> tuple[int | None, int | None, int | None]:
    """(min end, max end, likely end) on the controller clock; omitted min/max mean exact."""
    likely = None if group.likely_ms is None else ts_ms + group.likely_ms
    if group.min_ms is None and group.max_ms is None:
        return likely, likely, likely
    low = None if group.min_ms is None else ts_ms + group.min_ms
    high = None if group.max_ms is None else ts_ms + group.max_ms
    return low, high, likely


def _exact(low: int | None, high: int | None, tolerance_ms: int) -> bool:
    return low is not None and high is not None and high - low <= tolerance_ms


def _end_moves(previous: SpatReport, report: SpatReport, config: RuleConfig) -> list[Violation]:
    before = {group.sg: group for group in previous.groups}
    tolerance = config.end_tolerance_ms
    out: list[Violation] = []
    for group in report.groups:
        old = before.get(group.sg)
        if old is None or old.state is not group.state:
            continue
        low0, high0, likely0 = _bounds(old, previous.ts_ms)
        low1, high1, likely1 = _bounds(group, report.ts_ms)
        where = f"sg {group.sg} ({group.state.value}), seq {previous.seq} -> {report.seq}"
        if (
            _exact(low0, high0, tolerance)
            and _exact(low1, high1, tolerance)
            and likely0 is not None
            and likely1 is not None
            and abs(likely1 - likely0) > config.countdown_jump_ms
        ):
            out.append(
                Violation(
                    RULES_BY_NAME["countdown_jump"],
                    f"{where}: end jumped by {(likely1 - likely0) / 1000:+.1f} s",
                )
            )
            continue  # the most specific rule only: this jump also moves min and max
        if low0 is not None and low1 is not None and low1 < low0 - tolerance:
            out.append(
                Violation(
                    RULES_BY_NAME["min_end_earlier"],
                    f"{where}: min end moved {low0 - low1} ms earlier",
                )
            )
        if high0 is not None and high1 is not None and high1 > high0 + tolerance:
            out.append(
                Violation(
                    RULES_BY_NAME["max_end_later"],
                    f"{where}: max end moved {high1 - high0} ms later",
                )
            )
    return out


def _change_time(previous: SpatReport, old: GroupReading | None, report: SpatReport) -> int:
    """When a group changed state between two reports, on the controller clock.

    The end the previous report predicted for the old state, kept within the two reports'
    timestamps; without a prediction, the new report's time. Using the prediction makes the
    measure immune to publishing latency (a report made 200 ms after the change).
    """
    if old is None or old.likely_ms is None:
        return report.ts_ms
    return max(previous.ts_ms, min(previous.ts_ms + old.likely_ms, report.ts_ms))


def _yellows(
    previous: SpatReport | None,
    report: SpatReport,
    track: _Track,
    pairwise: bool,
    config: RuleConfig,
    flagged: set[int],
    starts: dict[int, int],
) -> list[Violation]:
    """Short yellow: announced on a seen entry (its max end, else likely), or measured on exit.

    Both need the change into yellow to have been seen (consecutive reports). The yellow's
    start goes to ``starts``; one told on entry goes to ``flagged`` so its exit is not told.
    """
    limit = config.min_yellow_ms - config.yellow_tolerance_ms
    rule = RULES_BY_NAME["short_yellow"]
    before = {} if previous is None else {g.sg: g for g in previous.groups}
    out: list[Violation] = []
    for group in report.groups:
        if group.sg in track.pedestrians:
            continue
        seen = track.groups.get(group.sg)
        if seen is None or not pairwise or previous is None:
            continue
        if group.state is S.YELLOW and seen.state is not S.YELLOW:
            start = _change_time(previous, before.get(group.sg), report)
            starts[group.sg] = start
            announced = group.max_ms if group.max_ms is not None else group.likely_ms
            if announced is None:
                continue
            length = report.ts_ms + announced - start
            if length < limit:
                flagged.add(group.sg)
                out.append(
                    Violation(
                        rule,
                        f"sg {group.sg}: yellow announced for {length / 1000:.1f} s, "
                        f"minimum {config.min_yellow_ms / 1000:.1f} s, seq {report.seq}",
                    )
                )
        elif (
            seen.state is S.YELLOW
            and group.state is not S.YELLOW
            and seen.since_ts_ms is not None
            and not seen.yellow_flagged
        ):
            lasted = _change_time(previous, before.get(group.sg), report) - seen.since_ts_ms
            if lasted < limit:
                out.append(
                    Violation(
                        rule,
                        f"sg {group.sg}: yellow lasted {lasted / 1000:.1f} s, "
                        f"minimum {config.min_yellow_ms / 1000:.1f} s, seq {report.seq}",
                    )
                )
    return out


def _cycle(
    intersection: Intersection,
    report: SpatReport,
    track: _Track,
    pairwise: bool,
    config: RuleConfig,
) -> list[Violation]:
    """Cycle length from one start of green of the main group to the next (fixed time only)."""
    actuated = any(
        g.min_ms is not None
        and g.max_ms is not None
        and g.max_ms - g.min_ms > config.end_tolerance_ms
        for g in report.groups
    )
    if not pairwise or actuated:
        track.cycle_clean = False
    main = intersection.main_group().sg
    reading = next((g for g in report.groups if g.sg == main), None)
    seen = track.groups.get(main)
    starts_green = (
        reading is not None
        and reading.state is S.GREEN
        and seen is not None
        and seen.state is not S.GREEN
    )
    if not starts_green:
        return []
    out: list[Violation] = []
    if pairwise and track.cycle_start_ts_ms is not None and track.cycle_clean:
        length = report.ts_ms - track.cycle_start_ts_ms
        last = track.last_cycle_ms
        if last is not None and abs(length - last) > config.cycle_tolerance_ms:
            out.append(
                Violation(
                    RULES_BY_NAME["cycle_length_change"],
                    f"cycle length {last / 1000:.1f} s -> {length / 1000:.1f} s "
                    f"(measured on sg {main})",
                )
            )
        track.last_cycle_ms = length
    if pairwise:
        track.cycle_start_ts_ms = report.ts_ms
        track.cycle_clean = True
    else:
        track.cycle_start_ts_ms = None
    return out


def _remember(
    report: SpatReport, track: _Track, pairwise: bool, flagged: set[int], starts: dict[int, int]
) -> None:
    """Each group's state and since when (known only if the change itself was seen)."""
    seen_now: set[int] = set()
    for group in report.groups:
        seen_now.add(group.sg)
        old = track.groups.get(group.sg)
        if old is not None and old.state is group.state:
            continue
        since = starts.get(group.sg, report.ts_ms) if pairwise and old is not None else None
        track.groups[group.sg] = _GroupTrack(group.state, since, group.sg in flagged)
    for sg in list(track.groups):
        if sg not in seen_now:
            del track.groups[sg]
