"""OffsetEstimator and to_absolute: the clock maths of signal_gateway.core.timing."""

from __future__ import annotations

from signal_gateway.core.timing import OffsetEstimator, OffsetSample, to_absolute
from signal_gateway.testing import FakeClock

TRUE_OFFSET = 500  # gateway clock minus controller clock


def feed(
    est: OffsetEstimator, clock: FakeClock, delay_ms: int, offset_ms: int = TRUE_OFFSET
) -> OffsetSample:
    """A message made now on the controller clock, received ``delay_ms`` later by the gateway."""
    ts = clock.now_ms - offset_ms
    return est.add(clock.now_ms + delay_ms, ts)


def test_first_sample_is_the_estimate() -> None:
    """The first sample becomes the estimate and is trusted."""
    est, clock = OffsetEstimator(), FakeClock()
    assert est.offset_ms is None
    sample = feed(est, clock, 20)
    assert (sample.offset_ms, sample.trusted, sample.stepped, sample.late_ms) == (
        520,
        True,
        False,
        0,
    )
    assert est.offset_ms == 520


def test_min_filter_ignores_a_delayed_sample() -> None:
    """A message delayed in transit neither moves the estimate nor loses trust within tolerance."""
    est, clock = OffsetEstimator(), FakeClock()
    feed(est, clock, 20)
    clock.advance(1000)
    delayed = feed(est, clock, 820)
    assert delayed.offset_ms == 520
    assert delayed.trusted
    assert delayed.late_ms == 800
    clock.advance(1000)
    assert feed(est, clock, 25).offset_ms == 520


def test_smaller_sample_lowers_the_estimate() -> None:
    """A faster transit than seen so far becomes the new minimum."""
    est, clock = OffsetEstimator(), FakeClock()
    feed(est, clock, 300)
    clock.advance(1000)
    assert feed(est, clock, 10).offset_ms == 510


def test_clock_step_forward_is_followed_at_once() -> None:
    """A controller clock stepping forward (samples smaller) is taken on the very next message."""
    est, clock = OffsetEstimator(), FakeClock()
    for _ in range(5):
        feed(est, clock, 20)
        clock.advance(1000)
    sample = feed(est, clock, 20, offset_ms=TRUE_OFFSET - 5000)
    assert sample.trusted
    assert sample.offset_ms == 20 + TRUE_OFFSET - 5000
    assert sample.late_ms == 0


def test_clock_step_back_is_untrusted_until_confirmed_by_count_and_span() -> None:
    """A step back is suspect until 3 suspects in a row span 2 s; then the estimate restarts."""
    est, clock = OffsetEstimator(), FakeClock()
    feed(est, clock, 20)
    stepped_offset = TRUE_OFFSET + 5000
    clock.advance(1000)
    first = feed(est, clock, 20, offset_ms=stepped_offset)
    assert (first.trusted, first.stepped, first.offset_ms, first.late_ms) == (
        False,
        False,
        520,
        5000,
    )
    clock.advance(1000)
    second = feed(est, clock, 20, offset_ms=stepped_offset)
    assert not second.trusted
    clock.advance(1000)
    third = feed(est, clock, 20, offset_ms=stepped_offset)
    assert third.trusted
    assert third.stepped
    assert third.offset_ms == 20 + stepped_offset
    assert est.offset_ms == 20 + stepped_offset
    clock.advance(1000)
    after = feed(est, clock, 20, offset_ms=stepped_offset)
    assert after.trusted
    assert not after.stepped


def test_step_back_needs_the_time_span_not_only_the_count() -> None:
    """Many suspects within less than confirm_span_ms are not yet a step."""
    est, clock = OffsetEstimator(), FakeClock()
    feed(est, clock, 20)
    stepped_offset = TRUE_OFFSET + 5000
    for _ in range(10):  # 10 suspects over 1.8 s: count is met, span is not
        clock.advance(200)
        sample = feed(est, clock, 20, offset_ms=stepped_offset)
        assert not sample.trusted
        assert not sample.stepped
    clock.advance(200)  # first suspect now 2000 ms ago
    assert feed(est, clock, 20, offset_ms=stepped_offset).stepped


def test_step_back_needs_the_count_not_only_the_time_span() -> None:
    """Two suspects far apart are not yet a step; the third one confirms it."""
    est, clock = OffsetEstimator(), FakeClock()
    feed(est, clock, 20)
    stepped_offset = TRUE_OFFSET + 5000
    clock.advance(1000)
    feed(est, clock, 20, offset_ms=stepped_offset)
    clock.advance(10_000)
    second = feed(est, clock, 20, offset_ms=stepped_offset)
    assert not second.trusted
    assert not second.stepped
    clock.advance(100)
    assert feed(est, clock, 20, offset_ms=stepped_offset).stepped


def test_suspects_must_come_in_a_row() -> None:
    """A trusted sample between suspects starts the confirmation over."""
    est, clock = OffsetEstimator(), FakeClock()
    feed(est, clock, 20)
    late = TRUE_OFFSET + 5000
    for offset in (late, late, TRUE_OFFSET, late, late):
        clock.advance(1000)
        sample = feed(est, clock, 20, offset_ms=offset)
        assert not sample.stepped
    assert est.offset_ms == 520


def test_burst_backlog_is_never_taken_for_a_step() -> None:
    """A broker backlog released as a burst of late samples within ms is no clock step."""
    est, clock = OffsetEstimator(), FakeClock()
    for _ in range(5):
        feed(est, clock, 20)
        clock.advance(1000)
    clock.advance(20_000)  # the broker hung; 20 messages of the last 20 s arrive at once
    receive = clock.now_ms
    for age_s in range(20, 1, -1):
        ts = receive - age_s * 1000 - TRUE_OFFSET
        sample = est.add(receive, ts)
        receive += 1
        assert not sample.trusted
        assert not sample.stepped
        assert sample.offset_ms == 520
    clock.advance(1000)
    on_time = feed(est, clock, 20)
    assert on_time.trusted
    assert on_time.offset_ms == 520


def test_window_drift_forgets_old_minimum() -> None:
    """With a drifting controller clock the estimate follows once old samples leave the window."""
    est, clock = OffsetEstimator(window=5), FakeClock()
    offsets = []
    for i in range(10):  # the controller clock loses 10 ms per message
        offsets.append(feed(est, clock, 20, offset_ms=TRUE_OFFSET + 10 * i).offset_ms)
        clock.advance(1000)
    assert offsets[:5] == [520] * 5
    assert offsets[9] == 520 + 10 * 5  # min of the last 5 samples (i = 5..9)


def test_reset_forgets_every_sample() -> None:
    """After reset the next sample is the estimate, trusted, whatever it is."""
    est, clock = OffsetEstimator(), FakeClock()
    feed(est, clock, 20)
    est.reset()
    assert est.offset_ms is None
    sample = feed(est, clock, 20, offset_ms=TRUE_OFFSET + 60_000)
    assert sample.trusted
    assert sample.offset_ms == 60_520


def test_custom_tolerance_is_respected() -> None:
    """A sample later than the estimate by more than step_tolerance_ms is suspect."""
    est, clock = OffsetEstimator(step_tolerance_ms=200), FakeClock()
    feed(est, clock, 20)
    clock.advance(1000)
    assert feed(est, clock, 220).trusted
    clock.advance(1000)
    assert not feed(est, clock, 221).trusted


def test_to_absolute() -> None:
    """An end is controller timestamp + offset + relative time; an unknown time stays None."""
    assert to_absolute(1_000_000, 500, 12_300) == 1_012_800
    assert to_absolute(1_000_000, -2_000, 0) == 998_000
    assert to_absolute(1_000_000, 500, None) is None
