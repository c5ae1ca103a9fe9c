"""SPaT consistency rules, one at a time, against a fake clock and hand-made reports."""

from __future__ import annotations

import pytest

from signal_gateway.core.city import Event
from signal_gateway.core.model import SignalState, SpatReport
from signal_gateway.core.rules import (
    RULES,
    VEHICLE_TRANSITIONS,
    RuleBook,
    RuleConfig,
    parse_transitions,
    with_allowed,
)
from signal_gateway.testing import FakeClock
from tests.engineer.support import crossing, g, kinds, report

T0 = 1_764_000_000_000


class Feed:
    """Feeds reports of one crossing to a RuleBook, consecutive unless told otherwise."""

    def __init__(self, config: RuleConfig | None = None) -> None:
        self.book = RuleBook(config)
        self.clock = FakeClock(T0)
        self.intersection = crossing()
        self.previous: SpatReport | None = None
        self.seq = 0

    def send(self, at_s: float, *groups: object, mode: str = "normal", gap: int = 0) -> list[Event]:
        """A report made at ``at_s`` seconds after T0 (controller and gateway clocks agree)."""
        self.seq += 1 + gap
        ts = T0 + round(at_s * 1000)
        self.clock.now_ms = max(self.clock.now_ms, ts)
        new = report(self.seq, ts, *groups, mode=mode)  # type: ignore[arg-type]
        continuous = self.previous is not None and gap == 0
        events = self.book.evaluate(
            self.intersection, self.previous, new, self.clock.now_ms, continuous=continuous
        )
        self.previous = new
        return list(events)


def test_catalogue_names_kinds_and_severities() -> None:
    """Every rule has a unique name, a ``rule:`` kind and a known severity."""
    names = [rule.name for rule in RULES]
    assert len(names) == len(set(names)) == 7
    assert all(rule.kind == "rule:" + rule.name for rule in RULES)
    assert {rule.severity for rule in RULES} <= {"info", "warning", "critical"}


def test_conflicting_greens_told_once_when_they_start() -> None:
    """Groups 2 and 4 (registry conflict) green together: one critical event naming both."""
    feed = Feed()
    assert feed.send(0, g(2, "green"), g(4, "red")) == []
    events = feed.send(1, g(2, "green"), g(4, "green"))
    assert kinds(events) == ["rule:conflicting_greens"]
    assert events[0].severity == "critical"
    assert "sg 2 (green) and sg 4 (green)" in events[0].message
    assert feed.send(2, g(2, "green"), g(4, "green")) == []  # still open: not told again


def test_flashing_green_counts_as_green_for_conflicts() -> None:
    """A flashing green still lets traffic in: conflicting with a green is a violation."""
    feed = Feed()
    assert kinds(feed.send(0, g(2, "flashing_green"), g(4, "green"))) == ["rule:conflicting_greens"]


def test_non_conflicting_greens_are_fine() -> None:
    """Groups 2 and 1 do not conflict in the registry: both green is no violation."""
    feed = Feed()
    assert feed.send(0, g(2, "green"), g(1, "green"), g(4, "red")) == []


def test_conflict_again_after_it_cleared_is_told_again() -> None:
    """A conflict that clears and starts again after the repeat window is a new event."""
    feed = Feed()
    feed.send(0, g(2, "green"), g(4, "green"))
    feed.send(1, g(2, "green"), g(4, "red"))
    assert kinds(feed.send(20, g(2, "green"), g(4, "green"))) == ["rule:conflicting_greens"]


@pytest.mark.parametrize(
    ("before", "after"),
    [("green", "red"), ("yellow", "green"), ("red", "yellow"), ("flashing_green", "red")],
)
def test_forbidden_vehicle_transitions(before: str, after: str) -> None:
    """A vehicle group skipping the Chinese sequence is a critical violation."""
    feed = Feed()
    feed.send(0, g(2, before))
    events = feed.send(1, g(2, after))
    assert kinds(events) == ["rule:forbidden_transition"]
    assert events[0].severity == "critical"
    assert f"sg 2: {before} -> {after} is not allowed" in events[0].message


def test_chinese_sequence_is_allowed() -> None:
    """green → flashing green → yellow → red → (red+yellow) → green raises nothing."""
    feed = Feed()
    sequence = ["green", "flashing_green", "yellow", "red", "red_yellow", "green", "yellow", "red"]
    events = [e for i, s in enumerate(sequence) for e in feed.send(i * 3.0, g(2, s, 3.0))]
    assert events == []


def test_pedestrian_flashing_green_to_red_is_allowed() -> None:
    """Pedestrians have no yellow: flashing green → red is their normal end."""
    feed = Feed()
    feed.send(0, g(9, "green"))
    feed.send(1, g(9, "flashing_green"))
    assert feed.send(4, g(9, "red")) == []


def test_transition_across_a_lost_report_is_not_judged() -> None:
    """green → red with a seq gap: the lost report may have held the yellow."""
    feed = Feed()
    feed.send(0, g(2, "green"))
    assert feed.send(5, g(2, "red"), gap=2) == []


def test_transition_into_flash_mode_is_not_judged() -> None:
    """Going to flash is a mode change, not a forbidden transition."""
    feed = Feed()
    feed.send(0, g(2, "green"))
    assert feed.send(1, g(2, "red"), mode="flash") == []


def test_configured_extra_transition_is_allowed() -> None:
    """``rule_allow_transitions=green>red`` makes green → red legal."""
    table = with_allowed(VEHICLE_TRANSITIONS, parse_transitions("green>red"))
    feed = Feed(RuleConfig(vehicle_transitions=table))
    feed.send(0, g(2, "green"))
    assert feed.send(1, g(2, "red")) == []


def test_parse_transitions_names_the_bad_entry() -> None:
    """A bad entry in the transition setting is refused with its text."""
    with pytest.raises(ValueError, match="'green-red'"):
        parse_transitions("yellow>red, green-red")
    assert parse_transitions(" green>red ,") == [(SignalState.GREEN, SignalState.RED)]


def test_yellow_measured_shorter_than_3_s() -> None:
    """A yellow that lasted 2 s between the reports that began and ended it."""
    feed = Feed()
    feed.send(0, g(2, "flashing_green", 3.0))
    feed.send(3, g(2, "yellow", None))
    events = feed.send(5, g(2, "red", 60.0))
    assert kinds(events) == ["rule:short_yellow"]
    assert "yellow lasted 2.0 s" in events[0].message


def test_yellow_of_3_s_is_fine() -> None:
    """A 3 s yellow raises nothing."""
    feed = Feed()
    feed.send(0, g(2, "flashing_green", 3.0))
    feed.send(3, g(2, "yellow", 3.0))
    assert feed.send(6, g(2, "red", 60.0)) == []


def test_yellow_announced_short_is_told_once() -> None:
    """A yellow announced for 2 s is told on entry, and not again when it ends."""
    feed = Feed()
    feed.send(0, g(2, "flashing_green", 3.0))
    events = feed.send(3, g(2, "yellow", 2.0))
    assert kinds(events) == ["rule:short_yellow"]
    assert "announced for 2.0 s" in events[0].message
    assert feed.send(5, g(2, "red", 60.0)) == []


def test_late_reports_do_not_shorten_a_yellow() -> None:
    """Reports 300-400 ms late (a busy controller): the 3 s yellow is placed where predicted."""
    feed = Feed()
    feed.send(0, g(2, "flashing_green", 3.0))
    assert feed.send(3.3, g(2, "yellow", 2.7)) == []
    assert feed.send(6.4, g(2, "red", 60.0)) == []


def test_a_short_yellow_reported_late_is_still_short() -> None:
    """A 2 s yellow whose first report came 300 ms late is still told."""
    feed = Feed()
    feed.send(0, g(2, "flashing_green", 3.0))
    events = feed.send(3.3, g(2, "yellow", 1.7))
    assert kinds(events) == ["rule:short_yellow"]
    assert "announced for 2.0 s" in events[0].message


def test_yellow_whose_start_was_not_seen_is_not_measured() -> None:
    """After a lost report the yellow's start is unknown: no measured-length verdict."""
    feed = Feed()
    feed.send(0, g(2, "flashing_green", 3.0))
    feed.send(4, g(2, "yellow", None), gap=1)
    assert feed.send(5, g(2, "red", 60.0)) == []


def test_min_end_moving_earlier() -> None:
    """An actuated green whose earliest end moves 1 s earlier (beyond 100 ms) is flagged."""
    feed = Feed()
    feed.send(0, g(2, "green", 20.0, 10.0, 30.0))
    events = feed.send(1, g(2, "green", 19.0, 8.0, 29.0))
    assert kinds(events) == ["rule:min_end_earlier"]
    assert "min end moved 1000 ms earlier" in events[0].message
    assert events[0].severity == "warning"


def test_min_end_moving_within_100_ms_is_fine() -> None:
    """Moving the earliest end 50 ms earlier is within one TimeMark tick."""
    feed = Feed()
    feed.send(0, g(2, "green", 20.0, 10.0, 30.0))
    assert feed.send(1, g(2, "green", 19.0, 8.95, 29.0)) == []


def test_max_end_moving_later() -> None:
    """An actuated green whose latest end moves 2 s later is flagged."""
    feed = Feed()
    feed.send(0, g(2, "green", 20.0, 10.0, 30.0))
    events = feed.send(1, g(2, "green", 19.0, 9.0, 31.0))
    assert kinds(events) == ["rule:max_end_later"]
    assert "max end moved 2000 ms later" in events[0].message


def test_countdown_jump_on_an_exact_end() -> None:
    """A fixed-time countdown that jumps by 6 s: countdown_jump only (not min/max too)."""
    feed = Feed()
    feed.send(0, g(2, "green", 20.0))
    events = feed.send(1, g(2, "green", 25.0))
    assert kinds(events) == ["rule:countdown_jump"]
    assert "+6.0 s" in events[0].message


def test_small_correction_of_an_exact_end() -> None:
    """An exact end moving 500 ms later is below the jump threshold but beyond 100 ms."""
    feed = Feed()
    feed.send(0, g(2, "green", 20.0))
    assert kinds(feed.send(1, g(2, "green", 19.5))) == ["rule:max_end_later"]


def test_steady_countdown_is_fine() -> None:
    """A countdown that runs down with the clock raises nothing."""
    feed = Feed()
    events = [e for i in range(10) for e in feed.send(i, g(2, "green", 20.0 - i))]
    assert events == []


def _cycles(feed: Feed, lengths: list[float], *, actuated: bool = False) -> list[Event]:
    """Fixed-time cycles of the main group 2: green half the cycle, yellow 3 s, red."""
    t = 0.0
    events: list[Event] = []
    for length in lengths:
        green = length / 2 - 3
        bounds = (green, green / 2, green * 2) if actuated else (green,)
        events += feed.send(t, g(2, "green", *bounds))
        events += feed.send(t + green, g(2, "yellow", 3.0))
        events += feed.send(t + green + 3, g(2, "red", length / 2))
        t += length
    events += feed.send(t, g(2, "green", 10.0))
    return events


def test_cycle_length_change() -> None:
    """Cycles of 60, 60, then 90 s: one info event naming both lengths."""
    feed = Feed()
    events = _cycles(feed, [60, 60, 90])
    assert kinds(events) == ["rule:cycle_length_change"]
    assert events[0].severity == "info"
    assert "60.0 s -> 90.0 s" in events[0].message


def test_steady_cycle_is_fine() -> None:
    """Three cycles of 60 s raise nothing."""
    assert _cycles(Feed(), [60, 60, 60]) == []


def test_actuated_cycles_are_not_judged() -> None:
    """Actuated greens vary the cycle on purpose: no cycle events."""
    assert _cycles(Feed(), [60, 60, 90], actuated=True) == []


def test_repeat_limit_counts_what_it_does_not_tell() -> None:
    """A second jump within 10 s is counted, not told; the next event says how many."""
    feed = Feed()
    feed.send(0, g(2, "green", 20.0))
    assert kinds(feed.send(1, g(2, "green", 25.0))) == ["rule:countdown_jump"]
    assert feed.send(2, g(2, "green", 30.0)) == []
    assert feed.book.counts("YT001") == {"countdown_jump": 2}
    events = feed.send(15, g(2, "green", 40.0))
    assert kinds(events) == ["rule:countdown_jump"]
    assert "(+1 more since the last event of this rule)" in events[0].message


def test_forget_drops_pairwise_memory() -> None:
    """After forget (offline), a conflict still open is told again at once."""
    feed = Feed()
    feed.send(0, g(2, "green"), g(4, "green"))
    feed.book.forget("YT001")
    feed.previous = None
    feed.book.config = RuleConfig(repeat_ms=0)
    assert kinds(feed.send(1, g(2, "green"), g(4, "green"))) == ["rule:conflicting_greens"]
