"""WebSocket client ops: subscribe by ids, bbox or all; time; every error with code and message."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from signal_gateway.fanout.hub import EVERYTHING, NOTHING, Subscription
from signal_gateway.fanout.ops import MAX_IDS, OpError, Subscribe, TimeRequest, parse_op
from signal_gateway.testing import small_registry

REGISTRY = small_registry()  # YT001 (121.40, 37.50), YT002 (121.42, 37.52), YT003 (121.60, 37.60)


def test_subscribe_ids() -> None:
    """subscribe ids gives a subscription of exactly those ids."""
    op = parse_op('{"op":"subscribe","ids":["YT001","YT003"]}', REGISTRY)
    assert op == Subscribe(Subscription(frozenset({"YT001", "YT003"})))


def test_subscribe_no_ids_follows_nothing() -> None:
    """An empty id list is a valid subscription to nothing."""
    assert parse_op('{"op":"subscribe","ids":[]}', REGISTRY) == Subscribe(NOTHING)


def test_subscribe_bbox_with_inclusive_edges() -> None:
    """bbox selects the intersections inside the box, edges included."""
    op = parse_op('{"op":"subscribe","bbox":[121.40,37.50,121.42,37.52]}', REGISTRY)
    assert op == Subscribe(Subscription(frozenset({"YT001", "YT002"})))
    op = parse_op('{"op":"subscribe","bbox":[121,37,122,38]}', REGISTRY)
    assert op == Subscribe(Subscription(frozenset({"YT001", "YT002", "YT003"})))
    op = parse_op('{"op":"subscribe","bbox":[0,0,1,1]}', REGISTRY)
    assert op == Subscribe(NOTHING)


def test_subscribe_all() -> None:
    """all: true follows the whole city."""
    op = parse_op('{"op":"subscribe","all":true}', REGISTRY)
    assert op == Subscribe(EVERYTHING)
    assert isinstance(op, Subscribe)
    assert op.subscription.everything


@pytest.mark.parametrize(
    ("text", "t0"),
    [('{"op":"time","t0":1764190000123.5}', 1764190000123.5), ('{"op":"time","t0":42}', 42.0)],
)
def test_time_echoes_t0(text: str, t0: float) -> None:
    """time carries the client's t0 as a float."""
    assert parse_op(text, REGISTRY) == TimeRequest(t0)


@pytest.mark.parametrize(
    ("text", "code", "words"),
    [
        ("{", "bad_json", ("message", "JSON")),
        ("", "bad_json", ("JSON",)),
        ('{"op":"time","t0":NaN}', "bad_json", ("JSON",)),
        ("[" * 100_000, "bad_json", ("JSON",)),
        ("[" * 5000 + "]" * 5000, "bad_json", ("JSON",)),
        ('["subscribe"]', "bad_op", ("message", "list")),
        ('"subscribe"', "bad_op", ("message", "str")),
        ("null", "bad_op", ("NoneType",)),
        ('{"op":"unsubscribe"}', "unknown_op", ("op", "'unsubscribe'")),
        ('{"ids":["YT001"]}', "unknown_op", ("op", "null")),
        ('{"op":7}', "unknown_op", ("op", "7")),
        ('{"op":"subscribe"}', "bad_op", ("subscribe", "exactly one")),
        ('{"op":"subscribe","ids":["YT001"],"all":true}', "bad_op", ("exactly one",)),
        ('{"op":"subscribe","bbox":[1,2,3,4],"all":true}', "bad_op", ("exactly one",)),
        ('{"op":"subscribe","ids":"YT001"}', "bad_field", ("ids", "list")),
        ('{"op":"subscribe","ids":["YT001","YT999"]}', "unknown_id", ("ids", "'YT999'")),
        ('{"op":"subscribe","ids":[1]}', "unknown_id", ("ids", "1")),
        ('{"op":"subscribe","all":false}', "bad_field", ("all", "false")),
        ('{"op":"subscribe","all":"true"}', "bad_field", ("all", "'true'")),
        ('{"op":"subscribe","all":1}', "bad_field", ("all", "1")),
        ('{"op":"subscribe","bbox":[1,2,3]}', "bad_field", ("bbox", "[1, 2, 3]")),
        ('{"op":"subscribe","bbox":"1,2,3,4"}', "bad_field", ("bbox", "1,2,3,4")),
        ('{"op":"subscribe","bbox":[1,2,3,"4"]}', "bad_field", ("bbox",)),
        ('{"op":"subscribe","bbox":[1,2,3,true]}', "bad_field", ("bbox", "true")),
        ('{"op":"subscribe","bbox":[1,2,3,null]}', "bad_field", ("bbox", "null")),
        ('{"op":"subscribe","bbox":[1,2,3,1e999]}', "bad_field", ("bbox",)),
        ('{"op":"subscribe","bbox":[1,2,3,' + "9" * 400 + "]}", "bad_field", ("bbox",)),
        ('{"op":"subscribe","bbox":[122,37,121,38]}', "bad_field", ("bbox", "west > east")),
        ('{"op":"subscribe","bbox":[121,38,122,37]}', "bad_field", ("bbox", "south > north")),
        ('{"op":"time"}', "bad_field", ("t0", "null")),
        ('{"op":"time","t0":"now"}', "bad_field", ("t0", "now")),
        ('{"op":"time","t0":true}', "bad_field", ("t0", "true")),
        ('{"op":"time","t0":1e999}', "bad_field", ("t0", "finite")),
        ('{"op":"time","t0":' + "9" * 400 + "}", "bad_field", ("t0", "finite")),
    ],
)
def test_bad_ops_get_a_code_and_a_message(text: str, code: str, words: tuple[str, ...]) -> None:
    """Each bad client message is an OpError whose message names the field and value."""
    result = parse_op(text, REGISTRY)
    assert isinstance(result, OpError), result
    assert result.code == code, result
    for word in words:
        assert word in result.message, result.message


def test_too_many_ids_is_bad_field() -> None:
    """More than MAX_IDS ids are refused."""
    text = json.dumps({"op": "subscribe", "ids": ["YT001"] * (MAX_IDS + 1)})
    result = parse_op(text, REGISTRY)
    assert isinstance(result, OpError)
    assert result.code == "bad_field"
    assert str(MAX_IDS) in result.message


def test_long_values_are_clipped_in_messages() -> None:
    """A long bad value is shown shortened, so error frames stay small."""
    result = parse_op(json.dumps({"op": "x" * 500}), REGISTRY)
    assert isinstance(result, OpError)
    assert len(result.message) < 100
    assert "…" in result.message


def test_error_frame_is_the_documented_json() -> None:
    """OpError.frame is {"type":"error","code":...,"message":...}."""
    frame = OpError("bad_json", "message: not valid JSON").frame()
    assert json.loads(frame) == {
        "type": "error",
        "code": "bad_json",
        "message": "message: not valid JSON",
    }


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
ops = st.sampled_from(["subscribe", "time", "other"])
keys = st.sampled_from(["ids", "bbox", "all", "t0"])


def is_result(result: object) -> None:
    """parse_op's only outcomes."""
    assert isinstance(result, Subscribe | TimeRequest | OpError)
    if isinstance(result, OpError):
        json.loads(result.frame())


@settings(deadline=None)
@given(st.text(max_size=200))
def test_parse_op_never_raises_for_any_text(text: str) -> None:
    """Any text gives an op or an OpError."""
    is_result(parse_op(text, REGISTRY))


@settings(deadline=None)
@given(json_values)
def test_parse_op_never_raises_for_any_json(value: object) -> None:
    """Any JSON value gives an op or an OpError."""
    is_result(parse_op(json.dumps(value), REGISTRY))


@settings(deadline=None)
@given(ops, st.dictionaries(keys, json_values | st.lists(st.integers() | st.floats(), max_size=5)))
def test_parse_op_never_raises_for_op_shaped_json(op: str, fields: dict[str, object]) -> None:
    """Documented ops with arbitrary field values never make parse_op raise."""
    is_result(parse_op(json.dumps({"op": op, **fields}), REGISTRY))
