"""The WebSocket client ops of ``/ws/v1``: parse and judge what a client sends. Pure.

Owns the client → server half of docs/protocol.md (subscribe by ids, bbox or all; time) and the
error replies. Returns typed ops or an ``OpError`` with a code and a message naming the field,
the value and the reason; it never raises on bad input.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import TypeGuard

from signal_gateway.core.registry import Registry
from signal_gateway.fanout.hub import EVERYTHING, Subscription

MAX_IDS = 1000


@dataclass(frozen=True, slots=True)
class Subscribe:
    """Replace the subscription."""

    subscription: Subscription


@dataclass(frozen=True, slots=True)
class TimeRequest:
    """NTP-style clock probe: echo ``t0`` with the server time."""

    t0: float


@dataclass(frozen=True, slots=True)
class OpError:
    """A client message the server refuses."""

    code: str
    message: str

    def frame(self) -> bytes:
        """The ``error`` frame sent back."""
        body = {"type": "error", "code": self.code, "message": self.message}
        return json.dumps(body, separators=(",", ":")).encode()


Op = Subscribe | TimeRequest


def parse_op(text: str, registry: Registry) -> Op | OpError:
    """Parse one client text frame."""
    try:
        data = json.loads(text, parse_constant=_no_constant)
    except (ValueError, RecursionError):
        return OpError("bad_json", "message: not valid JSON")
    if not isinstance(data, dict):
        return OpError("bad_op", f"message: expected a JSON object, got {type(data).__name__}")
    op = data.get("op")
    if op == "time":
        t0 = data.get("t0")
        if not _finite_number(t0):
            return OpError("bad_field", f"t0: {_show(t0)} is not a finite number")
        return TimeRequest(float(t0))
    if op == "subscribe":
        return _subscribe(data, registry)
    return OpError("unknown_op", f"op: {_show(op)} is not subscribe or time")


def _subscribe(data: dict[str, object], registry: Registry) -> Subscribe | OpError:
    given = [key for key in ("ids", "bbox", "all") if key in data]
    if len(given) != 1:
        return OpError("bad_op", "subscribe: give exactly one of ids, bbox or all")
    key = given[0]
    value = data[key]
    if key == "all":
        if value is not True:
            return OpError("bad_field", f"all: {_show(value)} must be true")
        return Subscribe(EVERYTHING)
    if key == "ids":
        if not isinstance(value, list) or len(value) > MAX_IDS:
            return OpError("bad_field", f"ids: must be a list of at most {MAX_IDS} ids")
        unknown = [i for i in value if not isinstance(i, str) or i not in registry]
        if unknown:
            return OpError("unknown_id", f"ids: {_show(unknown[0])} is not an intersection")
        return Subscribe(Subscription(frozenset(value)))
    if not isinstance(value, list) or len(value) != 4 or not all(map(_finite_number, value)):
        return OpError("bad_field", f"bbox: {_show(value)} is not [west, south, east, north]")
    west, south, east, north = (float(v) for v in value)
    if west > east or south > north:
        return OpError("bad_field", f"bbox: {_show(value)} has west > east or south > north")
    return Subscribe(Subscription(frozenset(registry.in_bbox(west, south, east, north))))


def _finite_number(value: object) -> TypeGuard[int | float]:
    """A JSON number that is a finite float; an int too large for a float is not (OverflowError)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    try:
        return math.isfinite(float(value))
    except OverflowError:
        return False


def _no_constant(name: str) -> object:
    raise ValueError(name)


def _show(value: object) -> str:
    text = json.dumps(value) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 40 else text[:39] + "…"
