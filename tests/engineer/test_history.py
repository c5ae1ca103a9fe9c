"""The timing history: state segments per group, gaps, the 15-minute window, the memory bound."""

from __future__ import annotations

from signal_gateway.core.history import Segment, TimingHistory
from tests.engineer.support import crossing, g, report

T0 = 1_764_000_000_000


def history(**kwargs: int) -> TimingHistory:
    """A history of one crossing."""
    h = TimingHistory(**kwargs)
    h.register([crossing()])
    return h


def segments(h: TimingHistory, sg: int, now_ms: int) -> list[Segment]:
    """The segments of one group up to ``now_ms``."""
    diagram = h.diagram("YT001", now_ms)
    return next(list(segs) for group, segs in diagram.groups if group == sg)


def test_changes_become_segments() -> None:
    """green at 0, yellow at 30 s, red at 33 s: three segments, the last still open."""
    h = history()
    h.record(report(1, T0, g(2, "green")), T0)
    h.record(report(2, T0 + 1000, g(2, "green")), T0 + 1000)  # a re-report is no change
    h.record(report(3, T0 + 30_000, g(2, "yellow")), T0 + 30_000)
    h.record(report(4, T0 + 33_000, g(2, "red")), T0 + 33_000)
    assert segments(h, 2, T0 + 40_000) == [
        Segment("green", T0, T0 + 30_000),
        Segment("yellow", T0 + 30_000, T0 + 33_000),
        Segment("red", T0 + 33_000, None),
    ]


def test_groups_missing_from_a_report_are_unknown() -> None:
    """A registry group the report does not mention is shown as unknown, not as a state."""
    h = history()
    h.record(report(1, T0, g(2, "green")), T0)
    assert segments(h, 4, T0 + 1) == [Segment("unknown", T0, None)]


def test_gap_when_nothing_is_known() -> None:
    """Offline at 10 s, back at 20 s: the diagram shows unknown in between."""
    h = history()
    h.record(report(1, T0, g(2, "red")), T0)
    h.unknown("YT001", T0 + 10_000)
    h.record(report(2, T0 + 20_000, g(2, "red")), T0 + 20_000)
    assert [s.state for s in segments(h, 2, T0 + 30_000)] == ["red", "unknown", "red"]
    modes = h.diagram("YT001", T0 + 30_000).modes
    assert [m.state for m in modes] == ["normal", "unknown", "normal"]


def test_only_the_window_is_kept() -> None:
    """Segments that ended before the 15-minute window are forgotten; the one in force stays."""
    h = history()
    h.record(report(1, T0, g(2, "green")), T0)
    h.record(report(2, T0 + 60_000, g(2, "red")), T0 + 60_000)
    h.record(report(3, T0 + 120_000, g(2, "green")), T0 + 120_000)
    now = T0 + 120_000 + 15 * 60_000 - 30_000  # the window starts at T0 + 90 s, in the red
    assert segments(h, 2, now) == [
        Segment("red", T0 + 90_000, T0 + 120_000),
        Segment("green", T0 + 120_000, None),
    ]
    h.record(report(4, now, g(2, "green")), now)
    assert len(h._by_id["YT001"].groups[2].changes) == 2  # the first green is gone


def test_a_shorter_span_can_be_asked_for() -> None:
    """span_ms limits the diagram; the first segment is clipped to the span's start."""
    h = history()
    h.record(report(1, T0, g(2, "green")), T0)
    h.record(report(2, T0 + 60_000, g(2, "red")), T0 + 60_000)
    diagram = h.diagram("YT001", T0 + 90_000, span_ms=60_000)
    assert diagram.from_ms == T0 + 30_000
    group = next(segs for sg, segs in diagram.groups if sg == 2)
    assert group == (Segment("green", T0 + 30_000, T0 + 60_000), Segment("red", T0 + 60_000, None))


def test_memory_is_bounded_for_a_flapping_controller() -> None:
    """A group changing every 10 ms keeps at most max_segments changes."""
    h = history(max_segments=50)
    for i in range(1000):
        h.record(report(i + 1, T0 + i * 10, g(2, "green" if i % 2 else "red")), T0 + i * 10)
    assert len(segments(h, 2, T0 + 10_000)) == 50


def test_diagram_json_names_the_groups() -> None:
    """The JSON has each group's approach and movement for the diagram's labels."""
    h = history()
    h.record(report(1, T0, g(2, "green")), T0)
    body = h.diagram("YT001", T0 + 1000).as_dict(crossing())
    groups = body["groups"]
    assert isinstance(groups, list)
    assert groups[0] == {
        "sg": 2,
        "approach": "E",
        "movement": "straight",
        "segments": [{"state": "green", "start_ms": T0, "end_ms": None}],
    }
