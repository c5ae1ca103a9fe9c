"""The MQTT wire format: topics, the documented payloads, and every kind of refusal."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from signal_gateway.core.model import (
    GroupReading,
    Mode,
    Rejection,
    SignalState,
    SpatReport,
    StatusReport,
)
from signal_gateway.ingest.wire import (
    DEFAULT_MAX_PAYLOAD_BYTES,
    Topic,
    parse_spat,
    parse_status,
    parse_topic,
)
from signal_gateway.testing import G, spat_dict, spat_payload, status_payload

IID = "YT001"
TS = 1_764_190_000_123

DOCUMENTED = (
    b'{"v":1,"id":"YT001","seq":42,"ts_ms":1764190000123,"mode":"normal",'
    b'"groups":[{"sg":1,"state":"green","remaining_s":12.3,"min_remaining_s":12.3,'
    b'"max_remaining_s":30.0,"confidence":80}]}'
)


def spat_with(**changes: object) -> bytes:
    """A valid SPaT payload with top-level fields replaced (a value of ... removes the field)."""
    body = spat_dict(IID, 42, TS, [G(1, "green", 12.3)])
    for key, value in changes.items():
        if value is ...:
            del body[key]
        else:
            body[key] = value
    return json.dumps(body).encode()


def group_with(**changes: object) -> bytes:
    """A valid SPaT payload whose first group has fields replaced (... removes the field)."""
    group = G(1, "green", 12.3).as_dict()
    for key, value in changes.items():
        if value is ...:
            del group[key]
        else:
            group[key] = value
    return spat_with(groups=[group])


def refused(result: object, reason: str, *words: str) -> Rejection:
    """Assert a rejection for ``reason`` whose message holds every one of ``words``."""
    assert isinstance(result, Rejection), result
    assert result.reason == reason, result
    for word in words:
        assert word in result.message, result.message
    return result


# -- topics ---------------------------------------------------------------------------------


def test_parse_topic_spat_and_status() -> None:
    """signals/{id}/spat and signals/{id}/status parse to the id and kind."""
    assert parse_topic("signals/YT001/spat") == Topic("YT001", "spat")
    assert parse_topic("signals/YT235/status") == Topic("YT235", "status")


def test_parse_topic_with_a_configured_prefix() -> None:
    """A multi-level prefix is honoured and the default one is then refused."""
    assert parse_topic("yantai/v1/signals/YT001/spat", "yantai/v1/signals") == Topic(
        "YT001", "spat"
    )
    refused(parse_topic("signals/YT001/spat", "yantai/v1/signals"), "bad_topic", "signals/YT001")


@pytest.mark.parametrize(
    "topic",
    ["other/YT001/spat", "signals/YT001", "signals/YT001/spat/x", "signals//spat", "", "signals"],
)
def test_parse_topic_refuses_other_shapes(topic: str) -> None:
    """Topics that are not {prefix}/{id}/spat|status are bad_topic, naming the topic."""
    refused(parse_topic(topic), "bad_topic", repr(topic))


def test_parse_topic_refuses_unknown_kind() -> None:
    """A last level other than spat or status is named in the message."""
    refused(parse_topic("signals/YT001/map"), "bad_topic", "'map'")


# -- accepted payloads ----------------------------------------------------------------------


def test_documented_spat_payload_is_accepted() -> None:
    """The example of docs/protocol.md parses into a SpatReport in integer ms."""
    report = parse_spat(IID, DOCUMENTED)
    assert report == SpatReport(
        IID,
        42,
        TS,
        Mode.NORMAL,
        (GroupReading(1, SignalState.GREEN, 12_300, 12_300, 30_000, 80),),
    )


def test_optional_group_fields_may_be_omitted_and_remaining_may_be_null() -> None:
    """min/max/confidence are optional; remaining_s may be null (unknown)."""
    report = parse_spat(IID, spat_payload(IID, 1, TS, [G(1, "red", None), G(2, "green", 5)]))
    assert isinstance(report, SpatReport)
    assert report.groups == (
        GroupReading(1, SignalState.RED, None, None, None, None),
        GroupReading(2, SignalState.GREEN, 5000, None, None, None),
    )


@pytest.mark.parametrize("mode", ["normal", "flash", "dark", "manual", "preempt", "fault"])
def test_every_documented_mode_is_accepted(mode: str) -> None:
    """Each documented mode parses to the core's Mode."""
    report = parse_spat(IID, spat_payload(IID, 1, TS, [], mode=mode))
    assert isinstance(report, SpatReport)
    assert report.mode is Mode(mode)


@pytest.mark.parametrize("state", [s.value for s in SignalState])
def test_every_documented_state_is_accepted(state: str) -> None:
    """Each documented signal state parses."""
    report = parse_spat(IID, spat_payload(IID, 1, TS, [G(3, state, 1.0)]))
    assert isinstance(report, SpatReport)
    assert report.groups[0].state is SignalState(state)


def test_seconds_become_rounded_milliseconds() -> None:
    """Fractional seconds are rounded to the nearest ms (0.1 + 0.2 is 300 ms)."""
    report = parse_spat(IID, spat_payload(IID, 1, TS, [G(1, "green", 0.1 + 0.2)]))
    assert isinstance(report, SpatReport)
    assert report.groups[0].likely_ms == 300


def test_status_payloads_are_accepted() -> None:
    """An online status with ts_ms and the Last Will without it both parse."""
    assert parse_status(IID, status_payload(True, TS)) == StatusReport(IID, True, TS)
    assert parse_status(IID, status_payload(False)) == StatusReport(IID, False, None)
    assert parse_status(IID, b'{"v":1,"online":false}') == StatusReport(IID, False, None)


# -- refusals -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "reason", "words"),
    [
        (b"\xff\xfe{}", "not_utf8", ("byte 0", "UTF-8")),
        (b'{"v":1,"id":"YT\xc3', "not_utf8", ("byte 15",)),
        (b"", "not_json", ("empty",)),
        (b'{"v":1,', "not_json", ("not JSON",)),
        (b"hello", "not_json", ("not JSON",)),
        (spat_with(seq=float("nan")), "schema", ("NaN", "finite")),
        (group_with(remaining_s=float("inf")), "schema", ("Infinity", "finite")),
        (group_with(remaining_s=float("-inf")), "schema", ("-Infinity", "finite")),
        (DOCUMENTED.replace(b"12.3,", b"1e400,", 1), "schema", ("remaining_s", "inf")),
        (group_with(remaining_s=-1), "schema", ("groups.0.remaining_s", "-1", "greater")),
        (group_with(max_remaining_s=-0.5), "schema", ("groups.0.max_remaining_s", "-0.5")),
        (spat_with(ts_ms=-5), "schema", ("ts_ms", "-5")),
        (spat_with(seq=-1), "schema", ("seq", "-1")),
        (spat_with(seq="42"), "schema", ("seq", "'42'")),
        (spat_with(seq=42.0), "schema", ("seq", "42.0")),
        (spat_with(seq=True), "schema", ("seq", "True")),
        (spat_with(ts_ms="1764190000123"), "schema", ("ts_ms",)),
        (spat_with(ts_ms=2**60), "schema", ("ts_ms", str(2**60))),
        (group_with(remaining_s="12.3"), "schema", ("groups.0.remaining_s", "'12.3'")),
        (group_with(remaining_s=True), "schema", ("groups.0.remaining_s", "True")),
        (group_with(sg="1"), "schema", ("groups.0.sg", "'1'")),
        (group_with(sg=1.5), "schema", ("groups.0.sg", "1.5")),
        (group_with(sg=256), "schema", ("groups.0.sg", "256")),
        (group_with(confidence=101), "schema", ("groups.0.confidence", "101")),
        (group_with(confidence=80.0), "schema", ("groups.0.confidence", "80.0")),
        (group_with(state="purple"), "schema", ("groups.0.state", "'purple'")),
        (group_with(state=1), "schema", ("groups.0.state", "1")),
        (group_with(remaining_s=...), "schema", ("groups.0.remaining_s", "required")),
        (group_with(colour="red"), "schema", ("groups.0.colour", "'red'", "extra")),
        (spat_with(mode="storm"), "schema", ("mode", "'storm'")),
        (spat_with(mode="unknown"), "schema", ("mode", "'unknown'")),
        (spat_with(v=2), "schema", ("v", "2")),
        (spat_with(v=True), "schema", ("v", "True")),
        (spat_with(v=1.0), "schema", ("v", "1.0")),
        (spat_with(v="1"), "schema", ("v", "'1'")),
        (spat_with(v=...), "schema", ("v", "required")),
        (spat_with(groups={"sg": 1}), "schema", ("groups", "dict")),
        (spat_with(groups=[1]), "schema", ("groups.0", "1")),
        (spat_with(priority=3), "schema", ("priority", "3", "extra")),
        (spat_with(id=1), "schema", ("id", "1")),
        (spat_with(id="YT002"), "id_mismatch", ("id", "'YT002'", "'YT001'")),
        (b"[1,2]", "schema", ("payload", "list")),
        (b"42", "schema", ("payload", "42")),
        (b"null", "schema", ("payload", "None")),
        (group_with(remaining_s=1e308), "absurd_time", ("groups.0.remaining_s", "1e+308")),
    ],
)
def test_bad_spat_payloads_are_refused(payload: bytes, reason: str, words: tuple[str, ...]) -> None:
    """Each bad payload is refused with its reason and a message naming the field and value."""
    rejection = refused(parse_spat(IID, payload), reason, *words)
    assert rejection.intersection_id == IID


def test_too_large_payload_is_refused_before_anything_else() -> None:
    """A payload one byte over the limit is too_large, naming both sizes."""
    payload = b" " * (DEFAULT_MAX_PAYLOAD_BYTES + 1)
    refused(
        parse_spat(IID, payload), "too_large", f"{DEFAULT_MAX_PAYLOAD_BYTES + 1} bytes", "16384"
    )
    refused(parse_spat(IID, DOCUMENTED, max_bytes=100), "too_large", "exceeds 100")


def test_payload_at_the_limit_is_parsed() -> None:
    """A valid payload exactly at the limit is accepted."""
    payload = DOCUMENTED + b" " * (DEFAULT_MAX_PAYLOAD_BYTES - len(DOCUMENTED))
    assert len(payload) == DEFAULT_MAX_PAYLOAD_BYTES
    assert isinstance(parse_spat(IID, payload), SpatReport)


def test_ten_megabyte_payload_is_refused_as_too_large() -> None:
    """A 10 MB payload is refused by size, without being decoded."""
    payload = b"\xff" * (10 * 1024 * 1024)  # not UTF-8 either: size must be judged first
    refused(parse_spat(IID, payload), "too_large", str(10 * 1024 * 1024))
    refused(parse_status(IID, payload), "too_large")


def test_deeply_nested_json_is_refused_not_raised() -> None:
    """Valid JSON nested deeper than the recursion limit is not_json (the RecursionError path)."""
    depth = 8000
    payload = b"[" * depth + b"]" * depth
    assert len(payload) <= DEFAULT_MAX_PAYLOAD_BYTES
    rejection = refused(parse_spat(IID, payload), "not_json")
    assert "recursion" in rejection.message.lower()
    refused(parse_status(IID, payload), "not_json")


def test_nesting_below_the_limit_in_an_extra_field_is_a_schema_error() -> None:
    """Nested but parseable junk is refused by the schema, and the message stays short."""
    payload = spat_with(junk=json.loads("[" * 200 + "]" * 200))
    rejection = refused(parse_spat(IID, payload), "schema", "junk")
    assert len(rejection.message) < 200


@pytest.mark.parametrize(
    ("payload", "reason", "words"),
    [
        (b'{"v":1,"online":"yes"}', "schema", ("online", "'yes'")),
        (b'{"v":1,"online":1}', "schema", ("online", "1")),
        (b'{"v":1}', "schema", ("online", "required")),
        (b'{"v":1,"online":true,"ts_ms":-1}', "schema", ("ts_ms", "-1")),
        (b'{"v":1,"online":true,"ts_ms":1.5}', "schema", ("ts_ms", "1.5")),
        (b'{"v":1,"online":true,"why":"boot"}', "schema", ("why", "'boot'")),
        (b'{"v":true,"online":true}', "schema", ("v", "True")),
        (b'{"v":1,"online":true,"ts_ms":NaN}', "schema", ("NaN",)),
        (b"\xc0", "not_utf8", ("byte 0",)),
        (b"", "not_json", ("empty",)),
        (b"{", "not_json", ("not JSON",)),
    ],
)
def test_bad_status_payloads_are_refused(
    payload: bytes, reason: str, words: tuple[str, ...]
) -> None:
    """Bad status payloads are refused with reason and a message naming the field and value."""
    refused(parse_status(IID, payload), reason, *words)


def test_missing_field_message_names_the_field_only() -> None:
    """A missing field is named without dumping the enclosing object as its value."""
    rejection = refused(parse_spat(IID, spat_with(seq=...)), "schema")
    assert rejection.message == "seq: field required"


def test_schema_message_counts_further_errors() -> None:
    """With several schema errors the first is named and the rest counted."""
    rejection = refused(parse_spat(IID, spat_with(seq="a", ts_ms="b")), "schema", "seq")
    assert "(+1 more)" in rejection.message


# -- properties -----------------------------------------------------------------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5)
    ),
    max_leaves=30,
)
spat_keys = st.sampled_from(["v", "id", "seq", "ts_ms", "mode", "groups"])
group_keys = st.sampled_from(
    ["sg", "state", "remaining_s", "min_remaining_s", "max_remaining_s", "confidence"]
)


def never_raises(result: object) -> None:
    """The only two outcomes of parsing."""
    assert isinstance(result, SpatReport | StatusReport | Rejection)
    if isinstance(result, SpatReport):
        for group in result.groups:
            for value in (group.likely_ms, group.min_ms, group.max_ms):
                assert value is None or (value >= 0 and math.isfinite(value))


@settings(deadline=None)
@given(st.binary(max_size=300))
def test_parse_never_raises_for_arbitrary_bytes(payload: bytes) -> None:
    """parse_spat and parse_status return a result or a Rejection for any bytes."""
    never_raises(parse_spat(IID, payload))
    never_raises(parse_status(IID, payload))


@settings(deadline=None)
@given(json_values)
def test_parse_never_raises_for_arbitrary_json(value: object) -> None:
    """parse_spat and parse_status never raise for any JSON value."""
    payload = json.dumps(value).encode()
    never_raises(parse_spat(IID, payload))
    never_raises(parse_status(IID, payload))


@settings(deadline=None)
@given(st.dictionaries(spat_keys, json_values), st.dictionaries(group_keys, json_values))
def test_parse_never_raises_for_spat_shaped_json(
    top: dict[str, object], grp: dict[str, object]
) -> None:
    """Documented fields carrying arbitrary JSON values never make parse_spat raise."""
    body = spat_dict(IID, 1, TS, [G(1, "green", 5.0)])
    group = G(1, "green", 5.0).as_dict()
    group.update(grp)
    body["groups"] = [group]
    body.update(top)
    never_raises(parse_spat(IID, json.dumps(body).encode()))


@settings(deadline=None)
@given(st.floats(min_value=0, allow_nan=False, allow_infinity=False))
def test_any_finite_non_negative_seconds_never_raise(seconds: float) -> None:
    """Every finite non-negative remaining_s is parsed or refused, never raises."""
    never_raises(parse_spat(IID, group_with(remaining_s=seconds)))
