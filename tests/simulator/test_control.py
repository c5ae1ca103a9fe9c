"""Pure tests of the control channel's vocabulary: commands, errors, acknowledgements."""

from __future__ import annotations

import json

import pytest

from simulator.control import (
    CONTROL_TOPIC,
    MODES,
    OPS,
    Command,
    CommandError,
    ack_error,
    ack_ok,
    ack_topic,
    check_control_topic,
    command_from_words,
    encode_ack,
    encode_command,
    parse_command,
)
from simulator.faults import MALFORMED_KINDS

VALID: list[tuple[dict[str, object], Command]] = [
    ({"op": "drop", "id": "YT001"}, Command("drop", "YT001")),
    ({"op": "resume", "id": "YT001"}, Command("resume", "YT001")),
    ({"op": "silence", "id": "YT002"}, Command("silence", "YT002")),
    ({"op": "speak", "id": "YT002"}, Command("speak", "YT002")),
    ({"op": "mode", "id": "YT003", "mode": "flash"}, Command("mode", "YT003", mode="flash")),
    ({"op": "skew", "id": "YT004", "ms": -5000}, Command("skew", "YT004", ms=-5000)),
    ({"op": "duplicate", "id": "YT005"}, Command("duplicate", "YT005", count=1)),
    ({"op": "duplicate", "id": "YT005", "count": 3}, Command("duplicate", "YT005", count=3)),
    ({"op": "reorder", "id": "YT006"}, Command("reorder", "YT006")),
    ({"op": "conflict", "id": "YT007"}, Command("conflict", "YT007", on=True)),
    ({"op": "conflict", "id": "YT007", "on": False}, Command("conflict", "YT007", on=False)),
    ({"op": "restart", "id": "YT008"}, Command("restart", "YT008")),
    ({"op": "heal", "id": "YT009"}, Command("heal", "YT009")),
    ({"op": "malformed", "id": "YT010", "kind": "nan"}, Command("malformed", "YT010", kind="nan")),
    ({"op": "drop", "id": "YT001", "ref": "r-1"}, Command("drop", "YT001", ref="r-1")),
]


def payload(data: object) -> bytes:
    return json.dumps(data).encode()


@pytest.mark.parametrize(("data", "expected"), VALID)
def test_valid_commands_parse(data: dict[str, object], expected: Command) -> None:
    """Each operation's JSON becomes the Command it names, defaults filled in."""
    assert parse_command(payload(data)) == expected


def test_every_operation_is_covered() -> None:
    """The table above exercises every operation there is."""
    assert {command.op for _data, command in VALID} == set(OPS)


@pytest.mark.parametrize("mode", MODES)
def test_every_mode_parses(mode: str) -> None:
    """All six modes are accepted."""
    assert parse_command(payload({"op": "mode", "id": "YT001", "mode": mode})) == Command(
        "mode", "YT001", mode=mode
    )


@pytest.mark.parametrize("kind", list(MALFORMED_KINDS))
def test_every_malformed_kind_parses(kind: str) -> None:
    """Every kind faults.malformed() knows is accepted."""
    parsed = parse_command(payload({"op": "malformed", "id": "YT001", "kind": kind}))
    assert parsed == Command("malformed", "YT001", kind=kind)


@pytest.mark.parametrize(("data", "expected"), VALID)
def test_encode_then_parse_is_the_same_command(data: dict[str, object], expected: Command) -> None:
    """encode_command() writes what parse_command() reads back, arguments only where taken."""
    encoded = encode_command(expected)
    assert parse_command(encoded) == expected
    assert set(json.loads(encoded)) <= {"op", "id", "ref", "mode", "ms", "count", "on", "kind"}
    assert parse_command(encode_command(data)) == expected


BAD: list[tuple[bytes, str, tuple[str, ...]]] = [
    (b'{"op":"drop","id":', "payload", ("not JSON",)),
    (b"\xff\xfe", "payload", ("not UTF-8",)),
    (b"", "payload", ("not JSON",)),
    (payload(["drop", "YT001"]), "payload", ("an array", "not a JSON object")),
    (payload("drop YT001"), "payload", ("a string", "not a JSON object")),
    (b" " * 5000, "payload", ("5000 bytes", "at most 4096")),
    (payload({"id": "YT001"}), "op", ("missing", "drop")),
    (payload({"op": "explode", "id": "YT001"}), "op", ('"explode"', "not an operation")),
    (payload({"op": 3, "id": "YT001"}), "op", ("3", "an integer")),
    (payload({"op": "drop"}), "id", ("missing",)),
    (payload({"op": "drop", "id": ""}), "id", ('""', "not an intersection id")),
    (payload({"op": "drop", "id": " YT001"}), "id", ('" YT001"', "surrounding spaces")),
    (payload({"op": "drop", "id": 1}), "id", ("1", "not an intersection id")),
    (payload({"op": "drop", "id": "YT001", "mode": "flash"}), "mode", ("not an argument of drop",)),
    (payload({"op": "mode", "id": "YT001", "mdoe": "flash"}), "mdoe", ("not an argument of mode",)),
    (payload({"op": "mode", "id": "YT001"}), "mode", ("missing", "mode needs it")),
    (payload({"op": "mode", "id": "YT001", "mode": "blink"}), "mode", ('"blink"', "flash")),
    (payload({"op": "mode", "id": "YT001", "mode": "unknown"}), "mode", ('"unknown"',)),
    (payload({"op": "mode", "id": "YT001", "mode": 1}), "mode", ("1", "not one of")),
    (payload({"op": "skew", "id": "YT001"}), "ms", ("missing", "skew needs it")),
    (payload({"op": "skew", "id": "YT001", "ms": "5000"}), "ms", ('"5000"', "a string")),
    (payload({"op": "skew", "id": "YT001", "ms": 1.5}), "ms", ("1.5", "not an integer")),
    (payload({"op": "skew", "id": "YT001", "ms": True}), "ms", ("true", "a boolean")),
    (payload({"op": "skew", "id": "YT001", "ms": 10**9}), "ms", ("1000000000", "out of range")),
    (payload({"op": "duplicate", "id": "YT001", "count": 0}), "count", ("0", "out of range")),
    (payload({"op": "duplicate", "id": "YT001", "count": -2}), "count", ("-2", "out of range")),
    (payload({"op": "duplicate", "id": "YT001", "count": "3"}), "count", ('"3"', "a string")),
    (payload({"op": "conflict", "id": "YT001", "on": "yes"}), "on", ('"yes"', "not true or false")),
    (payload({"op": "conflict", "id": "YT001", "on": 1}), "on", ("1", "an integer")),
    (payload({"op": "malformed", "id": "YT001"}), "kind", ("missing", "malformed needs it")),
    (payload({"op": "malformed", "id": "YT001", "kind": "bad"}), "kind", ('"bad"', "nan")),
    (payload({"op": "drop", "id": "YT001", "ref": 7}), "ref", ("7", "not a string")),
    (payload({"op": "drop", "id": "YT001", "ref": ""}), "ref", ('""', "not a string")),
]


@pytest.mark.parametrize(("raw", "field", "words"), BAD)
def test_bad_commands_name_the_field_the_value_and_why(
    raw: bytes, field: str, words: tuple[str, ...]
) -> None:
    """A bad payload is a CommandError naming the field; the message quotes value and reason."""
    error = parse_command(raw)
    assert isinstance(error, CommandError), error
    assert error.field == field
    assert str(error).startswith(f"{field}:"), error
    for word in words:
        assert word in str(error), (word, str(error))


def test_an_error_echoes_ref_op_and_id() -> None:
    """A refused command keeps its ref, op and id, so its answer can be matched."""
    error = parse_command(payload({"op": "mode", "id": "YT001", "mode": "x", "ref": "abc"}))
    assert isinstance(error, CommandError)
    assert (error.ref, error.op, error.id) == ("abc", "mode", "YT001")
    assert ack_error(error) == {
        "ok": False,
        "error": str(error),
        "op": "mode",
        "id": "YT001",
        "ref": "abc",
    }


def test_acknowledgements() -> None:
    """ok and error answers carry op, id and ref; they encode as compact JSON."""
    command = Command("drop", "YT005", ref="r")
    assert ack_ok(command) == {"ok": True, "op": "drop", "id": "YT005", "ref": "r"}
    refused = ack_error("drop YT005: nope", command)
    assert refused == {
        "ok": False,
        "error": "drop YT005: nope",
        "op": "drop",
        "id": "YT005",
        "ref": "r",
    }
    assert json.loads(encode_ack(refused)) == refused
    assert b" " not in encode_ack(ack_ok(command))
    assert ack_topic(CONTROL_TOPIC) == "simulator/control/ack"


@pytest.mark.parametrize(
    ("words", "expected"),
    [
        (("drop", "YT005", None), Command("drop", "YT005")),
        (("mode", "YT005", "flash"), Command("mode", "YT005", mode="flash")),
        (("skew", "YT005", "-300000"), Command("skew", "YT005", ms=-300_000)),
        (("duplicate", "YT005", None), Command("duplicate", "YT005", count=1)),
        (("duplicate", "YT005", "4"), Command("duplicate", "YT005", count=4)),
        (("conflict", "YT005", "off"), Command("conflict", "YT005", on=False)),
        (("conflict", "YT005", "ON"), Command("conflict", "YT005", on=True)),
        (("malformed", "YT005", "huge"), Command("malformed", "YT005", kind="huge")),
    ],
)
def test_command_from_words(words: tuple[str, str, str | None], expected: Command) -> None:
    """Command-line words become the same commands as their JSON."""
    assert command_from_words(*words) == expected


@pytest.mark.parametrize(
    ("words", "field", "word"),
    [
        (("drop", "YT005", "now"), "value", "takes no value"),
        (("skew", "YT005", "5s"), "ms", "'5s' is not an integer"),
        (("duplicate", "YT005", "two"), "count", "not an integer"),
        (("conflict", "YT005", "maybe"), "on", "'maybe'"),
        (("mode", "YT005", None), "mode", "missing"),
        (("mode", "YT005", "blink"), "mode", '"blink"'),
        (("explode", "YT005", None), "op", "not an operation"),
    ],
)
def test_command_from_words_refuses_bad_words(
    words: tuple[str, str, str | None], field: str, word: str
) -> None:
    """A bad word is a CommandError naming the field."""
    error = command_from_words(*words)
    assert isinstance(error, CommandError)
    assert error.field == field
    assert word in str(error)


@pytest.mark.parametrize(
    ("topic", "prefix", "problem"),
    [
        ("simulator/control", "signals", None),
        ("lab/sim-7/control", "signals", None),
        ("signalsx/control", "signals", None),
        ("signals/control", "signals", "under the controllers' prefix"),
        ("signals", "signals", "under the controllers' prefix"),
        ("city/signals/control", "city/signals/", "under the controllers' prefix"),
        ("simulator/+", "signals", "no wildcards"),
        ("simulator/#", "signals", "no wildcards"),
        ("/simulator/control", "signals", "leading or trailing"),
    ],
)
def test_control_topic_stays_out_of_the_controllers_topics(
    topic: str, prefix: str, problem: str | None
) -> None:
    """A control topic under the prefix (or with wildcards) is refused, with the reason."""
    found = check_control_topic(topic, prefix)
    if problem is None:
        assert found is None
    else:
        assert found is not None
        assert problem in found
        assert repr(topic) in found
