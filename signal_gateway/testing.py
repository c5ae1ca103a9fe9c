"""Typed fakes and message builders shared by the tests, the simulator and the benchmarks.

Owns how a controller's payload is spelled (``spat_payload``, ``status_payload``), a fake
clock, and a recording WebSocket sink. Keeping them here means the simulator and the tests can
never disagree about the wire format. No asyncio, no MQTT.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field

from signal_gateway.core.model import (
    Approach,
    GroupReading,
    Intersection,
    Mode,
    Movement,
    SignalGroup,
    SignalState,
    SpatReport,
    StatusReport,
)
from signal_gateway.core.registry import Registry, derive_conflicts


class FakeClock:
    """A clock that moves only when told to (Trio's MockClock, in milliseconds)."""

    def __init__(self, start_ms: int = 1_764_000_000_000) -> None:
        self.now_ms = start_ms

    def __call__(self) -> int:
        """The current fake time in Unix ms."""
        return self.now_ms

    def advance(self, ms: int) -> int:
        """Move time forward by ``ms`` and return the new time."""
        if ms < 0:
            raise ValueError("a clock does not go back")
        self.now_ms += ms
        return self.now_ms


@dataclass(frozen=True, slots=True)
class G:
    """A signal group in a SPaT payload, as a test or the simulator spells it."""

    sg: int
    state: SignalState | str
    remaining_s: float | None = None
    min_remaining_s: float | None = None
    max_remaining_s: float | None = None
    confidence: int | None = None

    def as_dict(self) -> dict[str, object]:
        """The group as the wire format's JSON object (optional fields omitted when None)."""
        out: dict[str, object] = {
            "sg": self.sg,
            "state": self.state.value if isinstance(self.state, SignalState) else self.state,
            "remaining_s": self.remaining_s,
        }
        for key in ("min_remaining_s", "max_remaining_s", "confidence"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        return out


def spat_dict(
    intersection_id: str, seq: int, ts_ms: int, groups: Iterable[G], mode: str = "normal"
) -> dict[str, object]:
    """A SPaT payload as a JSON-ready dict (docs/protocol.md)."""
    return {
        "v": 1,
        "id": intersection_id,
        "seq": seq,
        "ts_ms": ts_ms,
        "mode": mode,
        "groups": [group.as_dict() for group in groups],
    }


def spat_payload(
    intersection_id: str, seq: int, ts_ms: int, groups: Iterable[G], mode: str = "normal"
) -> bytes:
    """A SPaT payload as the bytes a controller publishes."""
    return _dumps(spat_dict(intersection_id, seq, ts_ms, groups, mode))


def status_payload(online: bool, ts_ms: int | None = None) -> bytes:
    """A status payload; ``status_payload(False)`` is the Last Will every controller sets."""
    body: dict[str, object] = {"v": 1, "online": online}
    if ts_ms is not None:
        body["ts_ms"] = ts_ms
    return _dumps(body)


def spat_report(
    intersection_id: str,
    seq: int,
    ts_ms: int,
    groups: Iterable[G],
    mode: Mode | str = Mode.NORMAL,
) -> SpatReport:
    """The core's SpatReport for what ``spat_payload`` would carry (seconds become ms)."""
    return SpatReport(
        intersection_id=intersection_id,
        seq=seq,
        ts_ms=ts_ms,
        mode=Mode(mode),
        groups=tuple(
            GroupReading(
                sg=g.sg,
                state=SignalState(g.state),
                likely_ms=_ms(g.remaining_s),
                min_ms=_ms(g.min_remaining_s),
                max_ms=_ms(g.max_remaining_s),
                confidence=g.confidence,
            )
            for g in groups
        ),
    )


def status_report(intersection_id: str, online: bool, ts_ms: int | None = None) -> StatusReport:
    """The core's StatusReport; ``status_report(id, False)`` is a Last Will."""
    return StatusReport(intersection_id, online, ts_ms)


# A small 4-arm crossing: through movements on every arm plus two lefts and a pedestrian group.
CROSSING_GROUPS: tuple[tuple[int, str, str], ...] = (
    (1, "N", "straight"),
    (2, "E", "straight"),
    (3, "S", "straight"),
    (4, "W", "straight"),
    (5, "N", "left"),
    (6, "E", "left"),
    (7, "N", "pedestrian"),
)


def intersection(
    intersection_id: str = "YT001",
    *,
    lat: float = 37.5,
    lon: float = 121.4,
    groups: Iterable[tuple[int, str, str]] = CROSSING_GROUPS,
) -> Intersection:
    """A registry entry built in code, conflicts derived by the documented rule."""
    signal_groups = tuple(
        SignalGroup(sg, Approach(approach), Movement(movement)) for sg, approach, movement in groups
    )
    return Intersection(
        id=intersection_id,
        name_zh=f"测试路口{intersection_id}",
        name_en=f"Test crossing {intersection_id}",
        district="芝罘区",
        lat=lat,
        lon=lon,
        groups=signal_groups,
        conflicts=derive_conflicts(signal_groups),
    )


def small_registry(*intersections: Intersection) -> Registry:
    """A registry of the given intersections (default: YT001, YT002, YT003 along a street)."""
    if not intersections:
        intersections = (
            intersection("YT001", lat=37.50, lon=121.40),
            intersection("YT002", lat=37.52, lon=121.42),
            intersection("YT003", lat=37.60, lon=121.60),
        )
    return Registry(intersections)


def _ms(seconds: float | None) -> int | None:
    return None if seconds is None else round(seconds * 1000)


def _dumps(body: dict[str, object]) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode()


@dataclass
class RecordingSink:
    """A WebSocket sink that records frames instead of sending them; can pretend to be slow."""

    buffered: int = 0
    soft_limit: int = 64 * 1024
    frames: list[bytes] = field(default_factory=list)
    closed: tuple[int, str] | None = None

    def ready(self) -> bool:
        """Whether a frame may be written now."""
        return self.closed is None and self.buffered <= self.soft_limit

    def send(self, frame: bytes) -> None:
        """Record the frame."""
        self.frames.append(frame)

    def buffered_bytes(self) -> int:
        """The pretend size of the send buffer."""
        return self.buffered

    def close(self, code: int, reason: str) -> None:
        """Record the close."""
        self.closed = (code, reason)

    def decoded(self) -> list[dict[str, object]]:
        """Every recorded frame as JSON."""
        return [json.loads(frame) for frame in self.frames]
