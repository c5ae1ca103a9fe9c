"""City: time conversion, seq handling, restarts, staleness, the unknown rules, what changed."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from signal_gateway.core.city import City, CoreConfig, Outcome
from signal_gateway.core.model import Mode, Rejection, SignalState
from signal_gateway.core.views import GroupView, IntersectionView
from signal_gateway.testing import (
    FakeClock,
    G,
    small_registry,
    spat_report,
    status_report,
)

IID = "YT001"
RED, GREEN = SignalState.RED, SignalState.GREEN


@dataclass
class Controller:
    """A fake controller: its own clock (``clock_offset_ms`` behind the gateway's) and seq."""

    city: City
    clock: FakeClock
    iid: str = IID
    clock_offset_ms: int = 500  # gateway clock minus controller clock
    seq: int = 0
    sent: list[int] = field(default_factory=list)

    def ts(self) -> int:
        """The controller's clock now."""
        return self.clock.now_ms - self.clock_offset_ms

    def send(
        self,
        *groups: G,
        delay_ms: int = 20,
        mode: str = "normal",
        seq: int | None = None,
        ts_ms: int | None = None,
    ) -> Outcome:
        """Make a report now and deliver it ``delay_ms`` later (the clock is not moved)."""
        if seq is None:
            self.seq += 1
            seq = self.seq
        report = spat_report(
            self.iid,
            seq,
            self.ts() if ts_ms is None else ts_ms,
            groups or (G(1, "green", 10.0), G(2, "red", 13.0)),
            mode,
        )
        return self.city.on_spat(report, self.clock.now_ms + delay_ms)

    def status(self, online: bool, ts_ms: int | None = None) -> Outcome:
        """A status message (``online=False`` without ts_ms is the Last Will)."""
        return self.city.on_status(status_report(self.iid, online, ts_ms), self.clock.now_ms)


def make(config: CoreConfig | None = None) -> tuple[City, FakeClock, Controller]:
    """A city of three intersections, a fake clock and a controller of YT001."""
    city = City(small_registry(), config)
    clock = FakeClock()
    return city, clock, Controller(city, clock)


def group(view: IntersectionView, sg: int) -> GroupView:
    """The view of one signal group."""
    return next(g for g in view.groups if g.sg == sg)


def kinds(outcome: Outcome) -> list[str]:
    """The kinds of the events an outcome carries."""
    return [event.kind for event in outcome.events]


# -- time conversion ------------------------------------------------------------------------


def test_end_is_timestamp_plus_offset_plus_remaining() -> None:
    """end_ms = ts_ms + offset + remaining, on the gateway clock."""
    city, clock, ctl = make()
    outcome = ctl.send(G(1, "green", 10.0), delay_ms=20)
    assert outcome.result == "accepted"
    assert outcome.changed
    g1 = group(city.view(IID), 1)
    assert g1.state is GREEN
    assert g1.end_ms == ctl.ts() + 520 + 10_000 == clock.now_ms + 20 + 10_000
    assert (g1.min_end_ms, g1.max_end_ms, g1.likely_end_ms) == (g1.end_ms,) * 3
    assert city.view(IID).updated_ms == clock.now_ms + 20


def test_delayed_message_still_yields_the_right_end() -> None:
    """A message 700 ms late in transit still gives the true end (the min filter holds)."""
    city, clock, ctl = make()
    true_end = clock.now_ms + 20 + 10_000
    ctl.send(G(1, "green", 10.0), delay_ms=20)
    clock.advance(1000)
    ctl.send(G(1, "green", 9.0), delay_ms=700)
    assert group(city.view(IID), 1).end_ms == true_end
    assert city.state(IID).sample is not None
    assert city.state(IID).sample.late_ms == 680  # type: ignore[union-attr]


def test_message_later_than_tolerance_withholds_numbers() -> None:
    """A message over 1 s later than the estimate is suspect: its times are not shown."""
    city, clock, ctl = make()
    ctl.send(delay_ms=20)
    clock.advance(1000)
    outcome = ctl.send(G(1, "green", 9.0), delay_ms=1500)
    assert outcome.result == "accepted"
    g1 = group(city.view(IID), 1)
    assert g1.state is GREEN
    assert g1.end_ms is None
    assert g1.likely_end_ms is None
    clock.advance(1000)
    ctl.send(G(1, "green", 8.0), delay_ms=20)
    assert group(city.view(IID), 1).end_ms is not None


# -- seq handling ---------------------------------------------------------------------------


def test_duplicate_seq_is_dropped_and_counted() -> None:
    """A second message with the same seq changes nothing and is counted as duplicate."""
    city, clock, ctl = make()
    ctl.send(seq=7)
    city.take_changed()
    clock.advance(100)
    outcome = ctl.send(G(1, "red", 50.0), seq=7)
    assert outcome.result == "duplicate"
    assert not outcome.accepted
    assert group(city.view(IID), 1).state is GREEN
    assert city.state(IID).counts["duplicate"] == 1
    assert city.totals["duplicate"] == 1
    assert city.take_changed() == set()


def test_out_of_order_seq_is_dropped_and_counted() -> None:
    """An older seq with an older ts (not a restart) is dropped as out_of_order."""
    city, clock, ctl = make()
    old_ts = ctl.ts()
    clock.advance(1000)
    ctl.send(seq=10)
    outcome = ctl.send(G(1, "red", 50.0), seq=9, ts_ms=old_ts)
    assert outcome.result == "out_of_order"
    assert group(city.view(IID), 1).state is GREEN
    assert city.state(IID).counts["out_of_order"] == 1
    assert city.state(IID).last_seq == 10


def test_seq_gap_is_counted_as_lost() -> None:
    """A jump forward in seq counts the missing messages as lost and is accepted."""
    city, clock, ctl = make()
    ctl.send(seq=1)
    clock.advance(1000)
    outcome = ctl.send(seq=5)
    assert outcome.accepted
    assert city.state(IID).counts["lost"] == 3
    clock.advance(1000)
    ctl.send(seq=6)
    assert city.state(IID).counts["lost"] == 3


def test_lost_is_not_counted_twice_when_the_gapped_report_is_dropped() -> None:
    """A report dropped as too_old moves no seq, so its gap is not counted twice."""
    city, clock, ctl = make()
    ctl.send(seq=1)
    clock.advance(1000)
    assert ctl.send(seq=4, delay_ms=4000).result == "too_old"
    clock.advance(1000)
    assert ctl.send(seq=5).accepted
    assert city.state(IID).counts["lost"] == 3  # seq 2, 3 and 4 (dropped) never became state


# -- restarts -------------------------------------------------------------------------------


def test_restart_after_online_status_and_seq_starting_over() -> None:
    """seq starting over after an online status is a restart, not out of order."""
    city, clock, ctl = make()
    ctl.status(True)
    for seq in range(100, 103):
        ctl.send(seq=seq)
        clock.advance(1000)
    ctl.status(False)
    clock.advance(500)
    ctl.status(True)
    outcome = ctl.send(G(1, "red", 30.0), seq=0)
    assert outcome.accepted
    assert "restart" in kinds(outcome)
    assert city.state(IID).counts["restarts"] == 1
    assert city.state(IID).last_seq == 0
    assert group(city.view(IID), 1).end_ms == clock.now_ms + 20 + 30_000


def test_without_online_status_a_small_seq_back_with_older_ts_is_no_restart() -> None:
    """The same small seq step back is out_of_order when no online status preceded it."""
    _, clock, ctl = make()
    old_ts = ctl.ts()
    clock.advance(1000)
    ctl.send(seq=102)
    assert ctl.send(seq=0, ts_ms=old_ts).result == "out_of_order"


def test_restart_on_a_large_jump_back() -> None:
    """seq jumping back by restart_seq_gap or more is a restart even with an older ts."""
    city, clock, ctl = make()
    old_ts = ctl.ts()
    clock.advance(1000)
    ctl.send(seq=5000)
    clock.advance(1000)
    outcome = ctl.send(seq=3, ts_ms=old_ts + 1)
    assert outcome.accepted
    assert "restart" in kinds(outcome)
    assert city.state(IID).counts["restarts"] == 1


def test_restart_when_seq_goes_back_and_ts_forward() -> None:
    """A small seq step back with a newer ts is a restart."""
    _, clock, ctl = make()
    ctl.send(seq=50)
    clock.advance(1000)
    outcome = ctl.send(seq=1)
    assert outcome.accepted
    assert "restart" in kinds(outcome)


def test_restart_starts_the_clock_offset_over() -> None:
    """After a restart a very different clock is trusted at once (no step confirmation)."""
    city, clock, ctl = make()
    ctl.send(seq=50)
    clock.advance(1000)
    ctl.clock_offset_ms += 10_000  # the rebooted controller's clock is 10 s behind
    ctl.status(True)
    outcome = ctl.send(G(1, "green", 10.0), seq=0)
    assert outcome.accepted  # without the reset: a suspect 10 s late, dropped as too_old
    assert "restart" in kinds(outcome)
    assert group(city.view(IID), 1).end_ms == clock.now_ms + 20 + 10_000


# -- staleness ------------------------------------------------------------------------------


def test_goes_stale_after_stale_after_ms_and_comes_back() -> None:
    """tick() marks a silent intersection stale; numbers vanish, and return with the next report."""
    city, clock, ctl = make()
    ctl.send(delay_ms=0)
    city.take_changed()
    clock.advance(2500)
    assert city.tick(clock.now_ms) == ()
    assert not city.view(IID).stale
    clock.advance(1)
    events = city.tick(clock.now_ms)
    assert [e.kind for e in events] == ["stale"]
    view = city.view(IID)
    assert view.stale
    assert all(g.end_ms is None and g.likely_end_ms is None for g in view.groups)
    assert group(view, 1).state is GREEN  # the last known state, without numbers
    assert city.take_changed() == {IID}
    assert city.tick(clock.now_ms + 1000) == ()  # stale once, not every tick
    assert city.state(IID).counts["stale_episodes"] == 1
    clock.advance(500)
    outcome = ctl.send(delay_ms=0)
    assert "fresh" in kinds(outcome)
    assert not city.view(IID).stale
    assert group(city.view(IID), 1).end_ms == clock.now_ms + 10_000


def test_stale_after_ms_is_configurable() -> None:
    """A shorter stale time makes the intersection stale sooner."""
    city, clock, ctl = make(CoreConfig(stale_after_ms=1000))
    ctl.send(delay_ms=0)
    clock.advance(1001)
    assert [e.kind for e in city.tick(clock.now_ms)] == ["stale"]


def test_never_heard_intersections_are_unknown_and_do_not_go_stale_again() -> None:
    """Before any report a view is unknown (mode unknown, stale, no numbers) and tick is silent."""
    city, clock, _ = make()
    view = city.view("YT002")
    assert view.mode is Mode.UNKNOWN
    assert view.stale
    assert not view.online
    assert view.updated_ms is None
    assert all(g.state is None and g.end_ms is None for g in view.groups)
    assert city.tick(clock.now_ms + 60_000) == ()


# -- the unknown rules ----------------------------------------------------------------------


def test_offline_status_withholds_numbers() -> None:
    """online:false makes every time null and is an offline event."""
    city, clock, ctl = make()
    ctl.status(True)
    ctl.send()
    outcome = ctl.status(False, ts_ms=ctl.ts())
    assert outcome.result == "status"
    assert outcome.changed
    assert kinds(outcome) == ["offline"]
    event = outcome.events[0]
    assert (event.at_ms, event.intersection_id, event.severity) == (clock.now_ms, IID, "critical")
    assert "offline" in event.message
    view = city.view(IID)
    assert not view.online
    assert all(g.end_ms is None and g.min_end_ms is None for g in view.groups)


def test_last_will_withholds_numbers_and_the_next_report_restores_them() -> None:
    """The Last Will ({"online":false}) takes numbers away; the next report is an online event."""
    city, clock, ctl = make()
    ctl.status(True)
    ctl.send()
    ctl.status(False)
    assert group(city.view(IID), 1).end_ms is None
    clock.advance(200)
    outcome = ctl.send()
    assert "online" in kinds(outcome)
    assert city.view(IID).online
    assert group(city.view(IID), 1).end_ms is not None


def test_online_status_after_will_does_not_bring_old_numbers_back() -> None:
    """After a Will, an online status alone shows no numbers until the controller reports again."""
    city, clock, ctl = make()
    ctl.status(True)
    ctl.send()
    clock.advance(300)
    ctl.status(False)
    clock.advance(300)
    outcome = ctl.status(True)
    assert kinds(outcome) == ["online"]
    view = city.view(IID)
    assert view.online
    assert not view.stale
    assert all(g.end_ms is None for g in view.groups)
    clock.advance(100)
    ctl.send()
    assert group(city.view(IID), 1).end_ms is not None


def test_first_online_status_is_no_event_but_first_offline_is() -> None:
    """An initial online status is quiet; a controller first heard offline is an event."""
    city, _, ctl = make()
    assert kinds(ctl.status(True)) == []
    other = Controller(city, ctl.clock, iid="YT002")
    assert kinds(other.status(False)) == ["offline"]
    assert kinds(other.status(False)) == []


@pytest.mark.parametrize("mode", ["flash", "manual", "preempt", "dark", "fault"])
def test_any_mode_but_normal_withholds_numbers(mode: str) -> None:
    """In every mode but normal all times are null; the state and the mode are still shown."""
    city, clock, ctl = make()
    ctl.send()
    clock.advance(1000)
    outcome = ctl.send(G(1, "flashing_yellow", 10.0), mode=mode)
    assert outcome.changed
    assert "mode" in kinds(outcome)
    assert next(e for e in outcome.events if e.kind == "mode").severity == "warning"
    view = city.view(IID)
    assert view.mode is Mode(mode)
    g1 = group(view, 1)
    assert g1.state is SignalState.FLASHING_YELLOW
    assert (g1.end_ms, g1.min_end_ms, g1.max_end_ms, g1.likely_end_ms) == (None,) * 4
    clock.advance(1000)
    back = ctl.send()
    assert [e.severity for e in back.events if e.kind == "mode"] == ["info"]
    assert group(city.view(IID), 1).end_ms is not None


def test_min_not_max_gives_range_but_no_end() -> None:
    """An actuated group (min != max) gets min/max/likely and confidence but end_ms null."""
    city, clock, ctl = make()
    ctl.send(G(1, "green", 15.0, min_remaining_s=10.0, max_remaining_s=30.0, confidence=70))
    base = clock.now_ms + 20
    g1 = group(city.view(IID), 1)
    assert g1.end_ms is None
    assert (g1.min_end_ms, g1.likely_end_ms, g1.max_end_ms) == (
        base + 10_000,
        base + 15_000,
        base + 30_000,
    )
    assert g1.confidence == 70
    assert not city.view(IID).countdowns_shown


def test_missing_min_and_max_mean_exact() -> None:
    """Omitted min/max mean a fixed-time end: end = min = max = likely."""
    city, clock, ctl = make()
    ctl.send(G(1, "green", 12.3))
    g1 = group(city.view(IID), 1)
    assert g1.end_ms == clock.now_ms + 20 + 12_300
    assert g1.min_end_ms == g1.max_end_ms == g1.likely_end_ms == g1.end_ms


def test_min_and_max_within_one_tick_are_exact() -> None:
    """max - min within exact_tolerance_ms (100) still counts as a known end."""
    city, clock, ctl = make()
    ctl.send(G(1, "green", 12.0, min_remaining_s=12.0, max_remaining_s=12.1))
    assert group(city.view(IID), 1).end_ms == clock.now_ms + 20 + 12_000
    clock.advance(1000)
    ctl.send(G(1, "green", 11.0, min_remaining_s=11.0, max_remaining_s=11.2))
    assert group(city.view(IID), 1).end_ms is None


def test_only_min_given_is_not_exact() -> None:
    """With a min but no max the end is unknown."""
    city, _, ctl = make()
    ctl.send(G(1, "green", 12.0, min_remaining_s=5.0))
    g1 = group(city.view(IID), 1)
    assert g1.end_ms is None
    assert g1.min_end_ms is not None
    assert g1.max_end_ms is None


def test_unknown_likely_with_exact_bounds_uses_them() -> None:
    """remaining_s null with min == max still gives that end."""
    city, clock, ctl = make()
    ctl.send(G(1, "green", None, min_remaining_s=8.0, max_remaining_s=8.0))
    g1 = group(city.view(IID), 1)
    assert g1.end_ms == clock.now_ms + 20 + 8_000
    assert g1.likely_end_ms is None


def test_unreported_group_is_blank() -> None:
    """A registry group missing from the report has no state and no times."""
    city, _, ctl = make()
    ctl.send(G(1, "green", 10.0))
    g3 = group(city.view(IID), 3)
    assert g3 == GroupView(3, None, None, None, None, None, None)
    assert [g.sg for g in city.view(IID).groups] == [1, 2, 3, 4, 5, 6, 7]


# -- backlog and clock ----------------------------------------------------------------------


def test_backlog_older_than_stale_time_is_dropped_as_too_old() -> None:
    """A message arriving more than stale_after_ms late is dropped and changes nothing."""
    city, clock, ctl = make()
    ctl.send(G(1, "green", 10.0))
    city.take_changed()
    before = city.view(IID)
    clock.advance(1000)
    outcome = ctl.send(G(1, "red", 40.0), delay_ms=3000)
    assert outcome.result == "too_old"
    assert city.view(IID) is before
    assert city.take_changed() == set()
    assert city.state(IID).counts["too_old"] == 1
    assert city.totals["too_old"] == 1


def test_skew_is_flagged_and_cleared_with_events() -> None:
    """An offset beyond skew_threshold_ms raises a skew event; numbers stay right."""
    city, clock, ctl = make()
    ctl.clock_offset_ms = 5000  # controller clock 5 s behind
    outcome = ctl.send(G(1, "green", 10.0))
    assert kinds(outcome) == ["skew"]
    assert city.state(IID).skewed
    assert group(city.view(IID), 1).end_ms == clock.now_ms + 20 + 10_000
    clock.advance(1000)
    assert kinds(ctl.send()) == []  # flagged once
    clock.advance(1000)
    ctl.clock_offset_ms = 0  # NTP fixed the controller clock: a step forward, followed at once
    outcome = ctl.send()
    assert kinds(outcome) == ["skew_cleared"]
    assert not city.state(IID).skewed


def test_clock_step_back_is_confirmed_with_an_event() -> None:
    """A controller clock stepping back 5 s: dropped until confirmed, then a clock_step event."""
    city, clock, ctl = make()
    ctl.send()
    clock.advance(1000)
    ctl.clock_offset_ms += 5000
    results = []
    for _ in range(3):
        results.append(ctl.send(G(1, "green", 10.0)))
        clock.advance(1000)
    assert [o.result for o in results] == ["too_old", "too_old", "accepted"]
    assert "clock_step" in kinds(results[-1])
    assert group(city.view(IID), 1).end_ms == clock.now_ms - 1000 + 20 + 10_000


# -- rejections -----------------------------------------------------------------------------


def rejected(outcome: Outcome, reason: str, *words: str) -> Rejection:
    """Assert the outcome is a rejection for ``reason`` whose message holds ``words``."""
    assert outcome.result == reason
    assert not outcome.accepted
    assert not outcome.changed
    assert outcome.rejection is not None
    assert outcome.rejection.reason == reason
    for word in words:
        assert word in outcome.rejection.message
    return outcome.rejection


def test_unknown_intersection_is_rejected() -> None:
    """SPaT and status for an id not in the registry are rejected and counted."""
    city, clock, _ = make()
    ghost = Controller(city, clock, iid="YT999")
    rejected(ghost.send(), "unknown_intersection", "'YT999'")
    rejected(ghost.status(True), "unknown_intersection", "'YT999'")
    assert city.totals["unknown_intersection"] == 2
    assert city.take_changed() == set()


@pytest.mark.parametrize(
    ("groups", "reason", "words"),
    [
        ((G(99, "green", 1.0),), "unknown_group", ("groups[0].sg", "99")),
        ((G(1, "green", 1.0), G(1, "red", 2.0)), "duplicate_group", ("groups[1].sg", "1")),
        (
            (G(1, "green", 5.0, min_remaining_s=9.0, max_remaining_s=3.0),),
            "inconsistent_timing",
            ("groups[0]", "9.0", "3.0"),
        ),
        (
            (G(1, "green", 50.0, min_remaining_s=10.0, max_remaining_s=30.0),),
            "inconsistent_timing",
            ("groups[0].remaining_s", "50.0"),
        ),
        (
            (G(1, "green", 1.0, min_remaining_s=2.0),),
            "inconsistent_timing",
            ("groups[0].remaining_s", "1.0"),
        ),
        ((G(1, "green", 3600.1),), "absurd_time", ("groups[0].remaining_s", "3600.1")),
        (
            (G(1, "green", 10.0, max_remaining_s=4000.0),),
            "absurd_time",
            ("groups[0].max_remaining_s", "4000.0"),
        ),
        ((G(1, "green", -1.0),), "absurd_time", ("groups[0].remaining_s", "-1.0", "negative")),
    ],
)
def test_implausible_reports_are_rejected(
    groups: tuple[G, ...], reason: str, words: tuple[str, ...]
) -> None:
    """Registry and plausibility rules reject with a reason and a message naming field and value."""
    city, _, ctl = make()
    outcome = ctl.send(*groups)
    rejected(outcome, reason, *words)
    assert city.state(IID).counts[f"rejected:{reason}"] == 1
    assert city.totals[reason] == 1
    assert city.view(IID).mode is Mode.UNKNOWN
    assert city.take_changed() == set()
    assert city.state(IID).last_seq is None


@pytest.mark.parametrize("hours", [25, -25])
def test_timestamp_a_day_away_is_absurd(hours: int) -> None:
    """A ts_ms more than a day from the gateway clock is rejected as absurd_time."""
    _, clock, ctl = make()
    outcome = ctl.send(ts_ms=clock.now_ms - hours * 3_600_000)
    rejected(outcome, "absurd_time", "ts_ms", f"{hours:+.1f} h")


def test_timestamp_an_hour_away_is_accepted_and_flagged_as_skew() -> None:
    """A controller clock an hour wrong is not absurd: it is skew, and the ends stay right."""
    city, clock, ctl = make()
    ctl.clock_offset_ms = 3_600_000
    outcome = ctl.send(G(1, "green", 10.0))
    assert outcome.accepted
    assert "skew" in kinds(outcome)
    assert group(city.view(IID), 1).end_ms == clock.now_ms + 20 + 10_000


def test_edge_rejections_are_counted() -> None:
    """City.reject counts what the wire layer refused, per intersection and in total."""
    city, clock, _ = make()
    outcome = city.reject(Rejection("not_json", "payload: not JSON", IID), clock.now_ms)
    assert outcome.result == "not_json"
    assert city.totals["not_json"] == 1
    assert city.state(IID).counts["rejected:not_json"] == 1
    city.reject(Rejection("bad_topic", "topic: 'x'"), clock.now_ms)
    assert city.totals["bad_topic"] == 1


# -- what changed ---------------------------------------------------------------------------


def test_re_report_of_the_same_ends_changes_nothing() -> None:
    """A countdown that merely runs (1 Hz re-reports of the same end) causes no change."""
    city, clock, ctl = make()
    ctl.send(G(1, "green", 10.0), G(2, "red", 13.0))
    assert city.take_changed() == {IID}
    for second in range(1, 8):
        clock.advance(1000)
        outcome = ctl.send(G(1, "green", 10.0 - second), G(2, "red", 13.0 - second))
        assert outcome.accepted
        assert not outcome.changed
        assert city.take_changed() == set()
    assert city.view(IID).updated_ms == clock.now_ms + 20  # health info still kept current


def test_take_changed_reports_real_changes_once() -> None:
    """A state change is reported once by take_changed, which then starts empty."""
    city, clock, ctl = make()
    ctl.send(G(1, "green", 3.0))
    city.take_changed()
    clock.advance(3000)
    outcome = ctl.send(G(1, "flashing_green", 3.0))
    assert outcome.changed
    assert city.take_changed() == {IID}
    assert city.take_changed() == set()


def test_end_jitter_is_held() -> None:
    """Ends re-reported within end_jitter_ms of the shown one keep it; bigger moves show."""
    city, clock, ctl = make()
    ctl.send(G(1, "green", 10.0))
    shown = group(city.view(IID), 1).end_ms
    city.take_changed()
    clock.advance(1000)
    ctl.send(G(1, "green", 9.01))  # 10 ms later than before
    assert group(city.view(IID), 1).end_ms == shown
    assert city.take_changed() == set()
    clock.advance(1000)
    ctl.send(G(1, "green", 8.05))  # 50 ms later: a real timing correction
    assert group(city.view(IID), 1).end_ms == shown + 50  # type: ignore[operator]
    assert city.take_changed() == {IID}


def test_changed_only_for_the_intersection_that_changed() -> None:
    """take_changed names only intersections whose view changed."""
    city, clock, ctl = make()
    other = Controller(city, clock, iid="YT002")
    ctl.send()
    other.send()
    assert city.take_changed() == {IID, "YT002"}
    clock.advance(1000)
    ctl.send(G(1, "yellow", 3.0))
    other.send(G(1, "green", 9.0), G(2, "red", 12.0))
    assert city.take_changed() == {IID}


def test_views_are_in_registry_order() -> None:
    """City.views() yields every intersection in registry order."""
    city, _, _ = make()
    assert [v.id for v in city.views()] == ["YT001", "YT002", "YT003"]
