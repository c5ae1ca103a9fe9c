"""Pure tests of the fault descriptions: what a faulty controller publishes instead of its plan."""

from __future__ import annotations

import json

import pytest

from signal_gateway.core.model import Mode, Movement, Rejection, SignalState, SpatReport
from signal_gateway.core.registry import Registry
from signal_gateway.ingest.wire import parse_spat
from simulator.faults import (
    MALFORMED_KINDS,
    Faults,
    apply_mode,
    conflicting_pair,
    malformed,
    render,
)
from simulator.plan import CityPlan, IntersectionPlan, build_city_plan

EPOCH = 1_764_000_000_000
NOW = EPOCH + 12_345


@pytest.fixture(scope="module")
def plan(registry: Registry) -> IntersectionPlan:
    """YT001's plan (12 groups, pedestrians included)."""
    city: CityPlan = build_city_plan(registry, seed=0, epoch_ms=EPOCH)
    return city["YT001"]


def parsed(plan: IntersectionPlan, payload: bytes) -> SpatReport:
    report = parse_spat(plan.id, payload)
    assert isinstance(report, SpatReport), report
    return report


def test_healthy_render_is_the_plan_report(plan: IntersectionPlan) -> None:
    """Without faults one tick publishes exactly plan.report() and advances seq by one."""
    payloads, seq = render(plan.intersection, plan.groups_at(NOW), NOW, 41, Faults())
    assert payloads == [plan.report(NOW, 41)]
    assert seq == 42


@pytest.mark.parametrize(
    ("mode", "vehicle", "pedestrian"),
    [
        (Mode.FLASH, SignalState.FLASHING_YELLOW, SignalState.DARK),
        (Mode.DARK, SignalState.DARK, SignalState.DARK),
        (Mode.FAULT, SignalState.FLASHING_RED, SignalState.DARK),
    ],
)
def test_degraded_modes_show_no_times(
    plan: IntersectionPlan, mode: Mode, vehicle: SignalState, pedestrian: SignalState
) -> None:
    """Flash/dark/fault: vehicles flash (or go dark), pedestrians go dark, every time is null."""
    faults = Faults(mode=mode)
    payloads, _ = render(plan.intersection, plan.groups_at(NOW), NOW, 1, faults)
    report = parsed(plan, payloads[0])
    assert report.mode is mode
    for group in report.groups:
        registry_group = plan.intersection.group(group.sg)
        assert registry_group is not None
        ped = registry_group.movement is Movement.PEDESTRIAN
        assert group.state is (pedestrian if ped else vehicle)
        assert (group.likely_ms, group.min_ms, group.max_ms) == (None, None, None)


@pytest.mark.parametrize("mode", [Mode.MANUAL, Mode.PREEMPT])
def test_manual_and_preempt_keep_lamps_but_drop_times(plan: IntersectionPlan, mode: Mode) -> None:
    """Manual/preempt: the lamps are the plan's, but no end time is published."""
    groups = plan.groups_at(NOW)
    report = parsed(plan, render(plan.intersection, groups, NOW, 1, Faults(mode=mode))[0][0])
    assert [g.state for g in report.groups] == [SignalState(g.state) for g in groups]
    assert all(g.likely_ms is None for g in report.groups)
    assert apply_mode(plan.intersection, groups, Mode.NORMAL) == groups


def test_skew_moves_ts_only(plan: IntersectionPlan) -> None:
    """A skewed clock changes ts_ms by the skew; the remaining times stay the true ones."""
    groups = plan.groups_at(NOW)
    healthy = parsed(plan, render(plan.intersection, groups, NOW, 1, Faults())[0][0])
    skewed = parsed(plan, render(plan.intersection, groups, NOW, 1, Faults(skew_ms=-5000))[0][0])
    assert skewed.ts_ms == NOW - 5000
    assert skewed.groups == healthy.groups


def test_silent_publishes_nothing_and_keeps_seq(plan: IntersectionPlan) -> None:
    """A silent controller sends no payload and does not consume a seq."""
    assert render(plan.intersection, plan.groups_at(NOW), NOW, 9, Faults(silent=True)) == ([], 9)


def test_duplicate_sends_the_same_bytes_twice(plan: IntersectionPlan) -> None:
    """duplicate: the next report goes out twice with the same seq, then back to once."""
    faults = Faults(duplicate=1)
    first, seq = render(plan.intersection, plan.groups_at(NOW), NOW, 5, faults)
    assert len(first) == 2
    assert first[0] == first[1]
    assert parsed(plan, first[0]).seq == 5
    second, _ = render(plan.intersection, plan.groups_at(NOW + 900), NOW + 900, seq, faults)
    assert len(second) == 1


def test_reorder_sends_the_held_report_after_its_successor(plan: IntersectionPlan) -> None:
    """reorder: seq n is held back and published right after seq n+1."""
    faults = Faults(reorder=True)
    held, seq = render(plan.intersection, plan.groups_at(NOW), NOW, 7, faults)
    assert held == []
    later, seq = render(plan.intersection, plan.groups_at(NOW + 900), NOW + 900, seq, faults)
    assert [parsed(plan, p).seq for p in later] == [8, 7]
    assert parsed(plan, later[1]).ts_ms == NOW
    after, _ = render(plan.intersection, plan.groups_at(NOW + 1800), NOW + 1800, seq, faults)
    assert [parsed(plan, p).seq for p in after] == [9]


def test_conflict_reports_a_conflicting_pair_green(plan: IntersectionPlan) -> None:
    """conflict: two groups the registry says conflict are both reported green."""
    groups = plan.groups_at(NOW)
    pair = conflicting_pair(plan.intersection, groups)
    assert pair is not None
    assert frozenset(pair) in plan.intersection.conflicts
    report = parsed(plan, render(plan.intersection, groups, NOW, 1, Faults(conflict=True))[0][0])
    green = {g.sg for g in report.groups if g.state is SignalState.GREEN}
    assert set(pair) <= green


EXPECTED_REJECTION = {
    "invalid_json": "not_json",
    "not_utf8": "not_utf8",
    "empty": "not_json",
    "nan": "schema",
    "infinity": "schema",
    "negative_time": "schema",
    "unknown_state": "schema",
    "wrong_id": "id_mismatch",
    "missing_field": "schema",
    "wrong_version": "schema",
    "deeply_nested": "not_json",
    "huge": "too_large",
}
"""What the wire parser must say; huge_time and unknown_group pass the wire and are the city's
to refuse (absurd time, group not in the registry)."""


@pytest.mark.parametrize("kind", sorted(MALFORMED_KINDS))
def test_malformed_payloads_are_what_they_claim(plan: IntersectionPlan, kind: str) -> None:
    """Every malformed kind is refused by the wire parser for its reason, or is absurd content."""
    payload = malformed(kind, plan.intersection, plan.groups_at(NOW), NOW, 3, other_id="YT002")
    result = parse_spat(plan.id, payload)
    if kind in EXPECTED_REJECTION:
        assert isinstance(result, Rejection), result
        assert result.reason == EXPECTED_REJECTION[kind]
    elif kind == "huge_time":
        assert isinstance(result, SpatReport)
        assert result.groups[0].likely_ms == 10**15
    else:
        assert kind == "unknown_group"
        assert isinstance(result, SpatReport)
        assert plan.intersection.group(result.groups[-1].sg) is None


def test_huge_payload_is_ten_megabytes_of_json(plan: IntersectionPlan) -> None:
    """The huge payload is well-formed JSON of 10 MB."""
    payload = malformed("huge", plan.intersection, plan.groups_at(NOW), NOW, 3)
    assert len(payload) == 10 * 1024 * 1024
    assert json.loads(payload)["id"] == plan.id


def test_unknown_malformed_kind_is_refused(plan: IntersectionPlan) -> None:
    """Asking for a kind that does not exist is an error naming the known ones."""
    with pytest.raises(ValueError, match="invalid_json"):
        malformed("bogus", plan.intersection, plan.groups_at(NOW), NOW, 3)
