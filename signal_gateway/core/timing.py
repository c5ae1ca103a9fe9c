"""Clock maths: a controller's clock offset, and turning relative times into absolute end times.

Owns the estimate of (gateway clock - controller clock) per controller. Pure: no clock is read
here; every function takes the receive time the I/O layer measured.

Why a minimum filter: each sample ``receive_ms - ts_ms`` is the true offset plus the transit
delay, and the delay is never negative, so the smallest recent sample is the best estimate
(NTP's clock filter works the same way). A message that sat in a broker queue therefore does
not shift the countdowns of the messages after it.

A controller's clock can also step (an NTP correction, a restart). A step forward makes samples
smaller, which the minimum follows at once. A step back makes every sample larger, which is
indistinguishable from a delayed message until it persists, so a sample above the estimate by
more than ``step_tolerance_ms`` is *suspect*: its times are not trusted (the view shows no
number). Only when suspect samples keep coming, at least ``confirmations`` of them in a row
spread over at least ``confirm_span_ms`` of gateway time, does the estimator restart from them
and report a clock step. The span matters: a backlog released by a broker that hung arrives as
a burst of late samples within milliseconds, and must not be taken for a step.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class OffsetSample:
    """The result of feeding one message to an OffsetEstimator."""

    offset_ms: int  # the estimate to convert this message's times with
    trusted: bool  # False: the message may be late or the clock may have stepped back
    stepped: bool  # True: this sample confirmed a clock step and reset the estimate
    late_ms: int  # how much later than the estimate predicts this message arrived (>= 0)


class OffsetEstimator:
    """Minimum-filter estimate of gateway clock minus controller clock, with step detection."""

    __slots__ = ("_confirm_span", "_confirmations", "_suspects", "_tolerance", "_window")

    def __init__(
        self,
        *,
        window: int = 30,
        step_tolerance_ms: int = 1000,
        confirmations: int = 3,
        confirm_span_ms: int = 2000,
    ) -> None:
        self._window: deque[int] = deque(maxlen=window)
        self._suspects: list[tuple[int, int]] = []  # (receive_ms, sample)
        self._tolerance = step_tolerance_ms
        self._confirmations = confirmations
        self._confirm_span = confirm_span_ms

    @property
    def offset_ms(self) -> int | None:
        """The current estimate, or None before the first sample."""
        return min(self._window) if self._window else None

    def reset(self) -> None:
        """Forget every sample (the controller restarted)."""
        self._window.clear()
        self._suspects.clear()

    def peek(self, receive_ms: int, controller_ts_ms: int) -> OffsetSample:
        """Judge a sample against the estimate without learning from it.

        For messages known to be held up on the way (the gateway's link to the broker is slow,
        or a backlog is being worked through): learning from them would take the delay for
        clock offset. Trusted, as by :meth:`add`, only within the step tolerance of the estimate.
        """
        sample = receive_ms - controller_ts_ms
        current = self.offset_ms
        if current is None:
            return OffsetSample(sample, trusted=False, stepped=False, late_ms=0)
        if sample < current:  # a transit delay is never negative: the offset is at most this
            return OffsetSample(sample, trusted=True, stepped=False, late_ms=0)
        late = sample - current
        return OffsetSample(current, trusted=late <= self._tolerance, stepped=False, late_ms=late)

    def add(self, receive_ms: int, controller_ts_ms: int) -> OffsetSample:
        """Feed one message's receive time and controller timestamp; return how to convert it."""
        sample = receive_ms - controller_ts_ms
        current = self.offset_ms
        if current is None or sample <= current + self._tolerance:
            self._suspects.clear()
            self._window.append(sample)
            best = min(self._window)
            return OffsetSample(best, trusted=True, stepped=False, late_ms=sample - best)
        self._suspects.append((receive_ms, sample))
        span = receive_ms - self._suspects[0][0]
        if len(self._suspects) < self._confirmations or span < self._confirm_span:
            return OffsetSample(current, trusted=False, stepped=False, late_ms=sample - current)
        self._window.clear()
        self._window.extend(s for _, s in self._suspects)
        self._suspects.clear()
        best = min(self._window)
        return OffsetSample(best, trusted=True, stepped=True, late_ms=sample - best)


def to_absolute(controller_ts_ms: int, offset_ms: int, relative_ms: int | None) -> int | None:
    """An absolute gateway-clock time for a time counted from a controller's timestamp."""
    if relative_ms is None:
        return None
    return controller_ts_ms + offset_ms + relative_ms
