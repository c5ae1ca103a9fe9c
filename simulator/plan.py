"""Signal plans of the simulated controllers: what every group shows when, and how honestly.

Pure: no asyncio, no MQTT, no clock. Every function takes the time (Unix ms) it answers for.
The same plan answers two questions that must never disagree:

* ``state_at(now_ms)``: what the controller *publishes* at ``now_ms`` (state, likely/min/max
  remaining time, confidence), using only what the controller can know at that moment;
* ``transitions(sg, from_ms, to_ms)``: the ground truth, when each group *actually* changes.

Model (docs/simulator.md has the long version):

* The stages come from :func:`signal_gateway.core.registry.stages` (groups green together).
  A stage runs green, then every group that is not green in the next stage ends with the Chinese
  sequence green -> flashing green (3 s) -> yellow (3 s) -> red (pedestrians: green -> flashing
  green for 6 s -> red, no yellow), then all-red for 1-2 s, then the next stage's groups go green.
* Fixed-time intersections repeat one cycle (60-180 s). Intersections sharing a street are
  coordinated: one common cycle and offsets = distance along the street / 40 km/h (green wave).
* Actuated intersections (~25 %) draw each stage's green between a min and a max per cycle
  (deterministic from seed and cycle index). While a green runs its end is not known, so every
  time that depends on it is published as a range; a time already decided is exact.

Time: plan durations are in *plan* milliseconds. ``speed`` divides them: the plan time ``P``
happens at wall-clock ``epoch_ms + floor(P * 1000 / speed_milli)`` (Unix ms), one monotonic
integer map used for truth and for published times alike, so they agree to the millisecond.
"""

from __future__ import annotations

import bisect
import enum
import itertools
import math
import random
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from signal_gateway.core.model import Approach, Intersection, Movement, SignalState
from signal_gateway.core.registry import stages as template_stages
from signal_gateway.testing import G, spat_payload

__all__ = [
    "ALL_RED_MS",
    "FLASH_GREEN_MS",
    "PROGRESSION_KMH",
    "YELLOW_MS",
    "Arterial",
    "CityPlan",
    "Control",
    "GroupTiming",
    "IntersectionPlan",
    "StagePlan",
    "as_g",
    "build_city_plan",
    "street_names",
]

FLASH_GREEN_MS = 3000
"""Flashing green before yellow (Chinese practice, GB 14886)."""
YELLOW_MS = 3000
"""Yellow after flashing green."""
ALL_RED_MS = (1000, 2000)
"""All-red clearance between stages: one of these, per stage, from the seed."""
PROGRESSION_KMH = 40.0
"""Design speed of the green waves."""
CYCLE_RANGE_MS = (60_000, 180_000)
MIN_GREEN_MS = 10_000  # fixed-time minimum green of any stage
ACTUATED_SHARE = 0.25

_EARTH_M_PER_DEG_LAT = 110_540.0
_EARTH_M_PER_DEG_LON_EQ = 111_320.0


class Control(enum.StrEnum):
    """How an intersection's greens are timed."""

    FIXED = "fixed"  # isolated fixed-time
    COORDINATED = "coordinated"  # fixed-time, common cycle and offset along an arterial
    ACTUATED = "actuated"  # greens vary per cycle between min and max


class GroupTiming(NamedTuple):
    """What a controller publishes for one group; times in ms from ``now_ms``, None if unknown."""

    sg: int
    state: SignalState
    remaining_ms: int | None  # likely time to the next change (J2735 likelyTime)
    min_ms: int | None  # earliest (minEndTime)
    max_ms: int | None  # latest (maxEndTime)
    confidence: int | None  # 100 when exact


@dataclass(frozen=True, slots=True)
class StagePlan:
    """One stage: the groups green in it, its green bounds and its all-red afterwards."""

    groups: frozenset[int]
    min_green_ms: int
    max_green_ms: int  # == min_green_ms for fixed-time
    expected_green_ms: int  # what an actuated controller predicts; the green for fixed-time
    all_red_ms: int

    @property
    def actuated(self) -> bool:
        """Whether the green of this stage varies from cycle to cycle."""
        return self.max_green_ms > self.min_green_ms


@dataclass(frozen=True, slots=True)
class Arterial:
    """A coordinated street: its members in travel order, with distances from the first."""

    name: str
    axis: str  # "EW" (wave runs eastbound) or "NS" (wave runs southbound)
    cycle_ms: int  # plan ms, shared by every member
    members: tuple[tuple[str, float], ...]  # (intersection id, metres from the first member)


@dataclass(slots=True)
class _Period:
    """One stage period (green start to next green start) as seen at a given plan time."""

    k: int  # cycle index
    i: int  # stage index
    s: int  # actual green start (plan ms)
    e: int  # actual green end
    e_lo: int  # earliest green end the controller can promise
    e_hi: int  # latest
    e_lk: int  # its prediction


class IntersectionPlan:
    """The timing of one intersection: published state and ground truth from one model."""

    def __init__(
        self,
        intersection: Intersection,
        stages: Sequence[StagePlan],
        *,
        control: Control,
        base_ms: int,
        seed: int,
        epoch_ms: int,
        speed: float = 1.0,
        cycle_ms: int | None = None,
        coordinated_stage: int | None = None,
        arterial: str | None = None,
    ) -> None:
        """A plan whose cycle 0 starts at plan time ``base_ms`` after ``epoch_ms``."""
        if not stages:
            raise ValueError(f"{intersection.id}: a plan needs at least one stage")
        self.intersection = intersection
        self.stages = tuple(stages)
        self.control = control
        self.seed = seed
        self.epoch_ms = epoch_ms
        self.speed_milli = max(1, round(speed * 1000))
        self.coordinated_stage = coordinated_stage
        self.arterial = arterial
        self._base = base_ms
        self._clear = FLASH_GREEN_MS + YELLOW_MS
        self._fixed_greens = tuple(stage.expected_green_ms for stage in self.stages)
        fixed_len = sum(
            g + self._clear + st.all_red_ms
            for g, st in zip(self._fixed_greens, stages, strict=True)
        )
        self._cycle = cycle_ms if cycle_ms is not None else fixed_len
        if control is not Control.ACTUATED and self._cycle != fixed_len:
            raise ValueError(f"{intersection.id}: stages last {fixed_len} ms, not {self._cycle}")
        self._pedestrian = {g.sg: g.movement is Movement.PEDESTRIAN for g in intersection.groups}
        n = len(self.stages)
        self._constant: dict[int, SignalState] = {}
        for group in intersection.groups:
            count = sum(group.sg in st.groups for st in self.stages)
            if count == 0:
                self._constant[group.sg] = SignalState.RED
            elif count == n:
                self._constant[group.sg] = SignalState.GREEN
        # Periods to look ahead: enough to reach every group's next change, which for a group
        # green in a run of r consecutive stages is at most n + r periods away.
        runs = [
            _longest_run([sg in st.groups for st in self.stages])
            for sg in (g.sg for g in intersection.groups)
            if sg not in self._constant
        ]
        self._horizon = n + 1 + max(runs, default=0)
        # Actuated cycles: start times for k = _k0 .. _k0 + len - 1, and their greens.
        self._k0 = 0
        self._starts: list[int] = [base_ms]
        self._greens: list[tuple[int, ...]] = [self._draw_greens(0)]

    # ------------------------------------------------------------------ public answers

    @property
    def id(self) -> str:
        """The intersection id."""
        return self.intersection.id

    @property
    def speed(self) -> float:
        """Plan time per wall-clock time (0.001 resolution)."""
        return self.speed_milli / 1000

    @property
    def cycle_ms(self) -> int:
        """The plan cycle (fixed-time) or the cycle with expected greens (actuated), plan ms."""
        return self._cycle

    def wall(self, plan_ms: int) -> int:
        """The Unix ms at which plan time ``plan_ms`` happens."""
        return self.epoch_ms + (plan_ms * 1000) // self.speed_milli

    def state_at(self, now_ms: int) -> list[GroupTiming]:
        """What the controller publishes at ``now_ms``, one entry per group in registry order."""
        return self.tick(now_ms)[0]

    def tick(self, now_ms: int) -> tuple[list[GroupTiming], int | None]:
        """``state_at(now_ms)`` and ``next_change_after(now_ms)`` in one pass (the scheduler's)."""
        pt = self._plan_floor(now_ms)
        periods = self._periods(pt, self._horizon)
        timings = []
        change: int | None = None
        for group in self.intersection.groups:
            timing, actual = self._group_timing(group.sg, pt, now_ms, periods)
            timings.append(timing)
            if actual is not None and (change is None or actual < change):
                change = actual
        return timings, None if change is None else self.wall(change)

    def groups_at(self, now_ms: int) -> list[G]:
        """``state_at`` spelled as the wire builders' ``G`` (seconds, optional fields)."""
        return [as_g(timing) for timing in self.state_at(now_ms)]

    def report(self, now_ms: int, seq: int) -> bytes:
        """The SPaT payload the controller publishes at ``now_ms`` (``ts_ms = now_ms``)."""
        return spat_payload(self.id, seq, now_ms, self.groups_at(now_ms))

    def next_change_after(self, now_ms: int) -> int | None:
        """The wall time of the next state change of any group after ``now_ms`` (None: never)."""
        return self.tick(now_ms)[1]

    def transitions(self, sg: int, from_ms: int, to_ms: int) -> list[tuple[int, SignalState]]:
        """Ground truth: ``(at_ms, new_state)`` for every change of ``sg`` in [from_ms, to_ms)."""
        if self.intersection.group(sg) is None:
            raise KeyError(f"{self.id} has no signal group {sg}")
        if sg in self._constant or to_ms <= from_ms:
            return []
        low = self._plan_floor(from_ms - 1)  # events at plan P > low happen at or after from_ms
        high = self._plan_floor(to_ms - 1)  # events at plan P <= high happen before to_ms
        out: list[tuple[int, SignalState]] = []
        for period, nxt in _pairs(self._iter_periods(low)):
            if period.s > high:
                break
            for at, state in self._events(sg, period, nxt):
                if low < at <= high:
                    wall = self.wall(at)
                    if out and out[-1][0] == wall:
                        out[-1] = (wall, state)  # two changes in one ms: the later one shows
                    else:
                        out.append((wall, state))
        return out

    def state_of(self, sg: int, now_ms: int) -> SignalState:
        """Ground truth: the state group ``sg`` actually shows at ``now_ms``."""
        for timing in self.state_at(now_ms):
            if timing.sg == sg:
                return timing.state
        raise KeyError(f"{self.id} has no signal group {sg}")

    def stage_starts(self, stage: int, from_ms: int, to_ms: int) -> list[int]:
        """Wall times in [from_ms, to_ms) at which stage ``stage``'s green starts."""
        low = self._plan_floor(from_ms - 1)
        high = self._plan_floor(to_ms - 1)
        out = []
        for period in self._iter_periods(low):
            if period.s > high:
                break
            if period.i == stage and low < period.s:
                out.append(self.wall(period.s))
        return out

    def cycle_starts(self, from_ms: int, to_ms: int) -> list[int]:
        """Wall times in [from_ms, to_ms) at which a cycle (stage 0's green) starts."""
        return self.stage_starts(0, from_ms, to_ms)

    def green_ms(self, cycle: int) -> tuple[int, ...]:
        """The actual green of each stage in cycle ``cycle`` (plan ms)."""
        return self._cycle_data(cycle)[1]

    # ------------------------------------------------------------------ time mapping

    def _plan_floor(self, wall_ms: int) -> int:
        """The largest plan time P with wall(P) <= wall_ms."""
        n = wall_ms - self.epoch_ms + 1
        return -((-n * self.speed_milli) // 1000) - 1

    # ------------------------------------------------------------------ cycles

    def _draw_greens(self, k: int) -> tuple[int, ...]:
        if self.control is not Control.ACTUATED:
            return self._fixed_greens
        rng = random.Random(f"{self.seed}:{self.id}:cycle:{k}")
        greens = []
        for stage in self.stages:
            u = rng.random()
            span = stage.max_green_ms - stage.min_green_ms
            if u < 0.15:  # no demand: gap-out at the minimum
                green = stage.min_green_ms
            elif u < 0.35:  # heavy demand: max-out
                green = stage.max_green_ms
            else:  # gap-out somewhere between, to 0.1 s
                green = stage.min_green_ms + int(span * rng.random()) // 100 * 100
            greens.append(green)
        return tuple(greens)

    def _length(self, greens: tuple[int, ...]) -> int:
        return sum(
            g + self._clear + st.all_red_ms for g, st in zip(greens, self.stages, strict=True)
        )

    def _cycle_data(self, k: int) -> tuple[int, tuple[int, ...]]:
        """(start, greens) of cycle ``k``, plan ms."""
        if self.control is not Control.ACTUATED:
            return self._base + k * self._cycle, self._fixed_greens
        while k < self._k0:
            greens = self._draw_greens(self._k0 - 1)
            self._starts.insert(0, self._starts[0] - self._length(greens))
            self._greens.insert(0, greens)
            self._k0 -= 1
        while k >= self._k0 + len(self._starts):
            last = len(self._starts) - 1
            self._starts.append(self._starts[last] + self._length(self._greens[last]))
            self._greens.append(self._draw_greens(self._k0 + last + 1))
        return self._starts[k - self._k0], self._greens[k - self._k0]

    def _cycle_index(self, pt: int) -> int:
        """The cycle whose span contains plan time ``pt``."""
        if self.control is not Control.ACTUATED:
            return (pt - self._base) // self._cycle
        while pt < self._starts[0]:
            self._cycle_data(self._k0 - 1)
        while pt >= self._starts[-1] + self._length(self._greens[-1]):
            self._cycle_data(self._k0 + len(self._starts))
        return self._k0 + bisect.bisect_right(self._starts, pt) - 1

    # ------------------------------------------------------------------ periods

    def _iter_periods(self, pt: int) -> Iterator[_Period]:
        """Periods from the one containing ``pt`` on, with actual times only (truth)."""
        k = self._cycle_index(pt)
        start, greens = self._cycle_data(k)
        s = start
        i = 0
        while True:
            g = greens[i]
            nxt = s + g + self._clear + self.stages[i].all_red_ms
            if nxt > pt:
                break
            s = nxt
            i += 1
        while True:
            e = s + greens[i]
            yield _Period(k, i, s, e, e, e, e)
            s = e + self._clear + self.stages[i].all_red_ms
            i += 1
            if i == len(self.stages):
                k += 1
                i = 0
                start, greens = self._cycle_data(k)
                assert start == s, (self.id, k, start, s)

    def _periods(self, pt: int, count: int) -> list[_Period]:
        """``count`` periods from the one containing ``pt``, with what is known at ``pt``.

        A green end already passed (``e <= pt``) or fixed is exact. The running green's end lies
        in [max(start + min, pt + 1), start + max]; a later green in [start_lo + min,
        start_hi + max]; starts follow from the previous end plus the fixed clearance.
        """
        out: list[_Period] = []
        s_lo = s_hi = s_lk = 0
        for j, period in enumerate(self._iter_periods(pt)):
            stage = self.stages[period.i]
            if j == 0:
                s_lo = s_hi = s_lk = period.s
            if period.e <= pt or not stage.actuated:
                e_lo = s_lo + (period.e - period.s)
                e_hi = s_hi + (period.e - period.s)
                e_lk = s_lk + (period.e - period.s)
            else:
                e_lo = max(s_lo + stage.min_green_ms, pt + 1)
                e_hi = s_hi + stage.max_green_ms
                e_lk = min(max(s_lk + stage.expected_green_ms, e_lo), e_hi)
            out.append(_Period(period.k, period.i, period.s, period.e, e_lo, e_hi, e_lk))
            after = self._clear + stage.all_red_ms
            s_lo, s_hi, s_lk = e_lo + after, e_hi + after, e_lk + after
            if j + 1 >= count:
                break
        return out

    def _events(self, sg: int, period: _Period, nxt: _Period) -> list[tuple[int, SignalState]]:
        """Actual changes of ``sg`` between ``period``'s green end and ``nxt``'s green start."""
        return [
            (period.e + offset, state) for offset, state in self._event_offsets(sg, period, nxt)
        ]

    def _event_offsets(
        self, sg: int, period: _Period, nxt: _Period
    ) -> list[tuple[int, SignalState]]:
        """Changes of ``sg`` at this period's boundary, as offsets from its green end."""
        now_in = sg in self.stages[period.i].groups
        next_in = sg in self.stages[nxt.i].groups
        if now_in and not next_in:
            if self._pedestrian.get(sg, False):
                return [
                    (0, SignalState.FLASHING_GREEN),
                    (self._clear, SignalState.RED),
                ]
            return [
                (0, SignalState.FLASHING_GREEN),
                (FLASH_GREEN_MS, SignalState.YELLOW),
                (self._clear, SignalState.RED),
            ]
        if next_in and not now_in:
            return [(self._clear + self.stages[period.i].all_red_ms, SignalState.GREEN)]
        return []

    def _next_event(
        self, sg: int, pt: int, periods: list[_Period]
    ) -> tuple[int, int, int, int, SignalState] | None:
        """(actual, lo, hi, likely, new_state) of ``sg``'s first change after plan time pt."""
        for period, nxt in itertools.pairwise(periods):
            for offset, state in self._event_offsets(sg, period, nxt):
                if period.e + offset > pt:
                    return (
                        period.e + offset,
                        period.e_lo + offset,
                        period.e_hi + offset,
                        period.e_lk + offset,
                        state,
                    )
        return None

    def _state(self, sg: int, pt: int, periods: list[_Period]) -> SignalState:
        constant = self._constant.get(sg)
        if constant is not None:
            return constant
        period, nxt = periods[0], periods[1]
        if sg not in self.stages[period.i].groups:
            return SignalState.RED
        if pt < period.e or sg in self.stages[nxt.i].groups:
            return SignalState.GREEN
        if pt < period.e + FLASH_GREEN_MS:
            return SignalState.FLASHING_GREEN
        if pt < period.e + self._clear:
            if self._pedestrian.get(sg, False):
                return SignalState.FLASHING_GREEN
            return SignalState.YELLOW
        return SignalState.RED

    def _group_timing(
        self, sg: int, pt: int, now_ms: int, periods: list[_Period]
    ) -> tuple[GroupTiming, int | None]:
        """What is published for ``sg``, and the plan time it actually changes next."""
        state = self._state(sg, pt, periods)
        found = None if sg in self._constant else self._next_event(sg, pt, periods)
        if found is None:
            return GroupTiming(sg, state, None, None, None, None), None
        actual, lo, hi, likely, _state = found
        lo_ms = self.wall(lo) - now_ms
        hi_ms = self.wall(hi) - now_ms
        likely_ms = self.wall(likely) - now_ms
        confidence = 100 if lo == hi else _confidence(hi_ms - lo_ms)
        return GroupTiming(sg, state, likely_ms, lo_ms, hi_ms, confidence), actual


def _longest_run(flags: Sequence[bool]) -> int:
    """The longest cyclic run of True in ``flags`` (not all True)."""
    longest = 0
    for start in range(len(flags)):
        length = 0
        while length < len(flags) and flags[(start + length) % len(flags)]:
            length += 1
        longest = max(longest, length)
    return longest


def _confidence(width_ms: int) -> int:
    """Confidence of a range: 90 for a narrow one, one point less per second of width, >= 20."""
    return max(20, min(90, 90 - width_ms // 1000))


def _pairs(periods: Iterator[_Period]) -> Iterator[tuple[_Period, _Period]]:
    previous = next(periods)
    for period in periods:
        yield previous, period
        previous = period


def _seconds(ms: int | None) -> float | None:
    return None if ms is None else ms / 1000


def as_g(timing: GroupTiming) -> G:
    """A GroupTiming spelled as the wire builders' ``G`` (seconds; min/max omitted if None)."""
    return G(
        sg=timing.sg,
        state=timing.state,
        remaining_s=_seconds(timing.remaining_ms),
        min_remaining_s=_seconds(timing.min_ms),
        max_remaining_s=_seconds(timing.max_ms),
        confidence=timing.confidence,
    )


# ---------------------------------------------------------------------------- the city


@dataclass(frozen=True, slots=True)
class CityPlan:
    """Every intersection's plan and the arterials coordinated as green waves."""

    plans: Mapping[str, IntersectionPlan]
    arterials: tuple[Arterial, ...]
    seed: int
    epoch_ms: int
    speed: float

    def __getitem__(self, intersection_id: str) -> IntersectionPlan:
        """The plan of one intersection."""
        return self.plans[intersection_id]

    def __iter__(self) -> Iterator[IntersectionPlan]:
        """The plans in registry order."""
        return iter(self.plans.values())

    def __len__(self) -> int:
        """The number of plans."""
        return len(self.plans)

    def summary(self) -> str:
        """One line for the log: how many of each control and how many arterials."""
        counts = {control: 0 for control in Control}
        for plan in self.plans.values():
            counts[plan.control] += 1
        return (
            f"{len(self.plans)} plans: {counts[Control.COORDINATED]} coordinated on "
            f"{len(self.arterials)} arterials, {counts[Control.FIXED]} isolated fixed-time, "
            f"{counts[Control.ACTUATED]} actuated (seed {self.seed}, speed {self.speed:g})"
        )


def street_names(intersection: Intersection) -> tuple[str, ...]:
    """The streets an intersection lies on, from ``name_zh`` (else ``name_en``)."""
    zh = intersection.name_zh
    for suffix in ("交叉口", "路口", "口"):
        if zh.endswith(suffix):
            zh = zh[: -len(suffix)]
            break
    for sep in ("与", "/", "、", "和"):
        parts = [part.strip() for part in zh.split(sep) if part.strip()]
        if len(parts) >= 2:
            return tuple(parts)
    en = intersection.name_en
    for sep in ("&", "/", " and ", " x "):
        parts = [part.strip() for part in en.split(sep) if part.strip()]
        if len(parts) >= 2:
            return tuple(parts)
    return ()


def _xy(lat: float, lon: float, lat0: float) -> tuple[float, float]:
    """Metres east and north of (lat0, 0): equirectangular, fine over a city."""
    x = lon * _EARTH_M_PER_DEG_LON_EQ * math.cos(math.radians(lat0))
    y = lat * _EARTH_M_PER_DEG_LAT
    return x, y


def _is_through(intersection: Intersection, groups: Iterable[int]) -> bool:
    for sg in groups:
        group = intersection.group(sg)
        if group is not None and group.movement is Movement.STRAIGHT:
            return True
    return False


def _axis_stage(
    intersection: Intersection, stage_groups: Sequence[frozenset[int]], axis: str
) -> int:
    """The first stage with a through movement on ``axis`` (the coordinated stage)."""
    wanted = {Approach.E, Approach.W} if axis == "EW" else {Approach.N, Approach.S}
    for index, groups in enumerate(stage_groups):
        for sg in groups:
            group = intersection.group(sg)
            if group and group.movement is Movement.STRAIGHT and group.approach in wanted:
                return index
    return 0


@dataclass(slots=True)
class _Draft:
    intersection: Intersection
    stage_groups: list[frozenset[int]]
    all_red: list[int]
    weights: list[float]
    rng: random.Random

    def clearance(self) -> int:
        return sum(FLASH_GREEN_MS + YELLOW_MS + ar for ar in self.all_red)

    def min_cycle(self) -> int:
        return self.clearance() + MIN_GREEN_MS * len(self.stage_groups)

    def fixed_stages(self, cycle_ms: int, favour: int) -> list[StagePlan]:
        """Split ``cycle_ms`` into greens by weight, each >= MIN_GREEN_MS, whole seconds."""
        n = len(self.stage_groups)
        spare = cycle_ms - self.clearance() - MIN_GREEN_MS * n
        total = sum(self.weights)
        greens = [MIN_GREEN_MS + int(spare * w / total) // 1000 * 1000 for w in self.weights]
        greens[favour] += cycle_ms - self.clearance() - sum(greens)
        return [
            StagePlan(groups, g, g, g, ar)
            for groups, g, ar in zip(self.stage_groups, greens, self.all_red, strict=True)
        ]

    def actuated_stages(self) -> list[StagePlan]:
        """Min/max greens such that the cycle stays within 60-180 s."""
        rng = self.rng
        mins = []
        exts = []
        for groups in self.stage_groups:
            through = _is_through(self.intersection, groups)
            mins.append((12_000 if through else 8_000) + rng.randrange(0, 4) * 1000)
            exts.append((rng.randrange(15, 36) if through else rng.randrange(8, 21)) * 1000)
        low = sum(mins) + self.clearance()
        if low < CYCLE_RANGE_MS[0]:
            extra = CYCLE_RANGE_MS[0] - low
            share = -(-extra // len(mins) // 1000) * 1000
            mins = [m + share for m in mins]
        room = CYCLE_RANGE_MS[1] - sum(mins) - self.clearance()
        if sum(exts) > room:
            exts = [max(1000, e * room // sum(exts) // 1000 * 1000) for e in exts]
        return [
            StagePlan(groups, m, m + e, m + e // 2 // 100 * 100, ar)
            for groups, m, e, ar in zip(self.stage_groups, mins, exts, self.all_red, strict=True)
        ]


def _draft(intersection: Intersection, seed: int) -> _Draft:
    rng = random.Random(f"{seed}:{intersection.id}:plan")
    stage_groups = [frozenset(stage) for stage in template_stages(intersection)]
    all_red = [rng.choice(ALL_RED_MS) for _ in stage_groups]
    weights = [
        rng.uniform(1.5, 2.5) if _is_through(intersection, groups) else rng.uniform(0.6, 1.0)
        for groups in stage_groups
    ]
    return _Draft(intersection, stage_groups, all_red, weights, rng)


def build_city_plan(
    intersections: Iterable[Intersection],
    *,
    seed: int = 0,
    epoch_ms: int,
    speed: float = 1.0,
    actuated_share: float = ACTUATED_SHARE,
) -> CityPlan:
    """Plans for the whole registry, deterministic from ``seed`` (and ``epoch_ms``, ``speed``).

    Build for the whole registry even when only some controllers run: a controller's plan
    depends on its arterial neighbours, and must not change with ``--only``.
    """
    if speed <= 0 or not math.isfinite(speed):
        raise ValueError(f"speed must be a positive number, not {speed!r}")
    items = list(intersections)
    drafts = {ix.id: _draft(ix, seed) for ix in items if template_stages(ix)}
    city_rng = random.Random(f"{seed}:city")

    # Streets and their members.
    streets: dict[str, list[str]] = {}
    for ix in items:
        if ix.id in drafts:
            for name in street_names(ix):
                streets.setdefault(name, []).append(ix.id)

    # Actuated: the least important crossings (their busiest street is the shortest).
    importance = {
        iid: max((len(streets[name]) for name in street_names(drafts[iid].intersection)), default=0)
        for iid in drafts
    }
    tiebreak = {iid: city_rng.random() for iid in drafts}
    ranked = sorted(drafts, key=lambda iid: (importance[iid], tiebreak[iid]))
    actuated = set(ranked[: round(actuated_share * len(drafts))])

    # Arterials: longest streets first, each intersection on at most one.
    assigned: dict[str, str] = {}
    arterials: list[Arterial] = []
    coordinated_stage: dict[str, int] = {}
    base: dict[str, int] = {}
    cycle_of: dict[str, int] = {}
    by_id = {ix.id: ix for ix in items}
    for name in sorted(streets, key=lambda n: (-len(streets[n]), n)):
        members = [iid for iid in streets[name] if iid not in actuated and iid not in assigned]
        if len(members) < 2:
            continue
        lat0 = sum(by_id[iid].lat for iid in members) / len(members)
        points = {iid: _xy(by_id[iid].lat, by_id[iid].lon, lat0) for iid in members}
        xs = [p[0] for p in points.values()]
        ys = [p[1] for p in points.values()]
        axis = "EW" if max(xs) - min(xs) >= max(ys) - min(ys) else "NS"
        # Travel direction: eastbound for EW streets, southbound for NS streets.
        ordered = sorted(
            members, key=lambda iid: points[iid][0] if axis == "EW" else -points[iid][1]
        )
        first, last = points[ordered[0]], points[ordered[-1]]
        dx, dy = last[0] - first[0], last[1] - first[1]
        norm = math.hypot(dx, dy) or 1.0
        distance = {
            iid: ((points[iid][0] - first[0]) * dx + (points[iid][1] - first[1]) * dy) / norm
            for iid in ordered
        }
        need = max(drafts[iid].min_cycle() for iid in ordered)
        low = max(CYCLE_RANGE_MS[0], -(-need // 10_000) * 10_000)
        high = max(low, 150_000)
        cycle = city_rng.randrange(low, high + 1, 10_000)
        speed_mps = PROGRESSION_KMH / 3.6
        for iid in ordered:
            assigned[iid] = name
            stage_index = _axis_stage(by_id[iid], drafts[iid].stage_groups, axis)
            coordinated_stage[iid] = stage_index
            cycle_of[iid] = cycle
            offset = round(distance[iid] / speed_mps * 1000)
            stages_plan = drafts[iid].fixed_stages(cycle, stage_index)
            stage_start = sum(
                st.expected_green_ms + FLASH_GREEN_MS + YELLOW_MS + st.all_red_ms
                for st in stages_plan[:stage_index]
            )
            base[iid] = (offset - stage_start) % cycle
        arterials.append(
            Arterial(name, axis, cycle, tuple((iid, distance[iid]) for iid in ordered))
        )

    plans: dict[str, IntersectionPlan] = {}
    for ix in items:
        draft = drafts.get(ix.id)
        if draft is None:
            continue
        if ix.id in actuated:
            stage_plans = draft.actuated_stages()
            plans[ix.id] = IntersectionPlan(
                ix,
                stage_plans,
                control=Control.ACTUATED,
                base_ms=draft.rng.randrange(0, 60) * 1000,
                seed=seed,
                epoch_ms=epoch_ms,
                speed=speed,
                cycle_ms=sum(
                    st.expected_green_ms + FLASH_GREEN_MS + YELLOW_MS + st.all_red_ms
                    for st in stage_plans
                ),
            )
        elif ix.id in assigned:
            stage_index = coordinated_stage[ix.id]
            plans[ix.id] = IntersectionPlan(
                ix,
                draft.fixed_stages(cycle_of[ix.id], stage_index),
                control=Control.COORDINATED,
                base_ms=base[ix.id],
                seed=seed,
                epoch_ms=epoch_ms,
                speed=speed,
                cycle_ms=cycle_of[ix.id],
                coordinated_stage=stage_index,
                arterial=assigned[ix.id],
            )
        else:
            low = max(CYCLE_RANGE_MS[0], -(-draft.min_cycle() // 5000) * 5000)
            cycle = draft.rng.randrange(low, max(low, 160_000) + 1, 5000)
            favour = _axis_stage(ix, draft.stage_groups, "EW")
            plans[ix.id] = IntersectionPlan(
                ix,
                draft.fixed_stages(cycle, favour),
                control=Control.FIXED,
                base_ms=draft.rng.randrange(0, cycle // 1000) * 1000,
                seed=seed,
                epoch_ms=epoch_ms,
                speed=speed,
                cycle_ms=cycle,
            )
    return CityPlan(plans, tuple(arterials), seed, epoch_ms, speed)
