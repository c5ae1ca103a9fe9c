"""The MQTT wire format: pydantic models of the controllers' payloads, validated once, at the edge.

Owns topic parsing and payload validation, and converts what passes straight into the core's
frozen types (``SpatReport``, ``StatusReport``); what fails becomes a ``Rejection`` that names the
field, the value and the reason. Nothing here raises on bad input. The JSON Schemas under
docs/schema/ are generated from these models (``scripts/gen_schemas.py``).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from signal_gateway.core.model import (
    GroupReading,
    Mode,
    Rejection,
    SignalState,
    SpatReport,
    StatusReport,
)

DEFAULT_MAX_PAYLOAD_BYTES = 16 * 1024

# strict: a JSON number (int or float) only, never a numeric string or a boolean.
Seconds = Annotated[float, Field(ge=0, allow_inf_nan=False, strict=True)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=False, frozen=True)


def _version_is_int(value: object) -> object:
    # Literal[1] alone lets true and 1.0 through (they compare equal to 1).
    if type(value) is not int:
        raise ValueError("input should be the integer 1")
    return value


class GroupPayload(_Strict):
    """One signal group in a SPaT payload; times are seconds from the payload's ``ts_ms``."""

    sg: int = Field(ge=0, le=255, strict=True, description="signal group number")
    state: SignalState
    remaining_s: Seconds | None = Field(
        description="likely time until the group leaves its state (J2735 likelyTime); "
        "null when unknown"
    )
    min_remaining_s: Seconds | None = Field(None, description="earliest end (J2735 minEndTime)")
    max_remaining_s: Seconds | None = Field(None, description="latest end (J2735 maxEndTime)")
    confidence: int | None = Field(None, ge=0, le=100, strict=True)


class SpatPayload(_Strict):
    """``signals/{id}/spat``: published on every change and at least once per second."""

    v: Literal[1]
    id: str = Field(min_length=1, max_length=64)
    seq: int = Field(ge=0, le=2**53, strict=True)
    ts_ms: int = Field(ge=0, le=2**53, strict=True, description="controller clock, Unix ms")
    mode: Literal["normal", "flash", "dark", "manual", "preempt", "fault"]
    groups: list[GroupPayload] = Field(max_length=64)

    _v_is_int = field_validator("v", mode="before")(_version_is_int)


class StatusPayload(_Strict):
    """``signals/{id}/status``, retained; the Last Will is ``{"v":1,"online":false}``."""

    v: Literal[1]
    online: bool = Field(strict=True)
    ts_ms: int | None = Field(None, ge=0, le=2**53, strict=True)

    _v_is_int = field_validator("v", mode="before")(_version_is_int)


@dataclass(frozen=True, slots=True)
class Topic:
    """A parsed controller topic."""

    intersection_id: str
    kind: Literal["spat", "status"]


def parse_topic(topic: str, prefix: str = "signals") -> Topic | Rejection:
    """``{prefix}/{id}/spat`` or ``{prefix}/{id}/status``; anything else is a rejection."""
    parts = topic.split("/")
    head = prefix.split("/")
    if len(parts) != len(head) + 2 or parts[: len(head)] != head or not parts[-2]:
        return Rejection("bad_topic", f"topic: {topic!r} is not {prefix}/<id>/spat|status")
    kind = parts[-1]
    if kind not in ("spat", "status"):
        return Rejection("bad_topic", f"topic: {topic!r} ends in {kind!r}, not spat or status")
    return Topic(parts[-2], "spat" if kind == "spat" else "status")


def _load(payload: bytes, max_bytes: int, iid: str) -> object | Rejection:
    if len(payload) > max_bytes:
        return Rejection("too_large", f"payload: {len(payload)} bytes exceeds {max_bytes}", iid)
    if not payload:
        return Rejection("not_json", "payload: empty", iid)
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError as exc:
        return Rejection("not_utf8", f"payload: byte {exc.start} is not UTF-8", iid)
    try:
        data: object = json.loads(text, parse_constant=_reject_constant)
    except _NonFinite as exc:
        return Rejection("schema", f"payload: {exc.args[0]} is not a finite number", iid)
    except (ValueError, RecursionError) as exc:
        return Rejection("not_json", f"payload: not JSON ({_short(exc)})", iid)
    return data


class _NonFinite(ValueError):
    pass


def _reject_constant(name: str) -> object:
    raise _NonFinite(name)


def _schema_rejection(exc: ValidationError, iid: str) -> Rejection:
    first = exc.errors(include_url=False)[0]
    where = ".".join(str(part) for part in first["loc"]) or "payload"
    value = first.get("input")
    shown = repr(value) if not isinstance(value, dict | list) else type(value).__name__
    more = f" (+{exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    if first["type"] == "missing":  # the input is the enclosing object, not a value
        return Rejection("schema", f"{where}: field required{more}", iid)
    why = first["msg"].removeprefix("Value error, ").lower()
    return Rejection("schema", f"{where}: {_clip(shown)} {why}{more}", iid)


def parse_spat(
    topic_id: str, payload: bytes, max_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES
) -> SpatReport | Rejection:
    """Validate a SPaT payload received on ``signals/{topic_id}/spat``."""
    data = _load(payload, max_bytes, topic_id)
    if isinstance(data, Rejection):
        return data
    try:
        model = SpatPayload.model_validate(data)
    except ValidationError as exc:
        return _schema_rejection(exc, topic_id)
    if model.id != topic_id:
        return Rejection(
            "id_mismatch", f"id: {model.id!r} does not match the topic's {topic_id!r}", topic_id
        )
    for index, g in enumerate(model.groups):
        for name in ("remaining_s", "min_remaining_s", "max_remaining_s"):
            seconds = getattr(g, name)
            if seconds is not None and not math.isfinite(seconds * 1000):
                # finite but beyond float range in ms (1e308): would overflow round()
                return Rejection(
                    "absurd_time", f"groups.{index}.{name}: {seconds!r} s is absurd", topic_id
                )
    return SpatReport(
        intersection_id=model.id,
        seq=model.seq,
        ts_ms=model.ts_ms,
        mode=Mode(model.mode),
        groups=tuple(
            GroupReading(
                sg=g.sg,
                state=g.state,
                likely_ms=_ms(g.remaining_s),
                min_ms=_ms(g.min_remaining_s),
                max_ms=_ms(g.max_remaining_s),
                confidence=g.confidence,
            )
            for g in model.groups
        ),
    )


def parse_status(
    topic_id: str, payload: bytes, max_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES
) -> StatusReport | Rejection:
    """Validate a status payload (or Last Will) received on ``signals/{topic_id}/status``."""
    data = _load(payload, max_bytes, topic_id)
    if isinstance(data, Rejection):
        return data
    try:
        model = StatusPayload.model_validate(data)
    except ValidationError as exc:
        return _schema_rejection(exc, topic_id)
    return StatusReport(topic_id, model.online, model.ts_ms)


def _ms(seconds: float | None) -> int | None:
    if seconds is None:
        return None
    assert math.isfinite(seconds)
    return round(seconds * 1000)


def _clip(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _short(exc: BaseException) -> str:
    return _clip(str(exc) or type(exc).__name__, 80)
