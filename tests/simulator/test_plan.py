"""Pure tests of the simulated signal plans: sequence, timing, safety, honesty, determinism."""

from __future__ import annotations

import bisect
import itertools
import random

import pytest

from signal_gateway.core.model import Mode, Movement, SignalState, SpatReport
from signal_gateway.core.registry import Registry, stages
from signal_gateway.ingest.wire import parse_spat
from simulator.plan import (
    ALL_RED_MS,
    FLASH_GREEN_MS,
    PROGRESSION_KMH,
    YELLOW_MS,
    CityPlan,
    Control,
    IntersectionPlan,
    build_city_plan,
    street_names,
)

EPOCH = 1_764_000_000_000
START = EPOCH + 37_000  # not on any boundary
LONGEST_CYCLE_MS = 180_000
WINDOW = 3 * LONGEST_CYCLE_MS  # three cycles of every intersection, whatever its cycle

S = SignalState
VEHICLE_NEXT = {
    S.GREEN: S.FLASHING_GREEN,
    S.FLASHING_GREEN: S.YELLOW,
    S.YELLOW: S.RED,
    S.RED: S.GREEN,
}
PED_NEXT = {S.GREEN: S.FLASHING_GREEN, S.FLASHING_GREEN: S.RED, S.RED: S.GREEN}
NOT_RED = {S.GREEN, S.FLASHING_GREEN, S.YELLOW}


@pytest.fixture(scope="module")
def city(registry: Registry) -> CityPlan:
    """All 235 plans, seed 0, real speed."""
    return build_city_plan(registry, seed=0, epoch_ms=EPOCH)


def timeline(plan: IntersectionPlan, start: int, end: int) -> list[tuple[int, int, S]]:
    """Every (at_ms, sg, new_state) of the intersection in [start, end), in time order."""
    events = [
        (at, group.sg, state)
        for group in plan.intersection.groups
        for at, state in plan.transitions(group.sg, start, end)
    ]
    return sorted(events, key=lambda event: event[0])


def is_pedestrian(plan: IntersectionPlan, sg: int) -> bool:
    group = plan.intersection.group(sg)
    return group is not None and group.movement is Movement.PEDESTRIAN


def test_every_intersection_has_a_plan_with_the_registry_stages(
    registry: Registry, city: CityPlan
) -> None:
    """Each of the 235 intersections gets a plan whose stages are stages(), with 2-4 stages."""
    assert len(city) == len(registry) == 235
    for ix in registry:
        plan = city[ix.id]
        assert [set(st.groups) for st in plan.stages] == [set(s) for s in stages(ix)]
        assert 2 <= len(plan.stages) <= 4


def test_sequence_order_is_chinese(city: CityPlan) -> None:
    """Vehicles go green, flashing green, yellow, red; pedestrians green, flashing green, red."""
    for plan in city:
        for group in plan.intersection.groups:
            changes = plan.transitions(group.sg, START, START + WINDOW)
            assert len(changes) >= 9, (plan.id, group.sg)
            follow = PED_NEXT if is_pedestrian(plan, group.sg) else VEHICLE_NEXT
            for (_, before), (_, after) in itertools.pairwise(changes):
                assert follow[before] is after, (plan.id, group.sg, before, after)


def test_clearance_durations(city: CityPlan) -> None:
    """Flashing green lasts 3 s and yellow 3 s; pedestrian flashing green covers both (6 s)."""
    for plan in city:
        for group in plan.intersection.groups:
            changes = plan.transitions(group.sg, START, START + WINDOW)
            for (at, state), (nxt, _) in itertools.pairwise(changes):
                if state is S.YELLOW:
                    assert nxt - at == YELLOW_MS
                elif state is S.FLASHING_GREEN:
                    expected = FLASH_GREEN_MS
                    if is_pedestrian(plan, group.sg):
                        expected += YELLOW_MS
                    assert nxt - at == expected, (plan.id, group.sg)


def test_all_red_between_stages(city: CityPlan) -> None:
    """Before any group turns green every group has been red for the all-red time (1-2 s)."""
    for plan in city:
        events = timeline(plan, START - LONGEST_CYCLE_MS, START + WINDOW)
        state: dict[int, S] = {}
        last_red_at = None
        checked = 0
        for at, batch in itertools.groupby(events, key=lambda event: event[0]):
            changes = [(sg, new) for _, sg, new in batch]
            known = len(state) == len(plan.intersection.groups)
            if known and at >= START and any(new is S.GREEN for _, new in changes):
                assert all(s is S.RED for s in state.values()), (plan.id, at, state)
                assert last_red_at is not None
                assert at - last_red_at in ALL_RED_MS, (plan.id, at, at - last_red_at)
                checked += 1
            for sg, new in changes:
                if new is S.RED:
                    last_red_at = at
                state[sg] = new
        assert checked >= 6, plan.id


def test_never_two_conflicting_groups_green_at_once(city: CityPlan) -> None:
    """Across three cycles of all 235 plans no conflicting pair is ever non-red together."""
    for plan in city:
        conflicts = plan.intersection.conflicts
        assert conflicts, plan.id
        current = {g.sg: g.state for g in plan.state_at(START)}
        for at, sg, new in timeline(plan, START, START + WINDOW):
            current[sg] = new
            if new in NOT_RED:
                for other, other_state in current.items():
                    if other != sg and other_state in NOT_RED:
                        assert frozenset((sg, other)) not in conflicts, (plan.id, at, sg, other)


def test_published_times_match_ground_truth(city: CityPlan) -> None:
    """The published state is the true one; an exact remaining time equals the true time left.

    Checked for every group of all 235 plans at, and 1 ms before, every change over three
    cycles, and at random times. A range (actuated) contains the true end, and its likely time
    lies inside the range.
    """
    rng = random.Random(7)
    exact = ranged = 0
    for plan in city:
        events = timeline(plan, START - LONGEST_CYCLE_MS, START + WINDOW + 2 * LONGEST_CYCLE_MS)
        changes: dict[int, list[tuple[int, S]]] = {}
        for at, sg, new in events:
            changes.setdefault(sg, []).append((at, new))
        times = {at + d for at, _, _ in events if START <= at < START + WINDOW for d in (-1, 0)}
        times.update(rng.randrange(START, START + WINDOW) for _ in range(30))
        for t in sorted(times):
            for timing in plan.state_at(t):
                history = changes[timing.sg]
                index = bisect.bisect_right(history, t, key=lambda change: change[0])
                assert timing.state is history[index - 1][1], (plan.id, timing, t)
                left = history[index][0] - t
                assert timing.remaining_ms is not None
                assert timing.min_ms is not None
                assert timing.max_ms is not None
                if timing.min_ms == timing.max_ms:
                    assert timing.remaining_ms == timing.min_ms == left, (plan.id, timing, t)
                    assert timing.confidence == 100
                    exact += 1
                else:
                    assert timing.min_ms <= left <= timing.max_ms, (plan.id, timing, t, left)
                    assert timing.min_ms <= timing.remaining_ms <= timing.max_ms
                    assert timing.confidence is not None
                    assert timing.confidence < 100
                    ranged += 1
    assert exact > 100_000
    assert ranged > 10_000


def test_fixed_time_plans_are_exact_and_cycle_60_to_180_s(city: CityPlan) -> None:
    """Fixed-time plans publish min = max = likely always, and repeat one 60-180 s cycle."""
    rng = random.Random(3)
    for plan in city:
        if plan.control is Control.ACTUATED:
            continue
        assert 60_000 <= plan.cycle_ms <= 180_000
        starts = plan.cycle_starts(START, START + WINDOW)
        assert {b - a for a, b in itertools.pairwise(starts)} == {plan.cycle_ms}
        for _ in range(20):
            for timing in plan.state_at(rng.randrange(START, START + WINDOW)):
                assert timing.min_ms == timing.max_ms == timing.remaining_ms


def test_about_a_quarter_of_the_intersections_are_actuated(city: CityPlan) -> None:
    """Roughly 25 % actuated, the rest fixed-time, most of them coordinated on arterials."""
    controls = [plan.control for plan in city]
    assert controls.count(Control.ACTUATED) == round(0.25 * 235)
    assert controls.count(Control.COORDINATED) > 100


def test_actuated_greens_vary_within_min_and_max(city: CityPlan) -> None:
    """An actuated stage's green changes from cycle to cycle, always within [min, max]."""
    for plan in city:
        if plan.control is not Control.ACTUATED:
            continue
        greens = [plan.green_ms(k) for k in range(20)]
        for index, stage in enumerate(plan.stages):
            assert stage.min_green_ms < stage.max_green_ms
            seen = {cycle[index] for cycle in greens}
            assert len(seen) > 1, (plan.id, index)
            assert all(stage.min_green_ms <= g <= stage.max_green_ms for g in seen)
        lengths = {b - a for a, b in itertools.pairwise(plan.cycle_starts(START, START + WINDOW))}
        assert len(lengths) > 1, plan.id
        assert all(60_000 <= length <= 180_000 for length in lengths)


def test_actuated_green_is_a_range_until_it_ends_then_exact(city: CityPlan) -> None:
    """During an actuated green min < max; once it ends (flashing green, yellow) it is exact."""
    plan = next(p for p in city if p.control is Control.ACTUATED)
    running = decided = 0
    for group in plan.intersection.groups:
        changes = plan.transitions(group.sg, START, START + WINDOW)
        for (at, state), (nxt, _) in itertools.pairwise(changes):
            middle = (at + nxt) // 2
            timing = next(t for t in plan.state_at(middle) if t.sg == group.sg)
            if state is S.GREEN:
                assert timing.min_ms is not None
                assert timing.max_ms is not None
                assert timing.min_ms < timing.max_ms
                running += 1
            elif state in (S.FLASHING_GREEN, S.YELLOW):
                assert timing.min_ms == timing.max_ms == nxt - middle
                decided += 1
    assert running > 5
    assert decided > 5


def test_actuated_min_end_never_moves_earlier_max_end_never_later(city: CityPlan) -> None:
    """Within one state the absolute min end only grows and the max end only shrinks."""
    plan = next(p for p in city if p.control is Control.ACTUATED)
    previous: dict[int, tuple[S, int, int]] = {}
    for t in range(START, START + WINDOW, 250):
        for timing in plan.state_at(t):
            assert timing.min_ms is not None
            assert timing.max_ms is not None
            low, high = t + timing.min_ms, t + timing.max_ms
            before = previous.get(timing.sg)
            if before is not None and before[0] is timing.state:
                assert low >= before[1], (timing, t, before)
                assert high <= before[2], (timing, t, before)
            previous[timing.sg] = (timing.state, low, high)


def test_green_waves_follow_40_kmh(city: CityPlan) -> None:
    """Along an arterial the coordinated green starts distance / 40 km/h later (mod cycle)."""
    assert len(city.arterials) >= 20
    for arterial in city.arterials:
        assert len(arterial.members) >= 2
        for (a, da), (b, db) in itertools.pairwise(arterial.members):
            pa, pb = city[a], city[b]
            assert pa.cycle_ms == pb.cycle_ms == arterial.cycle_ms
            assert pa.arterial == pb.arterial == arterial.name
            assert arterial.name in street_names(pa.intersection)
            assert pa.coordinated_stage is not None
            assert pb.coordinated_stage is not None
            start_a = pa.stage_starts(pa.coordinated_stage, START, START + WINDOW)[0]
            start_b = pb.stage_starts(pb.coordinated_stage, START, START + WINDOW)[0]
            travel = round((db - da) / (PROGRESSION_KMH / 3.6) * 1000)
            offset = (start_b - start_a - travel) % arterial.cycle_ms
            assert offset in (0, 1, arterial.cycle_ms - 1), (a, b, offset)


def test_same_seed_same_plans_other_seed_other_plans(registry: Registry) -> None:
    """Plans are a function of the seed: rebuilt with it they publish byte-identical reports."""
    one = build_city_plan(registry, seed=5, epoch_ms=EPOCH)
    two = build_city_plan(registry, seed=5, epoch_ms=EPOCH)
    other = build_city_plan(registry, seed=6, epoch_ms=EPOCH)
    times = [START + k * 7_919 for k in range(40)]
    differs = 0
    for iid in registry.ids:
        for t in times:
            assert one[iid].report(t, 1) == two[iid].report(t, 1)
        differs += any(one[iid].report(t, 1) != other[iid].report(t, 1) for t in times)
    assert differs > 200
    assert [a.members for a in one.arterials] == [a.members for a in two.arterials]


def test_plans_do_not_depend_on_the_epoch_but_shift_with_it(registry: Registry) -> None:
    """Moving the epoch moves the whole timeline by the same amount."""
    one = build_city_plan(registry, seed=1, epoch_ms=EPOCH)
    later = build_city_plan(registry, seed=1, epoch_ms=EPOCH + 12_345)
    for iid in ("YT001", "YT100", "YT235"):
        for group in one[iid].intersection.groups:
            base = one[iid].transitions(group.sg, START, START + WINDOW)
            moved = later[iid].transitions(group.sg, START + 12_345, START + 12_345 + WINDOW)
            assert [(at + 12_345, s) for at, s in base] == moved


def test_speed_divides_durations_and_keeps_times_exact(registry: Registry) -> None:
    """At speed 4 a yellow lasts 750 ms, a cycle a quarter, and remaining times stay true."""
    fast = build_city_plan(registry, seed=0, epoch_ms=EPOCH, speed=4)
    slow = build_city_plan(registry, seed=0, epoch_ms=EPOCH)
    for iid in ("YT001", "YT050", "YT120"):
        plan = fast[iid]
        if plan.control is not Control.ACTUATED:
            assert (
                plan.cycle_starts(START, START + WINDOW)[1]
                - plan.cycle_starts(START, START + WINDOW)[0]
                == slow[iid].cycle_ms // 4
            )
        for group in plan.intersection.groups:
            changes = plan.transitions(group.sg, START, START + WINDOW // 4)
            for (at, state), (nxt, _) in itertools.pairwise(changes):
                if state is S.YELLOW:
                    assert nxt - at == YELLOW_MS // 4
        for t in range(START, START + 60_000, 333):
            for timing in plan.state_at(t):
                truth = plan.transitions(timing.sg, t + 1, t + LONGEST_CYCLE_MS)[0][0]
                if timing.min_ms == timing.max_ms:
                    assert timing.remaining_ms == truth - t


def test_report_is_a_valid_spat_payload(city: CityPlan) -> None:
    """report() builds a payload the gateway's parser accepts, carrying the plan's timing."""
    for plan in list(city)[:40]:
        t = START + 4_321
        parsed = parse_spat(plan.id, plan.report(t, 17))
        assert isinstance(parsed, SpatReport), parsed
        assert parsed.seq == 17
        assert parsed.ts_ms == t
        assert parsed.mode is Mode.NORMAL
        expected = plan.state_at(t)
        assert [g.sg for g in parsed.groups] == [e.sg for e in expected]
        for got, want in zip(parsed.groups, expected, strict=True):
            assert got.state is want.state
            assert (got.likely_ms, got.min_ms, got.max_ms) == (
                want.remaining_ms,
                want.min_ms,
                want.max_ms,
            )


def test_next_change_is_the_earliest_group_change(city: CityPlan) -> None:
    """next_change_after() is the first change of any group after the given time."""
    for plan in list(city)[::10]:
        for t in range(START, START + 200_000, 4_999):
            first = min(
                plan.transitions(g.sg, t + 1, t + LONGEST_CYCLE_MS)[0][0]
                for g in plan.intersection.groups
            )
            assert plan.next_change_after(t) == first


def test_speed_must_be_positive(registry: Registry) -> None:
    """A zero or negative speed is refused."""
    with pytest.raises(ValueError, match="speed"):
        build_city_plan(registry, seed=0, epoch_ms=EPOCH, speed=0)
