"""SAE J2735 SPaT in (ODE decoded JSON -> our SpatReport) and out (spat_for_view), and convert."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from signal_gateway.core.city import City
from signal_gateway.core.model import (
    Approach,
    GroupReading,
    Intersection,
    Mode,
    Movement,
    Rejection,
    SignalGroup,
    SignalState,
    SpatReport,
)
from signal_gateway.core.registry import Registry
from signal_gateway.core.views import GroupView, IntersectionView
from signal_gateway.ingest import j2735
from signal_gateway.ingest.j2735 import decode_timemark, parse_ode, reference_time, spat_for_view
from signal_gateway.j2735_convert import convert_command

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "j2735"
SAMPLE = SHARED / "ode-expected-spat.json"

HOUR_MS = 3_600_000


def utc(text: str) -> int:
    """Unix ms of an ISO-8601 UTC time written with a Z, computed independently of the module."""
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)


# The real record: odeReceivedAt 2024-12-10T17:34:40.359Z, no moy, so the hour is 17:00:00Z.
RECEIVED = utc("2024-12-10T17:34:40.359Z")  # 1733852080359
HOUR = utc("2024-12-10T17:00:00Z")  # 1733850000000

YT001 = Intersection(
    id="YT001",
    name_zh="南大街与胜利路交叉口",
    name_en="Nan Dajie & Shengli Lu",
    district="芝罘区",
    lat=37.53675,
    lon=121.392,
    groups=tuple(
        SignalGroup(sg, approach, movement)
        for sg, approach, movement in (
            (1, Approach.W, Movement.LEFT),
            (2, Approach.E, Movement.STRAIGHT),
            (3, Approach.N, Movement.LEFT),
            (4, Approach.S, Movement.STRAIGHT),
            (5, Approach.E, Movement.LEFT),
            (6, Approach.W, Movement.STRAIGHT),
            (7, Approach.S, Movement.LEFT),
            (8, Approach.N, Movement.STRAIGHT),
        )
    ),
    conflicts=frozenset(),
    j2735_id=12111,
)
REGISTRY = Registry([YT001])


@pytest.fixture
def sample_bytes() -> bytes:
    """The real ODE record's bytes; skips when ../shared/data/j2735 is not next to the repo."""
    if not SAMPLE.is_file():
        pytest.skip(f"shared J2735 sample not found at {SAMPLE} (clone shared/ next to main/)")
    return SAMPLE.read_bytes()


def movement(
    sg: int, event: object = "PROTECTED_MOVEMENT_ALLOWED", **timing: int
) -> dict[str, Any]:
    """One ODE MovementState with a single event."""
    body: dict[str, Any] = {"eventState": event}
    if timing:
        body["timing"] = timing
    return {"signalGroup": sg, "state_time_speed": {"movementEventList": [body]}}


def state(
    movements: list[dict[str, Any]],
    *,
    ident: int = 12111,
    status: object = None,
    **extra: object,
) -> dict[str, Any]:
    """One ODE IntersectionState."""
    body: dict[str, Any] = {
        "id": {"id": ident},
        "revision": 0,
        "status": {} if status is None else status,
        "timeStamp": 35176,
        "states": {"movementList": movements},
    }
    body.update(extra)
    return body


def record(
    states: list[dict[str, Any]], received: str | None = "2024-12-10T17:34:40.359Z"
) -> bytes:
    """A whole ODE record around ``states``."""
    metadata: dict[str, Any] = {"recordType": "spatTx"}
    if received is not None:
        metadata["odeReceivedAt"] = received
    doc = {
        "metadata": metadata,
        "payload": {"data": {"intersectionStateList": {"intersectionStatelist": states}}},
    }
    return json.dumps(doc).encode()


def one_report(payload: bytes, receive_ms: int = RECEIVED) -> SpatReport:
    """The single SpatReport a payload must give."""
    results = parse_ode(payload, receive_ms, REGISTRY)
    assert len(results) == 1
    report = results[0]
    assert isinstance(report, SpatReport), report
    return report


def one_rejection(payload: bytes, receive_ms: int = RECEIVED) -> Rejection:
    """The single Rejection a payload must give."""
    results = parse_ode(payload, receive_ms, REGISTRY)
    assert len(results) == 1
    rejection = results[0]
    assert isinstance(rejection, Rejection), rejection
    return rejection


def group(report: SpatReport, sg: int) -> GroupReading:
    """The reading of one signal group."""
    (reading,) = [g for g in report.groups if g.sg == sg]
    return reading


def absolute(report: SpatReport, relative: int | None) -> int | None:
    """A report's relative time as absolute Unix ms (what the core computes at zero offset)."""
    return None if relative is None else report.ts_ms + relative


# --------------------------------------------------------------------------- the real record


def test_real_record_absolute_times(sample_bytes: bytes) -> None:
    """The real ODE record decodes to the hand-computed absolute end times of every group."""
    # The receive time passed in is a day later: the record's own odeReceivedAt must win.
    report = one_report(sample_bytes, receive_ms=RECEIVED + 86_400_000)
    assert report.intersection_id == "YT001"
    assert report.ts_ms == RECEIVED  # 2024-12-10T17:34:40.359Z, no moy in the record
    assert report.seq == RECEIVED // 100
    assert report.mode is Mode.NORMAL  # every status flag is false
    # minEndTime 22120 -> 17:00:00 + 2212.0 s = 17:36:52.000Z; maxEndTime 22121 -> 17:36:52.100Z
    # minEndTime = maxEndTime 22181 -> 17:00:00 + 2218.1 s = 17:36:58.100Z
    # minEndTime = maxEndTime 21852 -> 17:00:00 + 2185.2 s = 17:36:25.200Z
    expected = {
        2: (utc("2024-12-10T17:36:52.000Z"), utc("2024-12-10T17:36:52.100Z"), None),
        6: (utc("2024-12-10T17:36:52.000Z"), utc("2024-12-10T17:36:52.100Z"), None),
        4: (utc("2024-12-10T17:36:58.100Z"),) * 3,  # min == max: likely = min
        8: (utc("2024-12-10T17:36:25.200Z"),) * 3,
        1: (utc("2024-12-10T17:36:25.200Z"),) * 3,
        5: (utc("2024-12-10T17:36:25.200Z"),) * 3,
    }
    assert [g.sg for g in report.groups] == [2, 4, 6, 8, 1, 5]
    for sg, (low, high, likely) in expected.items():
        reading = group(report, sg)
        assert absolute(report, reading.min_ms) == low, sg
        assert absolute(report, reading.max_ms) == high, sg
        assert absolute(report, reading.likely_ms) == likely, sg
        assert reading.confidence is None, sg
    # relative to ts_ms: 17:36:52.000 - 17:34:40.359 = 131.641 s
    assert group(report, 2).min_ms == 131_641


def test_real_record_states(sample_bytes: bytes) -> None:
    """In the real record signal groups 2 and 6 are green and 4, 8, 1, 5 are red."""
    report = one_report(sample_bytes)
    states = {g.sg: g.state for g in report.groups}
    assert states == {
        2: SignalState.GREEN,
        6: SignalState.GREEN,
        4: SignalState.RED,
        8: SignalState.RED,
        1: SignalState.RED,
        5: SignalState.RED,
    }


def test_real_record_without_registry_is_named_by_j2735_id(sample_bytes: bytes) -> None:
    """Without a registry the intersection is named J2735-<id>."""
    (report,) = parse_ode(sample_bytes, RECEIVED, None)
    assert isinstance(report, SpatReport)
    assert report.intersection_id == "J2735-12111"


def test_real_record_unknown_intersection(sample_bytes: bytes) -> None:
    """A J2735 id the registry does not map is rejected, naming the id and its field."""
    unmapped = Registry(
        [Intersection("YT002", "x", "x", "x", 37.5, 121.4, YT001.groups, frozenset())]
    )
    (rejection,) = parse_ode(sample_bytes, RECEIVED, unmapped)
    assert isinstance(rejection, Rejection)
    assert rejection.reason == "unknown_intersection"
    assert "intersectionStatelist[0].id.id" in rejection.message
    assert "12111" in rejection.message


def test_real_record_with_moy_uses_moy(sample_bytes: bytes) -> None:
    """With moy present, moy + timeStamp is the reference and the absolute times do not change."""
    doc = json.loads(sample_bytes)
    # 2024-12-10 is day 345 of a leap year: 344 * 1440 + 17 * 60 + 34 = 496414 minutes;
    # with timeStamp 35176 ms the reference is 2024-12-10T17:34:35.176Z.
    doc["payload"]["data"]["intersectionStateList"]["intersectionStatelist"][0]["moy"] = 496414
    report = one_report(json.dumps(doc).encode())
    assert report.ts_ms == utc("2024-12-10T17:34:35.176Z")
    assert absolute(report, group(report, 2).min_ms) == utc("2024-12-10T17:36:52.000Z")
    assert group(report, 2).min_ms == 136_824  # 17:36:52.000 - 17:34:35.176


def test_real_record_through_the_core(sample_bytes: bytes) -> None:
    """The core's own maths turns the report into the decoded end times plus the clock offset."""
    report = one_report(sample_bytes)
    city = City(REGISTRY)
    # Received by the gateway 40 ms after odeReceivedAt: the offset estimate is 40 ms.
    outcome = city.on_spat(report, RECEIVED + 40)
    assert outcome.accepted, outcome
    view = city.view("YT001")
    by_sg = {g.sg: g for g in view.groups}
    assert by_sg[4].end_ms == utc("2024-12-10T17:36:58.100Z") + 40
    assert by_sg[2].min_end_ms == utc("2024-12-10T17:36:52.000Z") + 40
    assert by_sg[2].max_end_ms == utc("2024-12-10T17:36:52.100Z") + 40
    assert by_sg[3].state is None  # not in the message: unknown


def test_bare_data_object_uses_receive_time(sample_bytes: bytes) -> None:
    """The bare payload.data object is accepted and read against the receive time."""
    data = json.loads(sample_bytes)["payload"]["data"]
    receive = utc("2024-12-10T17:34:41.000Z")
    report = one_report(json.dumps(data).encode(), receive_ms=receive)
    assert report.ts_ms == receive
    assert absolute(report, group(report, 8).min_ms) == utc("2024-12-10T17:36:25.200Z")


def test_list_of_records(sample_bytes: bytes) -> None:
    """A JSON list of records gives one result per intersection state, in order."""
    doc = json.loads(sample_bytes)
    results = parse_ode(json.dumps([doc, doc["payload"]["data"]]).encode(), RECEIVED, REGISTRY)
    assert [type(r) for r in results] == [SpatReport, SpatReport]


# --------------------------------------------------------------------------- TimeMark


def test_timemark_in_the_current_hour() -> None:
    """A TimeMark near the reference lands in the reference's hour."""
    # 17:34:40.359 reference, 22120 -> 17:36:52.000
    assert decode_timemark(22120, RECEIVED) == HOUR + 2_212_000


def test_timemark_rollover_forward() -> None:
    """A value near 0 read at minute 59 belongs to the next hour."""
    reference = utc("2024-12-10T17:59:50.000Z")
    assert decode_timemark(50, reference) == utc("2024-12-10T18:00:05.000Z")


def test_timemark_rollover_backward() -> None:
    """A value near 36000 read at minute 0 belongs to the previous hour."""
    reference = utc("2024-12-10T18:00:05.000Z")
    assert decode_timemark(35950, reference) == utc("2024-12-10T17:59:55.000Z")


def test_timemark_rollover_in_a_message() -> None:
    """A message read at 17:59:58 whose end is at TimeMark 30 ends at 18:00:03 (next hour)."""
    payload = record(
        [state([movement(2, minEndTime=30, maxEndTime=30)])], received="2024-12-10T17:59:58.000Z"
    )
    report = one_report(payload)
    assert absolute(report, group(report, 2).min_ms) == utc("2024-12-10T18:00:03.000Z")
    assert group(report, 2).min_ms == 5_000


@pytest.mark.parametrize("value", [36001, 36111, 36000])
def test_timemark_unknown(value: int) -> None:
    """36001 (2016), 36111 (later) and 36000 (2016: indefinite, later: leap) are unknown."""
    assert decode_timemark(value, RECEIVED) is None


def test_timemark_unknown_in_a_message_gives_unknown_times() -> None:
    """Unknown min/max TimeMarks leave the group's times unknown but keep its state."""
    report = one_report(record([state([movement(2, minEndTime=36001, maxEndTime=36111)])]))
    reading = group(report, 2)
    assert reading.state is SignalState.GREEN
    assert (reading.min_ms, reading.max_ms, reading.likely_ms) == (None, None, None)


@pytest.mark.parametrize("value", [36002, 36005, 36009])
def test_timemark_leap_second_is_the_end_of_the_hour(value: int) -> None:
    """36002..36009 (a leap second) read as 3600.0 s, the end of the hour."""
    assert decode_timemark(value, utc("2024-12-10T17:59:59.500Z")) == utc(
        "2024-12-10T18:00:00.000Z"
    )
    # read just after the hour, it is still the end of the hour that just ended
    assert decode_timemark(value, utc("2024-12-10T18:00:00.200Z")) == utc(
        "2024-12-10T18:00:00.000Z"
    )


@pytest.mark.parametrize("value", [-1, 36010, 36050, 36110, 36112, 65535])
def test_timemark_invalid_raises(value: int) -> None:
    """decode_timemark refuses values outside 0..36009 and 36111."""
    with pytest.raises(ValueError, match=str(value)):
        decode_timemark(value, RECEIVED)


@pytest.mark.parametrize("value", [-1, 36010, 36112, 99999])
def test_timemark_invalid_in_a_message_is_rejected(value: int) -> None:
    """An invalid TimeMark in a message is a Rejection naming the field path and value."""
    rejection = one_rejection(record([state([movement(2, minEndTime=100, maxEndTime=value)])]))
    assert rejection.reason == "schema"
    assert "movementList[0].state_time_speed.movementEventList[0].timing.maxEndTime" in (
        rejection.message
    )
    assert str(value) in rejection.message
    assert rejection.intersection_id == "YT001"


@given(
    value=st.integers(0, 35999),
    reference=st.integers(utc("1971-01-01T00:00:00Z"), utc("2100-01-01T00:00:00Z")),
)
def test_timemark_is_within_half_an_hour_and_on_the_mark(value: int, reference: int) -> None:
    """Every decoded TimeMark is within 30 min of the reference and at its tenth in the hour."""
    decoded = decode_timemark(value, reference)
    assert decoded is not None
    assert abs(decoded - reference) <= HOUR_MS // 2
    assert decoded % HOUR_MS == value * 100


# --------------------------------------------------------------------------- moy / timeStamp


def test_moy_new_year_old_year() -> None:
    """moy of 31 Dec 23:59 read just after New Year is placed in the old (leap) year."""
    receive = utc("2025-01-01T00:00:10.000Z")
    # 2024 has 366 days = 527040 minutes; minute 527039 is 2024-12-31T23:59.
    ref = reference_time(527039, 59_000, receive)
    assert ref == (utc("2024-12-31T23:59:59.000Z"), "moy")
    payload = record(
        [state([movement(2, minEndTime=35995, maxEndTime=35995)], moy=527039, timeStamp=59000)],
        received="2025-01-01T00:00:10.000Z",
    )
    report = one_report(payload)
    assert report.ts_ms == utc("2024-12-31T23:59:59.000Z")
    # 35995 -> 3599.5 s after 2024-12-31T23:00:00
    assert absolute(report, group(report, 2).min_ms) == utc("2024-12-31T23:59:59.500Z")


def test_moy_new_year_new_year() -> None:
    """moy 0 read just before New Year is placed in the new year."""
    receive = utc("2024-12-31T23:59:58.000Z")
    assert reference_time(0, 1_000, receive) == (utc("2025-01-01T00:00:01.000Z"), "moy")


@pytest.mark.parametrize(
    ("moy", "stamp"), [(527040, 1000), (496414, 65535), (None, 1000), (496414, None)]
)
def test_moy_or_timestamp_unknown_uses_receive_time(moy: int | None, stamp: int | None) -> None:
    """moy 527040, timeStamp 65535 or either absent: the receive time is the reference."""
    assert reference_time(moy, stamp, RECEIVED, "odeReceivedAt") == (RECEIVED, "odeReceivedAt")


def test_timestamp_leap_second_is_the_end_of_the_minute() -> None:
    """timeStamp 60000..60999 (a leap second) reads as 60.000 s into the minute."""
    assert reference_time(496414, 60_500, RECEIVED).ms == utc("2024-12-10T17:35:00.000Z")


def test_spat_level_moy_is_used_when_the_intersection_has_none() -> None:
    """The SPAT's own timeStamp (a minute of the year) stands in for a missing intersection moy."""
    doc = json.loads(record([state([movement(2, minEndTime=22120, maxEndTime=22120)])]))
    doc["payload"]["data"]["timeStamp"] = 496414
    report = one_report(json.dumps(doc).encode())
    assert report.ts_ms == utc("2024-12-10T17:34:35.176Z")


def test_moy_beyond_the_year_is_rejected() -> None:
    """moy 527000 with no leap year around the receive time is a Rejection naming moy."""
    payload = record([state([movement(2)], moy=527000)], received="2026-06-01T00:00:00Z")
    rejection = one_rejection(payload)
    assert rejection.reason == "bad_time"
    assert "intersectionStatelist[0].moy" in rejection.message
    assert "527000" in rejection.message


@pytest.mark.parametrize(("field", "value"), [("moy", 527041), ("timeStamp", 61000), ("moy", -1)])
def test_moy_and_timestamp_out_of_range_are_rejected(field: str, value: int) -> None:
    """moy above 527040 or a reserved timeStamp is a Rejection naming the field and value."""
    rejection = one_rejection(record([state([movement(2)], **{field: value})]))
    assert f"intersectionStatelist[0].{field}" in rejection.message
    assert str(value) in rejection.message


# --------------------------------------------------------------------------- eventState

EVENT_CASES = [
    ("UNAVAILABLE", "unavailable", 0, None),
    ("DARK", "dark", 1, SignalState.DARK),
    ("STOP_THEN_PROCEED", "stop-Then-Proceed", 2, SignalState.FLASHING_RED),
    ("STOP_AND_REMAIN", "stop-And-Remain", 3, SignalState.RED),
    ("PRE_MOVEMENT", "pre-Movement", 4, SignalState.RED_YELLOW),
    ("PERMISSIVE_MOVEMENT_ALLOWED", "permissive-Movement-Allowed", 5, SignalState.GREEN),
    ("PROTECTED_MOVEMENT_ALLOWED", "protected-Movement-Allowed", 6, SignalState.GREEN),
    ("PERMISSIVE_CLEARANCE", "permissive-clearance", 7, SignalState.YELLOW),
    ("PROTECTED_CLEARANCE", "protected-clearance", 8, SignalState.YELLOW),
    ("CAUTION_CONFLICTING_TRAFFIC", "caution-Conflicting-Traffic", 9, SignalState.FLASHING_YELLOW),
]


@pytest.mark.parametrize(("ode", "asn1", "number", "expected"), EVENT_CASES)
def test_every_event_state(ode: str, asn1: str, number: int, expected: SignalState | None) -> None:
    """Each eventState maps to its state in ODE, ASN.1, lower-case and numeric spellings."""
    for spelling in (ode, asn1, asn1.lower(), number):
        report = one_report(
            record([state([movement(2, spelling), movement(4, "STOP_AND_REMAIN")])])
        )
        states = {g.sg: g.state for g in report.groups}
        if expected is None:
            assert states == {4: SignalState.RED}, spelling  # unavailable: left out = unknown
        else:
            assert states == {2: expected, 4: SignalState.RED}, spelling


def test_unavailable_group_is_unknown_in_the_view() -> None:
    """An unavailable group is shown with no state at all (unknown), never as dark."""
    report = one_report(record([state([movement(2, "UNAVAILABLE", minEndTime=22120)])]))
    city = City(REGISTRY)
    assert city.on_spat(report, RECEIVED).accepted
    view = {g.sg: g for g in city.view("YT001").groups}
    assert view[2].state is None
    assert view[2].end_ms is None


@pytest.mark.parametrize("value", ["GREEN", "protected", 10, -1, True, None, 6.0])
def test_unknown_event_state_is_rejected(value: object) -> None:
    """An eventState that is none of the ten is a Rejection naming the field and value."""
    rejection = one_rejection(record([state([movement(2, value)])]))
    assert rejection.reason == "schema"
    assert "movementEventList[0].eventState" in rejection.message
    assert repr(value) in rejection.message


def test_only_the_first_event_is_current() -> None:
    """The first movement event is the current state; later ones are future phases."""
    body = movement(2, "PERMISSIVE_CLEARANCE", minEndTime=22120, maxEndTime=22120)
    events = body["state_time_speed"]["movementEventList"]
    events.append({"eventState": "STOP_AND_REMAIN", "timing": {"minEndTime": 22500}})
    report = one_report(record([state([body])]))
    assert group(report, 2).state is SignalState.YELLOW


# --------------------------------------------------------------------------- status flags

FLAG_CASES = [
    ("manualControlIsEnabled", Mode.MANUAL),
    ("stopTimeIsActivated", Mode.MANUAL),
    ("failureFlash", Mode.FLASH),
    ("preemptIsActive", Mode.PREEMPT),
    ("signalPriorityIsActive", Mode.NORMAL),
    ("fixedTimeOperation", Mode.NORMAL),
    ("trafficDependentOperation", Mode.NORMAL),
    ("standbyOperation", Mode.NORMAL),
    ("failureMode", Mode.UNKNOWN),
    ("off", Mode.UNKNOWN),
    ("recentMAPmessageUpdate", Mode.NORMAL),
    ("recentChangeInMAPassignedLanesIDsUsed", Mode.NORMAL),
    ("noValidMAPisAvailableAtThisTime", Mode.NORMAL),
    ("noValidSPATisAvailableAtThisTime", Mode.UNKNOWN),
]


@pytest.mark.parametrize(("flag", "expected"), FLAG_CASES)
def test_every_status_flag_as_object(flag: str, expected: Mode) -> None:
    """Each status flag alone (ODE object of booleans) gives its documented mode."""
    status = dict.fromkeys(j2735.STATUS_FLAGS, False)
    status[flag] = True
    assert one_report(record([state([movement(2)], status=status)])).mode is expected


@pytest.mark.parametrize(("bit", "case"), list(enumerate(FLAG_CASES)))
def test_every_status_flag_as_bit_string(bit: int, case: tuple[str, Mode]) -> None:
    """Each status flag as a 16-bit string (bit 0 first) and as 4 hex digits gives its mode."""
    bits = "".join("1" if i == bit else "0" for i in range(16))
    hex_form = f"{int(bits, 2):04X}"
    for status in (bits, hex_form):
        assert one_report(record([state([movement(2)], status=status)])).mode is case[1], status


def test_no_flags_is_normal() -> None:
    """No flag set (all false, all-zero bits, or an empty object) is normal operation."""
    statuses: tuple[object, ...] = (
        dict.fromkeys(j2735.STATUS_FLAGS, False),
        {},
        "0000000000000000",
        "0000",
    )
    for status in statuses:
        assert one_report(record([state([movement(2)], status=status)])).mode is Mode.NORMAL


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        ({"failureFlash", "failureMode"}, Mode.FLASH),
        ({"failureFlash", "off"}, Mode.UNKNOWN),
        ({"failureFlash", "noValidSPATisAvailableAtThisTime"}, Mode.UNKNOWN),
        ({"preemptIsActive", "manualControlIsEnabled"}, Mode.PREEMPT),
        ({"failureMode", "preemptIsActive"}, Mode.UNKNOWN),
        ({"signalPriorityIsActive", "stopTimeIsActivated"}, Mode.MANUAL),
    ],
)
def test_status_flag_precedence(flags: set[str], expected: Mode) -> None:
    """When several flags are set the least trustworthy documented mode wins."""
    assert j2735.mode_from_flags(flags) is expected


def test_status_flag_names_are_case_insensitive() -> None:
    """Flag names are matched regardless of letter case; unknown keys are ignored."""
    status = {"FAILUREFLASH": True, "someVendorFlag": "x"}
    assert one_report(record([state([movement(2)], status=status)])).mode is Mode.FLASH


@pytest.mark.parametrize(
    "status", [{"failureFlash": 1}, "ZZZZ", "01", "000000000000000X", 7, ["failureFlash"]]
)
def test_bad_status_is_rejected(status: object) -> None:
    """A status that is not an object of booleans or a bit string is a Rejection naming it."""
    rejection = one_rejection(record([state([movement(2)], status=status)]))
    assert rejection.reason == "schema"
    assert "intersectionStatelist[0].status" in rejection.message


# --------------------------------------------------------------------------- timing rules


@pytest.mark.parametrize(("value", "percent"), list(enumerate(j2735.CONFIDENCE_PERCENT)))
def test_confidence_mapping(value: int, percent: int) -> None:
    """TimeIntervalConfidence 0..15 maps to the standard percentages."""
    table = [21, 36, 47, 56, 62, 68, 73, 77, 81, 85, 88, 91, 94, 96, 98, 100]
    assert percent == table[value]
    body = movement(2, minEndTime=22000, maxEndTime=22200, likelyTime=22100, confidence=value)
    assert group(one_report(record([state([body])])), 2).confidence == table[value]


@pytest.mark.parametrize("value", [16, -1, "high"])
def test_bad_confidence_is_rejected(value: object) -> None:
    """A confidence outside 0..15 is a Rejection naming timing.confidence."""
    body = movement(2, minEndTime=22000, maxEndTime=22200, likelyTime=22100)
    body["state_time_speed"]["movementEventList"][0]["timing"]["confidence"] = value
    rejection = one_rejection(record([state([body])]))
    assert "timing.confidence" in rejection.message


def test_likely_is_min_when_min_equals_max() -> None:
    """With no likelyTime and min == max, the likely end is that end."""
    reading = group(
        one_report(record([state([movement(2, minEndTime=22120, maxEndTime=22120)])])), 2
    )
    assert reading.likely_ms == reading.min_ms == reading.max_ms == 131_641


def test_only_min_known() -> None:
    """With only minEndTime known, likely and max stay unknown."""
    reading = group(one_report(record([state([movement(2, minEndTime=22120)])])), 2)
    assert (reading.min_ms, reading.max_ms, reading.likely_ms) == (131_641, None, None)


def test_lone_likely_time_is_dropped() -> None:
    """A likelyTime without min and max is dropped (the core would read it as an exact end)."""
    body = movement(2, minEndTime=36001, likelyTime=22120, confidence=15)
    reading = group(one_report(record([state([body])])), 2)
    assert (reading.min_ms, reading.max_ms, reading.likely_ms, reading.confidence) == (
        None,
        None,
        None,
        None,
    )


def test_likely_outside_min_max_is_rejected() -> None:
    """A likelyTime outside [minEndTime, maxEndTime] is a Rejection naming likelyTime."""
    body = movement(2, minEndTime=22120, maxEndTime=22200, likelyTime=22300)
    rejection = one_rejection(record([state([body])]))
    assert rejection.reason == "inconsistent_timing"
    assert "timing.likelyTime: 22300" in rejection.message


def test_min_after_max_is_rejected() -> None:
    """A minEndTime after maxEndTime is a Rejection naming both."""
    rejection = one_rejection(record([state([movement(2, minEndTime=22200, maxEndTime=22120)])]))
    assert rejection.reason == "inconsistent_timing"
    assert "minEndTime 22200" in rejection.message
    assert "maxEndTime 22120" in rejection.message


def test_seq_follows_the_reference_time() -> None:
    """seq is the reference time in 100 ms steps, so 10 Hz messages count up by one."""
    first = one_report(record([state([movement(2)])], received="2024-12-10T17:34:40.300Z"))
    second = one_report(record([state([movement(2)])], received="2024-12-10T17:34:40.400Z"))
    assert second.seq == first.seq + 1


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("payload", "reason", "names"),
    [
        (b"", "not_json", "payload"),
        (b"{not json", "not_json", "payload"),
        (b"\xff\xfe", "not_utf8", "payload"),
        (b'{"payload": {"data": NaN}}', "not_json", "NaN"),
        (b"[1, 2]", "schema", "[0]"),
        (b'"spat"', "schema", "payload"),
        (b'{"payload": {"data": {}}}', "schema", "payload.data.intersectionStateList"),
        (b'{"payload": 5}', "schema", "payload"),
        (b"[]", "schema", "empty list"),
    ],
)
def test_bad_messages_are_rejected(payload: bytes, reason: str, names: str) -> None:
    """A payload that is not an ODE SPaT message is a Rejection naming where and why."""
    results = parse_ode(payload, RECEIVED, REGISTRY)
    assert results, payload
    first = results[0]
    assert isinstance(first, Rejection)
    assert first.reason == reason
    assert names in first.message


def test_too_large_is_rejected() -> None:
    """A payload above max_bytes is refused before it is parsed."""
    (rejection,) = parse_ode(b"{}" * 100, RECEIVED, REGISTRY, max_bytes=100)
    assert isinstance(rejection, Rejection)
    assert rejection.reason == "too_large"


@pytest.mark.parametrize(
    ("mutate", "names"),
    [
        (lambda s: s.pop("status"), "intersectionStatelist[0].status: missing"),
        (lambda s: s["id"].update(id="12111"), "intersectionStatelist[0].id.id: '12111'"),
        (lambda s: s["id"].update(id=70000), "intersectionStatelist[0].id.id: 70000"),
        (
            lambda s: s["states"]["movementList"][0].update(signalGroup=300),
            "movementList[0].signalGroup: 300",
        ),
        (
            lambda s: s["states"]["movementList"][0]["state_time_speed"].update(
                movementEventList=[]
            ),
            "movementList[0].state_time_speed.movementEventList: a list",
        ),
        (
            lambda s: s["states"]["movementList"].append(movement(2)),
            "movementList[1].signalGroup: 2 is listed twice",
        ),
    ],
)
def test_bad_fields_are_rejected(mutate: Any, names: str) -> None:
    """Each bad field of an intersection state gives a Rejection naming its path and value."""
    body = state([movement(2, minEndTime=22120, maxEndTime=22120)])
    mutate(body)
    rejection = one_rejection(record([body]))
    assert names in rejection.message, rejection.message


@pytest.mark.parametrize(
    "received",
    ["yesterday", "2024-12-10T17:34:40.359", "2024-13-10T17:34:40Z", "1960-01-01T00:00Z"],
)
def test_bad_ode_received_at_is_rejected(received: str) -> None:
    """An odeReceivedAt that is not an ISO-8601 UTC time in range is a Rejection naming it."""
    rejection = one_rejection(record([state([movement(2)])], received=received))
    assert rejection.reason == "bad_time"
    assert "metadata.odeReceivedAt" in rejection.message


def test_ode_received_at_with_zone_id() -> None:
    """Older ODE's "...Z[UTC]" spelling of odeReceivedAt is accepted."""
    report = one_report(record([state([movement(2)])], received="2024-12-10T17:34:40.359Z[UTC]"))
    assert report.ts_ms == RECEIVED


def test_one_bad_intersection_does_not_reject_the_others() -> None:
    """Each intersection state is judged alone: a bad one does not hide a good one."""
    good = state([movement(2, minEndTime=22120, maxEndTime=22120)])
    bad = state([movement(2, "NOT_A_STATE")], ident=999)
    results = parse_ode(record([bad, good]), RECEIVED, REGISTRY)
    assert isinstance(results[0], Rejection)
    assert "intersectionStatelist[0]" in results[0].message
    assert isinstance(results[1], SpatReport)


# --------------------------------------------------------------------------- fuzzing

JSON_LEAVES = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
JSON_VALUES = st.recursive(
    JSON_LEAVES,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=20,
)
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _check(results: list[SpatReport | Rejection]) -> None:
    assert results
    assert all(isinstance(r, SpatReport | Rejection) for r in results)


@FUZZ
@given(payload=st.binary(max_size=300), receive=st.integers(-(2**62), 2**62))
def test_fuzz_bytes_never_raise(payload: bytes, receive: int) -> None:
    """parse_ode never raises on arbitrary bytes and receive times."""
    _check(parse_ode(payload, receive, REGISTRY))


@FUZZ
@given(value=JSON_VALUES)
def test_fuzz_json_never_raises(value: object) -> None:
    """parse_ode never raises on arbitrary JSON documents."""
    _check(parse_ode(json.dumps(value).encode(), RECEIVED, REGISTRY))


def _paths(node: object, path: tuple[str | int, ...] = ()) -> Iterator[tuple[str | int, ...]]:
    yield path
    if isinstance(node, dict):
        for key, child in node.items():
            yield from _paths(child, (*path, key))
    elif isinstance(node, list):
        for index, child in enumerate(node):
            yield from _paths(child, (*path, index))


def _replace(node: Any, path: tuple[str | int, ...], value: object) -> Any:
    if not path:
        return value
    node[path[0]] = _replace(node[path[0]], path[1:], value)
    return node


BASE = json.loads(
    record(
        [
            state(
                [movement(2, minEndTime=22120, maxEndTime=22121, likelyTime=22120, confidence=3)],
                moy=496414,
            )
        ]
    )
)
BASE_PATHS = list(_paths(BASE))


@FUZZ
@given(
    edits=st.lists(st.tuples(st.sampled_from(BASE_PATHS), JSON_VALUES), min_size=1, max_size=3),
    receive=st.integers(-(2**62), 2**62),
)
def test_fuzz_mutated_records_never_raise(
    edits: list[tuple[tuple[str | int, ...], object]], receive: int
) -> None:
    """parse_ode never raises on an ODE record with any fields replaced by any JSON."""
    doc = json.loads(json.dumps(BASE))
    for path, value in edits:
        try:
            doc = _replace(doc, path, value)
        except (KeyError, IndexError, TypeError):
            continue  # an earlier edit removed this path
    _check(parse_ode(json.dumps(doc).encode(), receive, REGISTRY))
    _check(parse_ode(json.dumps(doc).encode(), receive, None))


# --------------------------------------------------------------------------- spat_for_view


def _view(**changes: Any) -> IntersectionView:
    base: dict[str, Any] = {
        "id": "YT001",
        "mode": Mode.NORMAL,
        "online": True,
        "stale": False,
        "updated_ms": RECEIVED,
        "groups": (
            GroupView(2, SignalState.GREEN, None, HOUR + 2_212_000, HOUR + 2_212_100, None, None),
            GroupView(
                4,
                SignalState.RED,
                HOUR + 2_218_100,
                HOUR + 2_218_100,
                HOUR + 2_218_100,
                HOUR + 2_218_100,
                94,
            ),
            GroupView(3, None, None, None, None, None, None),
        ),
    }
    base.update(changes)
    return IntersectionView(**base)


def test_spat_for_view_shape() -> None:
    """spat_for_view gives J2735 names, ISO-8601 UTC times and nulls for unknowns."""
    body = spat_for_view(_view(), YT001, RECEIVED)
    assert body["intersectionId"] == 12111
    assert body["id"] == "YT001"
    assert body["timeStamp"] == "2024-12-10T17:34:40.359Z"
    status = body["status"]
    assert isinstance(status, dict)
    assert set(status) == set(j2735.STATUS_FLAGS)
    assert not any(status.values())
    assert body["states"] == [
        {
            "signalGroup": 2,
            "eventState": "permissive-Movement-Allowed",
            "state": "green",
            "timing": {
                "minEndTime": "2024-12-10T17:36:52.000Z",
                "maxEndTime": "2024-12-10T17:36:52.100Z",
                "likelyTime": None,
                "confidence": None,
            },
        },
        {
            "signalGroup": 4,
            "eventState": "stop-And-Remain",
            "state": "red",
            "timing": {
                "minEndTime": "2024-12-10T17:36:58.100Z",
                "maxEndTime": "2024-12-10T17:36:58.100Z",
                "likelyTime": "2024-12-10T17:36:58.100Z",
                "confidence": 94,
            },
        },
        {
            "signalGroup": 3,
            "eventState": "unavailable",
            "state": None,
            "timing": {
                "minEndTime": None,
                "maxEndTime": None,
                "likelyTime": None,
                "confidence": None,
            },
        },
    ]
    json.dumps(body)  # JSON-serialisable as is


@pytest.mark.parametrize(
    ("mode", "flag"),
    [
        (Mode.FLASH, "failureFlash"),
        (Mode.MANUAL, "manualControlIsEnabled"),
        (Mode.PREEMPT, "preemptIsActive"),
        (Mode.FAULT, "failureMode"),
        (Mode.DARK, "off"),
        (Mode.UNKNOWN, "noValidSPATisAvailableAtThisTime"),
    ],
)
def test_spat_for_view_mode_flags(mode: Mode, flag: str) -> None:
    """Each non-normal mode sets exactly its status flag."""
    status = spat_for_view(_view(mode=mode), YT001, RECEIVED)["status"]
    assert isinstance(status, dict)
    assert [name for name, on in status.items() if on] == [flag]


@pytest.mark.parametrize("changes", [{"online": False}, {"stale": True}])
def test_spat_for_view_offline_or_stale_says_no_valid_spat(changes: dict[str, bool]) -> None:
    """An offline or stale intersection says noValidSPATisAvailableAtThisTime."""
    status = spat_for_view(_view(**changes), None, RECEIVED)["status"]
    assert isinstance(status, dict)
    assert status["noValidSPATisAvailableAtThisTime"] is True


def test_spat_for_view_every_state_has_a_j2735_name() -> None:
    """Every one of our states has an eventState, and reading it back gives the same state."""
    for signal in SignalState:
        name = j2735.SIGNAL_TO_EVENT_STATE[signal]
        back = j2735.EVENT_STATE_TO_SIGNAL[j2735.parse_event_state(name.value)]
        expected = SignalState.GREEN if signal is SignalState.FLASHING_GREEN else signal
        assert back is expected


# --------------------------------------------------------------------------- convert


@pytest.mark.usefixtures("sample_bytes")
def test_convert_real_record_table() -> None:
    """convert prints each movement's state and ends in Unix ms and ISO-8601, and the reference."""
    out = io.StringIO()
    assert convert_command(str(SAMPLE), out) == 0
    text = out.getvalue()
    assert "J2735 intersection 12111 -> J2735-12111" in text
    assert "odeReceivedAt 2024-12-10T17:34:40.359Z = 1733852080359 ms" in text
    assert "1733852212000 2024-12-10T17:36:52.000Z" in text
    assert "1733852218100 2024-12-10T17:36:58.100Z" in text
    assert "1733852185200 2024-12-10T17:36:25.200Z" in text
    assert "1 intersection state(s) converted, 0 rejected" in text


def test_convert_json_with_registry(sample_bytes: bytes, tmp_path: Path) -> None:
    """convert --json with a registry names YT001 and gives absolute times per movement."""
    registry = tmp_path / "intersections.yaml"
    groups = "\n".join(
        f"      - {{sg: {g.sg}, approach: {g.approach.value}, movement: {g.movement.value}}}"
        for g in YT001.groups
    )
    registry.write_text(
        "intersections:\n"
        "  - id: YT001\n    name_zh: 南大街与胜利路交叉口\n    name_en: Nan Dajie\n"
        "    district: 芝罘区\n    lat: 37.53675\n    lon: 121.392\n    j2735_id: 12111\n"
        f"    groups:\n{groups}\n",
        encoding="utf-8",
    )
    file = tmp_path / "one.json"
    file.write_bytes(sample_bytes)
    out = io.StringIO()
    assert convert_command(str(file), out, json_output=True, registry_path=str(registry)) == 0
    body = json.loads(out.getvalue())
    (item,) = body["intersections"]
    assert item["intersection_id"] == "YT001"
    assert item["reference"] == {
        "source": "odeReceivedAt",
        "ms": RECEIVED,
        "iso": "2024-12-10T17:34:40.359Z",
    }
    first = item["movements"][0]
    assert first["sg"] == 2
    assert first["state"] == "green"
    assert first["min_end_ms"] == utc("2024-12-10T17:36:52.000Z")
    assert first["min_end"] == "2024-12-10T17:36:52.000Z"
    assert first["likely_end"] is None


def test_convert_ndjson_with_a_bad_line(sample_bytes: bytes, tmp_path: Path) -> None:
    """NDJSON converts line by line; a bad line is reported by number and the exit code is 1."""
    line = json.dumps(json.loads(sample_bytes))
    file = tmp_path / "feed.ndjson"
    file.write_text(f"{line}\n{{oops\n\n{line}\n", encoding="utf-8")
    out = io.StringIO()
    assert convert_command(str(file), out) == 1
    text = out.getvalue()
    assert "line 2: J2735 intersection ?\n  REJECTED [not_json]" in text
    assert text.count("-> J2735-12111") == 2
    assert "2 intersection state(s) converted, 1 rejected" in text


def test_convert_json_array_and_unavailable(tmp_path: Path) -> None:
    """A JSON array converts record by record; an unavailable movement shows as unknown."""
    doc = json.loads(record([state([movement(3, "UNAVAILABLE"), movement(2, minEndTime=22120)])]))
    file = tmp_path / "array.json"
    file.write_text(json.dumps([doc, doc], indent=2), encoding="utf-8")
    out = io.StringIO()
    assert convert_command(str(file), out) == 0
    text = out.getvalue()
    assert "record 2: J2735 intersection 12111" in text
    assert "unavailable                 unknown (left out)" in text


def test_convert_without_any_time_reference_uses_now(tmp_path: Path) -> None:
    """A bare data object is read against the time of the run, and convert says so."""
    data = json.loads(record([state([movement(2, minEndTime=100)])]))["payload"]["data"]
    file = tmp_path / "bare.json"
    file.write_text(json.dumps(data), encoding="utf-8")
    out = io.StringIO()
    assert convert_command(str(file), out, now_ms=utc("2030-05-05T05:59:00.000Z")) == 0
    assert "receive time 2030-05-05T05:59:00.000Z" in out.getvalue()
    assert "2030-05-05T06:00:10.000Z" in out.getvalue()  # TimeMark 100 rolls into the next hour


def test_convert_missing_file(tmp_path: Path) -> None:
    """A file that cannot be read gives exit code 2."""
    assert convert_command(str(tmp_path / "absent.json"), io.StringIO()) == 2
