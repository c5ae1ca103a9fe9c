"""The core's side of the link rules the fault suite relies on, with a fake clock (no broker).

``City.set_link`` (disconnected: no time shown) and ``City.set_timely`` (reports held up: no
offset learned, reports converted with what was learned before) are what make a slow link or
a backlog cost numbers instead of showing wrong ones (tests/faults/test_network.py).
"""

from __future__ import annotations

from signal_gateway.core.city import City
from signal_gateway.core.model import SignalState, SpatReport
from signal_gateway.core.timing import OffsetEstimator
from signal_gateway.testing import FakeClock, G, small_registry, spat_report

OFFSET = 250  # the controller clock is 250 ms behind the gateway's


def report(clock: FakeClock, seq: int, delay_ms: int = 0) -> tuple[SpatReport, int]:
    """(report, receive time) of a report made now and received ``delay_ms`` later."""
    made = clock.now_ms - OFFSET
    groups = [G(sg, SignalState.RED, 20.0) for sg in range(1, 8)]
    return spat_report("YT001", seq, made, groups), clock.now_ms + delay_ms


def test_a_lasting_delay_is_not_learned_while_reports_are_held_up() -> None:
    """While untimely, 40 reports 600 ms late keep the old offset: the ends stay right."""
    city, clock = City(small_registry()), FakeClock()
    for seq in range(1, 6):
        clock.advance(1000)
        city.on_spat(*report(clock, seq))
    right_end = city.view("YT001").groups[0].end_ms
    assert right_end == clock.now_ms + 20_000
    city.set_timely(False)
    for seq in range(6, 46):
        clock.advance(1000)
        city.on_spat(*report(clock, seq, delay_ms=600))
        view = city.view("YT001")
        assert view.groups[0].end_ms == clock.now_ms + 20_000  # ts + learned offset + 20 s
    assert city.state("YT001").offsets.offset_ms == OFFSET


def test_the_same_delay_is_learned_when_timely() -> None:
    """The control: timely, once the window fills with late samples every end is 600 ms late."""
    city, clock = City(small_registry()), FakeClock()
    for seq in range(1, 5 + city.config.offset_window + 1):
        clock.advance(1000)
        city.on_spat(*report(clock, seq, delay_ms=600 if seq > 5 else 0))
    assert city.view("YT001").groups[0].end_ms == clock.now_ms + 20_000 + 600


def test_disconnected_shows_no_time_at_once_and_reconnected_shows_it_again() -> None:
    """set_link(False) blanks every view now; back within the stale time, the numbers return."""
    city, clock = City(small_registry()), FakeClock()
    clock.advance(1000)
    city.on_spat(*report(clock, 1))
    city.take_changed()
    assert city.set_link(False, clock.now_ms)
    assert city.take_changed() == {"YT001"}
    view = city.view("YT001")
    assert view.stale
    assert not view.countdowns_shown
    clock.advance(500)
    assert city.set_link(True, clock.now_ms)
    assert city.view("YT001").countdowns_shown


def test_peek_never_learns_and_trusts_within_the_tolerance() -> None:
    """peek converts with the estimate, trusts within the step tolerance, learns nothing."""
    est = OffsetEstimator(step_tolerance_ms=1000)
    assert not est.peek(10_000, 9_000).trusted  # nothing learned yet
    est.add(10_000, 9_750)  # offset 250
    late = est.peek(20_000, 19_000)  # 1000 - 250 = 750 ms late
    assert late.trusted
    assert late.offset_ms == 250
    assert late.late_ms == 750
    too_late = est.peek(30_000, 28_500)
    assert not too_late.trusted
    earlier = est.peek(40_000, 39_900)  # offset at most 100: a clock stepped forward
    assert earlier.trusted
    assert earlier.offset_ms == 100
    assert est.offset_ms == 250  # none of it was learned
