"""Controller health through a monitored city: every status transition, counters, rate, clock."""

from __future__ import annotations

from signal_gateway.core.health import RateWindow, Status, count_statuses
from signal_gateway.core.model import Rejection
from tests.engineer.support import Rig, g, kinds, rig


def status(r: Rig) -> Status:
    """The classified status of the rig's controller now."""
    return r.city.monitor.row(r.city.state(r.iid), r.clock.now_ms).status


def test_never_heard_from_is_offline() -> None:
    """Before any message a controller is offline, with no age and no rate."""
    r = rig()
    row = r.city.monitor.row(r.city.state(r.iid), r.clock.now_ms)
    assert row.status is Status.OFFLINE
    assert row.age_ms is None
    assert row.rate_per_s == 0.0
    assert row.mode == "unknown"


def test_online_status_without_reports_is_stale() -> None:
    """An online status but no SPaT yet: connected, nothing to show: stale."""
    r = rig()
    r.status(True)
    assert status(r) is Status.STALE


def test_first_report_makes_it_online() -> None:
    """A normal report: online, with the time of the status change."""
    r = rig()
    r.status(True)
    r.clock.advance(100)
    r.spat()
    row = r.city.monitor.row(r.city.state(r.iid), r.clock.now_ms)
    assert row.status is Status.ONLINE
    assert row.status_since_ms == r.clock.now_ms + 20  # delivered 20 ms after it was made


def test_silence_goes_stale_then_fresh() -> None:
    """No report for more than 2.5 s: stale (event), and online again with the next report."""
    r = rig()
    r.spat()
    assert r.tick(2500) == ()
    assert kinds(r.tick(100)) == ["stale"]
    assert status(r) is Status.STALE
    since = r.city.monitor.health_book.status(r.iid)[1]
    assert since == r.clock.now_ms
    r.spat()
    assert status(r) is Status.ONLINE
    assert "fresh" in kinds(r.events)


def test_last_will_makes_it_offline_and_opens_a_gap() -> None:
    """The Will (online false): offline, an offline event, and the history shows unknown."""
    r = rig()
    r.spat(g(2, "green"))
    r.clock.advance(1000)
    outcome = r.status(False)
    assert kinds(outcome.events) == ["offline"]
    assert outcome.events[0].severity == "critical"
    assert status(r) is Status.OFFLINE
    diagram = r.city.monitor.diagram(r.iid, r.clock.now_ms + 1000)
    states = [s.state for sg, segs in diagram.groups if sg == 2 for s in segs]
    assert states == ["green", "unknown"]


def test_modes_are_statuses() -> None:
    """flash, dark, manual, preempt and fault each classify as themselves; normal is online."""
    r = rig()
    for mode in ("flash", "dark", "manual", "preempt", "fault", "normal"):
        r.clock.advance(1000)
        r.spat(g(2, "flashing_yellow"), mode=mode)
        expected = Status.ONLINE if mode == "normal" else Status(mode)
        assert status(r) is expected, mode


def test_mode_change_time_and_event() -> None:
    """Going to flash: a mode event, and mode_since is the time it was seen."""
    r = rig()
    r.spat()
    r.clock.advance(5000)
    outcome = r.spat(g(2, "flashing_yellow"), mode="flash")
    assert "mode" in kinds(outcome.events)
    row = r.city.monitor.row(r.city.state(r.iid), r.clock.now_ms + 3000)
    assert row.mode == "flash"
    assert row.mode_since_ms == r.clock.now_ms + 20
    assert row.status_since_ms == r.clock.now_ms + 20


def test_offline_beats_flash() -> None:
    """A flashing controller whose Will fires is offline, not flash."""
    r = rig()
    r.spat(g(2, "flashing_yellow"), mode="flash")
    r.status(False)
    assert status(r) is Status.OFFLINE


def test_lost_duplicate_and_out_of_order_are_counted() -> None:
    """A seq gap of 3 counts 3 lost; a repeat counts a duplicate; an old seq out-of-order."""
    r = rig()
    r.spat()
    r.spat()
    r.seq += 3
    r.spat()  # seq 6: 3, 4, 5 lost
    r.resend(6)
    r.resend(5)
    row = r.city.monitor.row(r.city.state(r.iid), r.clock.now_ms)
    assert (row.lost, row.duplicates, row.out_of_order) == (3, 1, 1)
    assert row.accepted == 3


def test_rejections_are_counted_by_reason() -> None:
    """Refused payloads show up per reason in the row, with a total."""
    r = rig()
    for reason in ("schema", "schema", "not_json"):
        r.city.reject(Rejection(reason, "bad", r.iid), r.clock.now_ms)
    row = r.city.monitor.row(r.city.state(r.iid), r.clock.now_ms).as_dict()
    assert row["rejected"] == {"schema": 2, "not_json": 1}
    assert row["rejected_total"] == 3


def test_clock_offset_and_skew() -> None:
    """A controller 5 s ahead: offset about -5 s, skewed, and a skew event."""
    r = rig()
    r.behind_ms = 0
    r.spat()
    r.clock.advance(1000)
    outcome = r.spat(skew_ms=5000)
    assert "skew" in kinds(outcome.events)
    row = r.city.monitor.row(r.city.state(r.iid), r.clock.now_ms)
    assert row.skewed
    assert row.clock_offset_ms is not None
    assert -5000 <= row.clock_offset_ms <= -4900


def test_rate_over_a_sliding_window() -> None:
    """One report a second for 10 s is 1/s; 11 s of silence brings it to 0."""
    r = rig()
    for _ in range(10):
        r.spat()
        r.clock.advance(1000)
    row = r.city.monitor.row(r.city.state(r.iid), r.clock.now_ms)
    assert row.rate_per_s == 1.0
    r.clock.advance(11_000)
    assert r.city.monitor.row(r.city.state(r.iid), r.clock.now_ms).rate_per_s == 0.0


def test_rate_window_forgets_old_messages() -> None:
    """A RateWindow counts only the last window."""
    window = RateWindow(window_ms=2000)
    for t in (0, 500, 1000, 1500, 2500):
        window.add(t)
    assert window.rate(2500) == 1.5  # 1000, 1500, 2500 within (500, 2500]


def test_critical_rule_makes_it_faulty_and_counts() -> None:
    """Conflicting greens: the rule is counted, noted as last rule, and the row is faulty."""
    r = rig()
    r.spat(g(2, "green"), g(4, "red"))
    r.clock.advance(1000)
    outcome = r.spat(g(2, "green"), g(4, "green"))
    assert kinds(outcome.events) == ["rule:conflicting_greens"]
    rows = r.city.monitor.rows(r.city, r.clock.now_ms)
    row = next(h for h in rows if h.id == r.iid)
    assert row.faulty
    assert row.rules == {"conflicting_greens": 1}
    assert row.last_rule is not None
    assert row.last_rule.kind == "rule:conflicting_greens"
    counts = count_statuses(rows)
    assert counts["faults"] == 1
    assert counts["online"] == 1
    assert counts["offline"] == 1
    assert counts["total"] == 2


def test_dirty_set_reports_status_changes_once() -> None:
    """A status change marks the controller for an immediate push, once."""
    r = rig()
    book = r.city.monitor.health_book
    book.take_dirty()
    r.spat()
    assert book.take_dirty() == {r.iid}
    r.clock.advance(500)
    r.spat()
    assert book.take_dirty() == set()


def test_restart_is_not_judged_against_the_old_report() -> None:
    """After a restart (seq back to 1 after online), green → red is not a forbidden transition."""
    r = rig()
    r.spat(g(2, "green"))
    r.status(True)
    r.seq = 0
    r.clock.advance(1000)
    outcome = r.spat(g(2, "red"))
    assert "restart" in kinds(outcome.events)
    assert "rule:forbidden_transition" not in kinds(outcome.events)


def test_rules_run_through_the_city() -> None:
    """A consecutive green → red through the monitored city becomes a rule event."""
    r = rig()
    r.spat(g(2, "green"))
    r.clock.advance(1000)
    outcome = r.spat(g(2, "red"))
    assert kinds(outcome.events) == ["rule:forbidden_transition"]
    assert outcome.accepted
