"""SAE J2735 SPaT in and out: decoded SPaT JSON in the US DOT ODE's shape, and a SPaT-like view.

Owns the pydantic models of the ODE's decoded SPaT record (``metadata`` + ``payload.data``, or the
bare ``payload.data`` object), the J2735 time rules (TimeMark, MinuteOfTheYear, DSecond), the
mapping tables (eventState -> SignalState, IntersectionStatusObject -> Mode, TimeIntervalConfidence
-> percent), the conversion into the core's frozen ``SpatReport``, and the J2735-like JSON that
``GET /api/v1/intersections/{id}/spat`` returns. docs/j2735.md documents every rule and table.

Must not touch: the core's judgement (``City``, ``judge_spat``: staleness, clock offsets, when a
number is shown), any I/O, asyncio, MQTT or web code, and any clock: every time is passed in.
Nothing here raises on bad input: ``parse_ode`` turns every problem into a ``Rejection`` naming the
field path, the value and why.

Design rules (the driver must never be shown a wrong thing):

* ``unavailable`` groups are left out of the report, so the core shows them as unknown
  (state null) rather than as a state the signal may not show.
* TimeMark 36000 is read as unknown: the 2016 edition defines it as "more than an hour /
  indefinite", later editions as a leap second. 36001 (unknown in 2016, a leap second later) and
  36111 (unknown) are unknown too; 36002-36009 are leap seconds, read as the end of the hour.
* A likelyTime with neither minEndTime nor maxEndTime known is dropped: the core reads a lone
  likely time as an exact (fixed-time) end, which a J2735 prediction is not.
"""

from __future__ import annotations

import enum
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, NamedTuple, Protocol

from pydantic import (
    AfterValidator,
    AliasChoices,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictInt,
    StrictStr,
    ValidationError,
)

from signal_gateway.core.model import (
    GroupReading,
    Intersection,
    Mode,
    Rejection,
    SignalState,
    SpatReport,
)
from signal_gateway.core.views import IntersectionView

__all__ = [
    "CONFIDENCE_PERCENT",
    "DEFAULT_MAX_ODE_BYTES",
    "EVENT_STATE_TO_SIGNAL",
    "SIGNAL_TO_EVENT_STATE",
    "STATUS_FLAGS",
    "J2735Lookup",
    "MovementPhaseState",
    "OdeGroup",
    "OdeIntersection",
    "TimeReference",
    "confidence_percent",
    "decode_ode",
    "decode_timemark",
    "iso_ms",
    "load_json",
    "mode_from_flags",
    "parse_event_state",
    "parse_iso_ms",
    "parse_ode",
    "parse_status",
    "reference_time",
    "spat_for_view",
]

DEFAULT_MAX_ODE_BYTES = 256 * 1024
"""Largest ODE message parse_ode accepts (32 intersections of many movements fit easily)."""

HOUR_MS = 3_600_000
MINUTE_MS = 60_000

# TimeMark (J2735 DE_TimeMark): tenths of a second within the UTC hour.
TIMEMARK_HOUR = 36000  # 2016: "time > 3600 s" (indefinite); 2024: first leap-second value
TIMEMARK_UNKNOWN_2016 = 36001  # 2016 edition: unknown; 2024 edition: a leap-second value
TIMEMARK_LEAP_LAST = 36009  # 2024 edition: 36000..36009 = leap second
TIMEMARK_UNKNOWN = 36111  # 2024 edition: unknown
_TIMEMARK_NONE = frozenset({TIMEMARK_HOUR, TIMEMARK_UNKNOWN_2016, TIMEMARK_UNKNOWN})

# MinuteOfTheYear (DE_MinuteOfTheYear) 0..527040, 527040 = invalid; DSecond (DE_DSecond)
# 0..65535 ms within the minute, 60000..60999 = leap second, 61000..65534 reserved, 65535 = unknown.
MOY_UNKNOWN = 527040
DSECOND_UNKNOWN = 65535
DSECOND_LEAP_LAST = 60999

# Reference times outside these years are refused: far enough for any real feed, and every time
# derived from one (a reference +- one hour) stays inside what ``datetime`` can represent.
_MIN_YEAR, _MAX_YEAR = 1970, 9000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class J2735Lookup(Protocol):
    """What parse_ode needs of a registry (``signal_gateway.core.registry.Registry`` fits)."""

    def by_j2735_id(self, j2735_id: int) -> Intersection | None:
        """The intersection whose J2735 IntersectionID is ``j2735_id``, or None."""
        ...


# --------------------------------------------------------------------------- vocabulary


class MovementPhaseState(enum.StrEnum):
    """J2735 MovementPhaseState (eventState), valued by its ASN.1 name, in enumeration order."""

    UNAVAILABLE = "unavailable"
    DARK = "dark"
    STOP_THEN_PROCEED = "stop-Then-Proceed"
    STOP_AND_REMAIN = "stop-And-Remain"
    PRE_MOVEMENT = "pre-Movement"
    PERMISSIVE_MOVEMENT_ALLOWED = "permissive-Movement-Allowed"
    PROTECTED_MOVEMENT_ALLOWED = "protected-Movement-Allowed"
    PERMISSIVE_CLEARANCE = "permissive-clearance"
    PROTECTED_CLEARANCE = "protected-clearance"
    CAUTION_CONFLICTING_TRAFFIC = "caution-Conflicting-Traffic"


_PHASES = tuple(MovementPhaseState)
_PHASE_KEYS = {re.sub(r"[^a-z]", "", phase.value.lower()): phase for phase in _PHASES}

EVENT_STATE_TO_SIGNAL: Mapping[MovementPhaseState, SignalState | None] = {
    MovementPhaseState.UNAVAILABLE: None,  # unknown: the group is left out of the report
    MovementPhaseState.DARK: SignalState.DARK,
    MovementPhaseState.STOP_THEN_PROCEED: SignalState.FLASHING_RED,
    MovementPhaseState.STOP_AND_REMAIN: SignalState.RED,
    MovementPhaseState.PRE_MOVEMENT: SignalState.RED_YELLOW,
    MovementPhaseState.PERMISSIVE_MOVEMENT_ALLOWED: SignalState.GREEN,
    MovementPhaseState.PROTECTED_MOVEMENT_ALLOWED: SignalState.GREEN,
    MovementPhaseState.PERMISSIVE_CLEARANCE: SignalState.YELLOW,
    MovementPhaseState.PROTECTED_CLEARANCE: SignalState.YELLOW,
    MovementPhaseState.CAUTION_CONFLICTING_TRAFFIC: SignalState.FLASHING_YELLOW,
}
"""eventState -> our state; None means unknown (the group is left out of the report)."""

SIGNAL_TO_EVENT_STATE: Mapping[SignalState, MovementPhaseState] = {
    SignalState.RED: MovementPhaseState.STOP_AND_REMAIN,
    SignalState.RED_YELLOW: MovementPhaseState.PRE_MOVEMENT,
    # We do not know whether a green is protected: claiming "protected" could silence a V2X
    # left-turn-across-path warning, so green is always the conservative "permissive".
    SignalState.GREEN: MovementPhaseState.PERMISSIVE_MOVEMENT_ALLOWED,
    # Chinese flashing green is still green (go), ending soon; J2735 has no flashing green.
    SignalState.FLASHING_GREEN: MovementPhaseState.PERMISSIVE_MOVEMENT_ALLOWED,
    SignalState.YELLOW: MovementPhaseState.PERMISSIVE_CLEARANCE,
    SignalState.FLASHING_YELLOW: MovementPhaseState.CAUTION_CONFLICTING_TRAFFIC,
    SignalState.FLASHING_RED: MovementPhaseState.STOP_THEN_PROCEED,
    SignalState.DARK: MovementPhaseState.DARK,
}
"""Our state -> the eventState ``spat_for_view`` reports (unknown state -> ``unavailable``)."""

STATUS_FLAGS: tuple[str, ...] = (
    "manualControlIsEnabled",
    "stopTimeIsActivated",
    "failureFlash",
    "preemptIsActive",
    "signalPriorityIsActive",
    "fixedTimeOperation",
    "trafficDependentOperation",
    "standbyOperation",
    "failureMode",
    "off",
    "recentMAPmessageUpdate",
    "recentChangeInMAPassignedLanesIDsUsed",
    "noValidMAPisAvailableAtThisTime",
    "noValidSPATisAvailableAtThisTime",
)
"""IntersectionStatusObject bit names, bit 0 first (bits 14 and 15 are reserved)."""

_FLAG_KEYS = {name.lower(): name for name in STATUS_FLAGS}

CONFIDENCE_PERCENT: tuple[int, ...] = (
    21,
    36,
    47,
    56,
    62,
    68,
    73,
    77,
    81,
    85,
    88,
    91,
    94,
    96,
    98,
    100,
)
"""TimeIntervalConfidence 0..15 -> probability in percent (the J2735 / ISO TS 19091 table)."""


def parse_event_state(value: object) -> MovementPhaseState:
    """An eventState in any decoder's spelling; ValueError if it is none of the ten.

    Accepts the ODE's UPPER_SNAKE ("PROTECTED_MOVEMENT_ALLOWED"), the ASN.1 names
    ("protected-Movement-Allowed") in any letter case, and the enumerated value 0..9.
    """
    if isinstance(value, MovementPhaseState):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        if 0 <= value < len(_PHASES):
            return _PHASES[value]
        raise ValueError(f"is not an eventState (enumerated values are 0..{len(_PHASES) - 1})")
    if isinstance(value, str):
        phase = _PHASE_KEYS.get(re.sub(r"[-_\s]", "", value.lower()))
        if phase is not None:
            return phase
        raise ValueError("is not a J2735 eventState (MovementPhaseState)")
    raise ValueError("is not a J2735 eventState: expected a name or 0..9")


def parse_status(value: object) -> frozenset[str]:
    """The set IntersectionStatusObject flags; ValueError if ``value`` is not a status.

    Accepts the ODE's object of booleans (flag names in any letter case; unknown keys are
    ignored, missing flags are false), a 16-character bit string ("0010000000000000", bit 0
    first) and 4 hexadecimal digits ("2000", bit 0 = the most significant bit).
    """
    if isinstance(value, dict):
        flags: set[str] = set()
        for key, bit in value.items():
            name = _FLAG_KEYS.get(str(key).lower())
            if name is None:
                continue
            if not isinstance(bit, bool):
                raise ValueError(f"has flag {key!r} = {_show(bit)}, not true or false")
            if bit:
                flags.add(name)
        return frozenset(flags)
    if isinstance(value, str):
        text = value.strip()
        if len(text) == 16 and set(text) <= {"0", "1"}:
            bits = text
        elif len(text) == 4 and re.fullmatch(r"[0-9A-Fa-f]{4}", text):
            bits = f"{int(text, 16):016b}"
        else:
            raise ValueError("is not 16 bits ('0'/'1') or 4 hex digits")
        return frozenset(name for name, bit in zip(STATUS_FLAGS, bits, strict=False) if bit == "1")
    raise ValueError("is not an IntersectionStatusObject (object of booleans or bit string)")


def mode_from_flags(flags: Iterable[str]) -> Mode:
    """Our mode for a set of IntersectionStatusObject flags; the first matching rule wins.

    1. noValidSPATisAvailableAtThisTime or off -> unknown (nothing the message says holds)
    2. failureFlash -> flash (a concrete, visible fact, so it beats failureMode)
    3. failureMode -> unknown
    4. preemptIsActive -> preempt
    5. manualControlIsEnabled or stopTimeIsActivated -> manual (stop time freezes the timing, so
       every end time is wrong; it is set from the manual/police panel, and engineers watch it)
    6. anything else (priority, fixed-time, traffic-dependent, standby, MAP flags) -> normal
    """
    present = set(flags)
    if present & {"noValidSPATisAvailableAtThisTime", "off"}:
        return Mode.UNKNOWN
    if "failureFlash" in present:
        return Mode.FLASH
    if "failureMode" in present:
        return Mode.UNKNOWN
    if "preemptIsActive" in present:
        return Mode.PREEMPT
    if present & {"manualControlIsEnabled", "stopTimeIsActivated"}:
        return Mode.MANUAL
    return Mode.NORMAL


# --------------------------------------------------------------------------- time rules


def _timemark_valid(value: int) -> bool:
    return 0 <= value <= TIMEMARK_LEAP_LAST or value == TIMEMARK_UNKNOWN


def decode_timemark(value: int, reference_ms: int) -> int | None:
    """Absolute Unix ms of a TimeMark, in the UTC hour that puts it closest to ``reference_ms``.

    TimeMark counts tenths of a second within the UTC hour. The hour is the previous, current
    or next one, whichever puts the mark nearest the reference (a mark near 0 read at minute 59
    belongs to the next hour, one near 36000 read at minute 0 to the previous one; a tie goes to
    the later hour). 36000, 36001 and 36111 are unknown (None); 36002..36009 are a leap second,
    read as the end of the hour (3600.0 s). Raises ValueError for any other value above 35999.
    """
    if not _timemark_valid(value):
        raise ValueError(
            f"TimeMark {value} is outside 0..{TIMEMARK_LEAP_LAST} and not {TIMEMARK_UNKNOWN}"
        )
    if value in _TIMEMARK_NONE:
        return None
    offset_ms = min(value, TIMEMARK_HOUR) * 100
    hour = reference_ms - reference_ms % HOUR_MS
    candidates = (hour - HOUR_MS + offset_ms, hour + offset_ms, hour + HOUR_MS + offset_ms)
    return min(candidates, key=lambda t: (abs(t - reference_ms), -t))


def _year_start_ms(year: int) -> int:
    return (datetime(year, 1, 1, tzinfo=UTC) - _EPOCH) // timedelta(milliseconds=1)


def _minutes_in_year(year: int) -> int:
    return (_year_start_ms(year + 1) - _year_start_ms(year)) // MINUTE_MS


def _year_of(ms: int) -> int:
    return (_EPOCH + timedelta(milliseconds=ms)).year


class TimeReference(NamedTuple):
    """The time a message's TimeMarks are read against: Unix ms and where it came from."""

    ms: int
    source: str  # "moy" (moy + timeStamp), "odeReceivedAt" or "receive time"


def reference_time(
    moy: int | None, time_stamp: int | None, receive_ms: int, receive_source: str = "receive time"
) -> TimeReference:
    """The reference time: moy + timeStamp when both are known, else the receive time.

    ``moy`` (MinuteOfTheYear, 527040 = unknown) is placed in the UTC year (previous, current or
    next of the receive time's year) that puts it closest to ``receive_ms``, so a message of
    31 Dec 23:59 read just after New Year lands in the old year. ``time_stamp`` is DSecond, ms
    within the minute (60000..60999 = leap second, read as 60000; 65535 = unknown). A moy without
    a usable timeStamp is only minute-precise, so the receive time is used instead. Raises
    ValueError for values outside the J2735 ranges or a receive time outside 1970..9000.
    """
    if moy is not None and not 0 <= moy <= MOY_UNKNOWN:
        raise ValueError(f"moy {moy} is outside 0..{MOY_UNKNOWN}")
    if time_stamp is not None and not (
        0 <= time_stamp <= DSECOND_LEAP_LAST or time_stamp == DSECOND_UNKNOWN
    ):
        raise ValueError(f"timeStamp {time_stamp} is outside 0..{DSECOND_LEAP_LAST} and not 65535")
    year = _year_of(receive_ms) if _receive_in_range(receive_ms) else None
    if year is None:
        raise ValueError(f"receive time {receive_ms} is outside the years {_MIN_YEAR}..{_MAX_YEAR}")
    if moy is None or moy == MOY_UNKNOWN or time_stamp is None or time_stamp == DSECOND_UNKNOWN:
        return TimeReference(receive_ms, receive_source)
    within_minute = min(time_stamp, MINUTE_MS)
    candidates = [
        _year_start_ms(y) + moy * MINUTE_MS + within_minute
        for y in (year - 1, year, year + 1)
        if moy < _minutes_in_year(y)
    ]
    if not candidates:
        raise ValueError(f"moy {moy} is past the last minute of {year - 1}..{year + 1}")
    best = min(candidates, key=lambda t: abs(t - receive_ms))
    return TimeReference(best, "moy")


def _receive_in_range(ms: int) -> bool:
    return _year_start_ms(_MIN_YEAR) <= ms < _year_start_ms(_MAX_YEAR)


def parse_iso_ms(text: str) -> int:
    """Unix ms of an ISO-8601 time with a UTC offset ("2024-12-10T17:34:40.359Z").

    Older ODE versions append a zone id ("...Z[UTC]"), which is ignored. A time without an offset
    is refused (it could be local time). Raises ValueError.
    """
    cleaned = re.sub(r"\[[^\]]*\]$", "", text.strip())
    try:
        moment = datetime.fromisoformat(cleaned)
    except ValueError:
        raise ValueError("is not an ISO-8601 time") from None
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("has no UTC offset (write Z or +00:00)")
    return (moment - _EPOCH) // timedelta(milliseconds=1)


def iso_ms(ms: int) -> str:
    """ISO-8601 UTC with milliseconds, e.g. ``2024-12-10T17:36:52.000Z``."""
    moment = _EPOCH + timedelta(milliseconds=ms)
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + f".{ms % 1000:03d}Z"


def confidence_percent(value: int | None) -> int | None:
    """TimeIntervalConfidence 0..15 as a percentage, None when absent."""
    return None if value is None else CONFIDENCE_PERCENT[value]


# --------------------------------------------------------------------------- ODE shape


def _check_timemark(value: int) -> int:
    if not _timemark_valid(value):
        raise ValueError(
            f"is not a TimeMark: 0..{TIMEMARK_LEAP_LAST} (36000..36009 leap second) "
            f"or {TIMEMARK_UNKNOWN} (unknown)"
        )
    return value


def _check_dsecond(value: int) -> int:
    if not (0 <= value <= DSECOND_LEAP_LAST or value == DSECOND_UNKNOWN):
        raise ValueError(f"is not a DSecond: 0..{DSECOND_LEAP_LAST} or 65535 (unknown)")
    return value


TimeMark = Annotated[StrictInt, AfterValidator(_check_timemark)]
MinuteOfTheYear = Annotated[StrictInt, Field(ge=0, le=MOY_UNKNOWN)]
DSecond = Annotated[StrictInt, AfterValidator(_check_dsecond)]


class _Lenient(BaseModel):
    # Decoders add fields (speeds, maneuverAssistList, regional...): unknown ones are ignored.
    model_config = ConfigDict(extra="ignore", frozen=True)


class OdeTiming(_Lenient):
    """TimeChangeDetails: TimeMarks (tenths of a second in the UTC hour) and a confidence."""

    startTime: TimeMark | None = None
    minEndTime: TimeMark | None = None
    maxEndTime: TimeMark | None = None
    likelyTime: TimeMark | None = None
    confidence: Annotated[StrictInt, Field(ge=0, le=15)] | None = None
    nextTime: TimeMark | None = None


class OdeMovementEvent(_Lenient):
    """MovementEvent: the phase and its timing."""

    eventState: Annotated[MovementPhaseState, BeforeValidator(parse_event_state)]
    timing: OdeTiming | None = None


class OdeEventList(_Lenient):
    """The ODE's wrapper of MovementEventList; the first event is the current one."""

    movementEventList: list[OdeMovementEvent] = Field(min_length=1, max_length=16)


class OdeMovementState(_Lenient):
    """MovementState: one signal group."""

    signalGroup: Annotated[StrictInt, Field(ge=0, le=255)]
    state_time_speed: OdeEventList


class OdeMovementList(_Lenient):
    """The ODE's wrapper of MovementList."""

    movementList: list[OdeMovementState] = Field(max_length=255)


class OdeIntersectionId(_Lenient):
    """IntersectionReferenceID; ``region`` is not used for the registry lookup."""

    region: Annotated[StrictInt, Field(ge=0, le=65535)] | None = None
    id: Annotated[StrictInt, Field(ge=0, le=65535)]


class OdeIntersectionState(_Lenient):
    """IntersectionState as the ODE decodes it."""

    id: OdeIntersectionId
    revision: Annotated[StrictInt, Field(ge=0, le=127)] | None = None
    status: Annotated[frozenset[str], BeforeValidator(parse_status)]
    moy: MinuteOfTheYear | None = None
    timeStamp: DSecond | None = None
    states: OdeMovementList


class OdeStateList(_Lenient):
    """The ODE's wrapper of IntersectionStateList (its spelling: ``intersectionStatelist``)."""

    intersectionStatelist: list[Any] = Field(
        min_length=1,
        max_length=32,
        validation_alias=AliasChoices("intersectionStatelist", "intersectionStateList"),
    )


class OdeSpatData(_Lenient):
    """``payload.data``: the SPAT; its own ``timeStamp`` is a MinuteOfTheYear."""

    timeStamp: MinuteOfTheYear | None = None
    intersectionStateList: OdeStateList


class OdePayload(_Lenient):
    """``payload`` of an ODE record."""

    data: OdeSpatData


class OdeMetadata(_Lenient):
    """``metadata`` of an ODE record; only ``odeReceivedAt`` is used."""

    odeReceivedAt: StrictStr | None = None


class OdeRecord(_Lenient):
    """One ODE SPaT record as published on the ODE's topics."""

    metadata: OdeMetadata | None = None
    payload: OdePayload


# --------------------------------------------------------------------------- decoding


@dataclass(frozen=True, slots=True)
class OdeGroup:
    """One movement as decoded, for the convert command: J2735 eventState and our reading."""

    sg: int
    event_state: MovementPhaseState
    reading: GroupReading | None  # None: unavailable, left out of the report


@dataclass(frozen=True, slots=True)
class OdeIntersection:
    """One IntersectionState (or a message-level problem) and everything convert shows of it."""

    j2735_id: int | None
    reference: TimeReference | None
    result: SpatReport | Rejection
    movements: tuple[OdeGroup, ...] = ()
    flags: frozenset[str] = frozenset()


def _clip(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _show(value: object) -> str:
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    return _clip(repr(value))


def _path(prefix: str, loc: Iterable[int | str]) -> str:
    text = prefix
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else part
    return text or "payload"


def _schema_rejection(exc: ValidationError, prefix: str, iid: str | None = None) -> Rejection:
    first = exc.errors(include_url=False)[0]
    where = _path(prefix, first["loc"])
    message = str(first["msg"])
    message = message.removeprefix("Value error, ")
    more = f" (+{exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    if first["type"] == "missing":
        return Rejection("schema", f"{where}: missing (required){more}", iid)
    shown = _show(first.get("input"))
    return Rejection("schema", f"{where}: {shown} {message[:1].lower()}{message[1:]}{more}", iid)


def load_json(payload: bytes, max_bytes: int = DEFAULT_MAX_ODE_BYTES) -> object | Rejection:
    """The JSON document in ``payload``, or a Rejection (too large, not UTF-8, not JSON)."""
    if len(payload) > max_bytes:
        return Rejection("too_large", f"payload: {len(payload)} bytes exceeds {max_bytes}")
    if not payload.strip():
        return Rejection("not_json", "payload: empty")
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError as exc:
        return Rejection("not_utf8", f"payload: byte {exc.start} is not UTF-8")
    try:
        document: object = json.loads(text, parse_constant=_reject_constant)
    except _NonFinite as exc:
        return Rejection("not_json", f"payload: {exc.args[0]} is not a finite number")
    except (ValueError, RecursionError) as exc:
        return Rejection("not_json", f"payload: not JSON ({_clip(str(exc) or 'invalid', 80)})")
    return document


class _NonFinite(ValueError):
    pass


def _reject_constant(name: str) -> object:
    raise _NonFinite(name)


def _message_level(rejection: Rejection) -> OdeIntersection:
    return OdeIntersection(None, None, rejection)


def decode_ode(
    document: object, receive_ms: int, registry: J2735Lookup | None, *, prefix: str = ""
) -> list[OdeIntersection]:
    """Decode an already-parsed JSON document: an ODE record, its ``payload.data``, or a list.

    Every IntersectionState becomes one OdeIntersection whose ``result`` is our SpatReport or a
    Rejection; a problem with the whole message becomes a single Rejection entry. ``registry``
    None names intersections ``J2735-<id>`` (the convert command without a registry file).
    Never raises.
    """
    if isinstance(document, list):
        results: list[OdeIntersection] = []
        for index, item in enumerate(document):
            results.extend(decode_ode(item, receive_ms, registry, prefix=f"{prefix}[{index}]"))
        if not document:
            results.append(
                _message_level(Rejection("schema", f"{prefix or 'payload'}: empty list"))
            )
        return results
    if isinstance(document, dict) and "payload" in document:
        try:
            record = OdeRecord.model_validate(document)
        except ValidationError as exc:
            return [_message_level(_schema_rejection(exc, prefix))]
        data = record.payload.data
        data_prefix = _path(prefix, ["payload", "data"])
        received_at = record.metadata.odeReceivedAt if record.metadata is not None else None
        receive: TimeReference | Rejection = TimeReference(receive_ms, "receive time")
        if received_at:
            receive = _ode_received(received_at, _path(prefix, ["metadata", "odeReceivedAt"]))
    elif isinstance(document, dict) and "intersectionStateList" in document:
        try:
            data = OdeSpatData.model_validate(document)
        except ValidationError as exc:
            return [_message_level(_schema_rejection(exc, prefix))]
        data_prefix = prefix
        receive = TimeReference(receive_ms, "receive time")
    else:
        where = prefix or "payload"
        return [
            _message_level(
                Rejection(
                    "schema",
                    f"{where}: {_show(document)} is not an ODE SPaT record "
                    "({metadata, payload: {data}}) nor its payload.data object",
                )
            )
        ]
    if isinstance(receive, Rejection):
        return [_message_level(receive)]
    if not _receive_in_range(receive.ms):
        where = (
            _path(prefix, ["metadata", "odeReceivedAt"])
            if receive.source == "odeReceivedAt"
            else "receive time"
        )
        return [
            _message_level(
                Rejection(
                    "bad_time",
                    f"{where}: {receive.ms} is outside the years {_MIN_YEAR}..{_MAX_YEAR}",
                )
            )
        ]
    list_prefix = _path(data_prefix, ["intersectionStateList", "intersectionStatelist"])
    return [
        _decode_state(raw, f"{list_prefix}[{index}]", receive, data.timeStamp, registry)
        for index, raw in enumerate(data.intersectionStateList.intersectionStatelist)
    ]


def _ode_received(text: str, where: str) -> TimeReference | Rejection:
    try:
        return TimeReference(parse_iso_ms(text), "odeReceivedAt")
    except (ValueError, OverflowError) as exc:
        return Rejection("bad_time", f"{where}: {_show(text)} {exc}")


def _decode_state(
    raw: object,
    where: str,
    receive: TimeReference,
    spat_moy: int | None,
    registry: J2735Lookup | None,
) -> OdeIntersection:
    j2735_id: int | None = None
    if isinstance(raw, dict):
        ident = raw.get("id")
        if isinstance(ident, dict) and type(ident.get("id")) is int:
            j2735_id = ident["id"]
    iid = _our_id(j2735_id, registry)
    try:
        state = OdeIntersectionState.model_validate(raw)
    except ValidationError as exc:
        return OdeIntersection(j2735_id, None, _schema_rejection(exc, where, iid))
    j2735_id = state.id.id
    if iid is None:
        return OdeIntersection(
            j2735_id,
            None,
            Rejection(
                "unknown_intersection",
                f"{where}.id.id: J2735 intersection {j2735_id} is not in the registry "
                "(no intersection has this j2735_id)",
            ),
            flags=state.status,
        )
    moy = state.moy if state.moy is not None else spat_moy
    try:
        reference = reference_time(moy, state.timeStamp, receive.ms, receive.source)
    except ValueError as exc:
        field = f"{where}.moy" if state.moy is not None else "timeStamp (SPAT minute of the year)"
        return OdeIntersection(j2735_id, None, Rejection("bad_time", f"{field}: {exc}", iid))
    mode = mode_from_flags(state.status)
    movements: list[OdeGroup] = []
    readings: list[GroupReading] = []
    seen: set[int] = set()
    for index, movement in enumerate(state.states.movementList):
        mwhere = f"{where}.states.movementList[{index}]"
        sg = movement.signalGroup
        if sg in seen:
            problem = Rejection(
                "duplicate_group", f"{mwhere}.signalGroup: {sg} is listed twice", iid
            )
            return OdeIntersection(j2735_id, reference, problem, tuple(movements), state.status)
        seen.add(sg)
        event = movement.state_time_speed.movementEventList[0]
        reading = _reading(
            sg, event, reference.ms, f"{mwhere}.state_time_speed.movementEventList[0]"
        )
        if isinstance(reading, str):
            problem = Rejection("inconsistent_timing", reading, iid)
            return OdeIntersection(j2735_id, reference, problem, tuple(movements), state.status)
        movements.append(OdeGroup(sg, event.eventState, reading))
        if reading is not None:
            readings.append(reading)
    report = SpatReport(
        intersection_id=iid,
        # J2735's revision (0..127) changes with the plan, not per message, so it cannot order
        # messages; the reference time can. One seq per 100 ms suits the US 10 Hz norm: two
        # messages in the same 100 ms are duplicates to the core, a gap counts as lost ones.
        seq=reference.ms // 100,
        ts_ms=reference.ms,
        mode=mode,
        groups=tuple(readings),
    )
    return OdeIntersection(j2735_id, reference, report, tuple(movements), state.status)


def _our_id(j2735_id: int | None, registry: J2735Lookup | None) -> str | None:
    if j2735_id is None:
        return None
    if registry is None:
        return f"J2735-{j2735_id}"
    intersection = registry.by_j2735_id(j2735_id)
    return None if intersection is None else intersection.id


def _reading(sg: int, event: OdeMovementEvent, ts_ms: int, where: str) -> GroupReading | str | None:
    """Our reading of one movement event; None if unavailable; a message if inconsistent."""
    state = EVENT_STATE_TO_SIGNAL[event.eventState]
    if state is None:
        return None
    timing = event.timing or OdeTiming()

    def absolute(value: int | None) -> int | None:
        return None if value is None else decode_timemark(value, ts_ms)

    low = absolute(timing.minEndTime)
    high = absolute(timing.maxEndTime)
    likely = absolute(timing.likelyTime)
    if low is not None and high is not None and low > high:
        return (
            f"{where}.timing: minEndTime {timing.minEndTime} ({iso_ms(low)}) is after "
            f"maxEndTime {timing.maxEndTime} ({iso_ms(high)})"
        )
    if likely is not None and (
        (low is not None and likely < low) or (high is not None and likely > high)
    ):
        return (
            f"{where}.timing.likelyTime: {timing.likelyTime} ({iso_ms(likely)}) is outside "
            f"[minEndTime {_iso_or_unknown(low)}, maxEndTime {_iso_or_unknown(high)}]"
        )
    confidence = confidence_percent(timing.confidence)
    if likely is None and low is not None and low == high:
        likely = low  # min == max: the end is known exactly
    if low is None and high is None:
        likely = None  # a lone likely time would read as an exact end in the core
    if likely is None:
        confidence = None  # TimeIntervalConfidence applies to likelyTime only

    def relative(value: int | None) -> int | None:
        return None if value is None else value - ts_ms

    return GroupReading(
        sg=sg,
        state=state,
        likely_ms=relative(likely),
        min_ms=relative(low),
        max_ms=relative(high),
        confidence=confidence,
    )


def _iso_or_unknown(ms: int | None) -> str:
    return "unknown" if ms is None else iso_ms(ms)


def parse_ode(
    payload: bytes,
    receive_ms: int,
    registry: J2735Lookup | None,
    *,
    max_bytes: int = DEFAULT_MAX_ODE_BYTES,
) -> list[SpatReport | Rejection]:
    """Our SpatReport (or a Rejection) for each IntersectionState of one ODE SPaT message.

    ``payload`` is an ODE record, its bare ``payload.data`` object, or a JSON list of either.
    ``receive_ms`` is the gateway's receive time, used as the time reference only when the
    message has neither moy + timeStamp nor ``metadata.odeReceivedAt``. Each report's ``ts_ms``
    is the reference time and its group times are relative to it, so the core's
    ``end = ts_ms + offset + relative`` gives the decoded absolute time (plus the clock offset).
    Never raises.
    """
    document = load_json(payload, max_bytes)
    if isinstance(document, Rejection):
        return [document]
    return [item.result for item in decode_ode(document, receive_ms, registry)]


# --------------------------------------------------------------------------- output


_MODE_FLAGS: Mapping[Mode, str] = {
    Mode.FLASH: "failureFlash",
    Mode.MANUAL: "manualControlIsEnabled",
    Mode.PREEMPT: "preemptIsActive",
    Mode.FAULT: "failureMode",
    Mode.DARK: "off",
    Mode.UNKNOWN: "noValidSPATisAvailableAtThisTime",
}


def spat_for_view(
    view: IntersectionView, intersection: Intersection | None, now_ms: int
) -> dict[str, object]:
    """A J2735-like JSON object of an intersection's current view, for V2X consumers.

    ``{"intersectionId", "id", "timeStamp", "mode", "status": {14 flags}, "states": [{
    "signalGroup", "eventState", "timing": {"minEndTime", "maxEndTime", "likelyTime",
    "confidence"}}]}``: times are ISO-8601 UTC (gateway clock), confidence is percent 0..100,
    null means unknown. The times are exactly the view's, so they are null whenever the core
    shows no number (offline, stale, not normal, untrusted clock). See docs/j2735.md.
    """
    flags = dict.fromkeys(STATUS_FLAGS, False)
    mode_flag = _MODE_FLAGS.get(view.mode)
    if mode_flag is not None:
        flags[mode_flag] = True
    if not view.online or view.stale:
        flags["noValidSPATisAvailableAtThisTime"] = True

    def iso(ms: int | None) -> str | None:
        return None if ms is None else iso_ms(ms)

    states: list[dict[str, object]] = []
    for group in view.groups:
        phase = (
            MovementPhaseState.UNAVAILABLE
            if group.state is None
            else SIGNAL_TO_EVENT_STATE[group.state]
        )
        states.append(
            {
                "signalGroup": group.sg,
                "eventState": phase.value,
                "state": None if group.state is None else group.state.value,
                "timing": {
                    "minEndTime": iso(group.min_end_ms),
                    "maxEndTime": iso(group.max_end_ms),
                    "likelyTime": iso(group.likely_end_ms),
                    "confidence": group.confidence,
                },
            }
        )
    return {
        "intersectionId": None if intersection is None else intersection.j2735_id,
        "id": view.id,
        "timeStamp": iso_ms(now_ms),
        "mode": view.mode.value,
        "status": flags,
        "states": states,
    }
