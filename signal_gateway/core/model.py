"""Our own frozen types for what a controller reports and what the city registry holds.

This module owns the vocabulary every other layer speaks. It imports nothing from asyncio,
MQTT, pydantic or the web: wire formats (``signal_gateway.ingest``) are parsed at the edge and
converted to these types straight away. All times are integer milliseconds; absolute times are
Unix milliseconds, on the gateway's clock unless a name says ``controller``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class SignalState(enum.StrEnum):
    """What a signal group shows. Chinese practice flashes green before yellow."""

    RED = "red"
    RED_YELLOW = "red_yellow"
    GREEN = "green"
    FLASHING_GREEN = "flashing_green"
    YELLOW = "yellow"
    FLASHING_YELLOW = "flashing_yellow"
    FLASHING_RED = "flashing_red"
    DARK = "dark"


class Mode(enum.StrEnum):
    """The controller's operating mode; only NORMAL carries countdowns a driver may see."""

    NORMAL = "normal"
    FLASH = "flash"
    DARK = "dark"
    MANUAL = "manual"
    PREEMPT = "preempt"
    FAULT = "fault"
    UNKNOWN = "unknown"  # nothing trustworthy is known (e.g. J2735 noValidSPAT, before any message)


class Approach(enum.StrEnum):
    """The arm of the crossing a signal group controls traffic on."""

    N = "N"
    E = "E"
    S = "S"
    W = "W"


class Movement(enum.StrEnum):
    """The movement a signal group controls."""

    STRAIGHT = "straight"
    LEFT = "left"
    RIGHT = "right"
    PEDESTRIAN = "pedestrian"


@dataclass(frozen=True, slots=True)
class GroupReading:
    """One signal group as a controller reported it, times relative to the report's timestamp.

    ``likely_ms`` is J2735's likelyTime, ``min_ms``/``max_ms`` its minEndTime/maxEndTime, all
    counted from the report's ``ts_ms``. None means the controller does not know.
    """

    sg: int
    state: SignalState
    likely_ms: int | None
    min_ms: int | None
    max_ms: int | None
    confidence: int | None


@dataclass(frozen=True, slots=True)
class SpatReport:
    """A validated signal phase and timing report from one controller."""

    intersection_id: str
    seq: int
    ts_ms: int  # controller clock, Unix ms
    mode: Mode
    groups: tuple[GroupReading, ...]


@dataclass(frozen=True, slots=True)
class StatusReport:
    """A controller's online/offline status (retained; its Last Will says offline)."""

    intersection_id: str
    online: bool
    ts_ms: int | None  # controller clock; a Last Will carries none


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why a payload was refused: a stable reason code plus a message naming field and value."""

    reason: str
    message: str
    intersection_id: str | None = None


@dataclass(frozen=True, slots=True)
class SignalGroup:
    """A signal group of an intersection as the registry describes it."""

    sg: int
    approach: Approach
    movement: Movement


@dataclass(frozen=True, slots=True)
class Intersection:
    """One signalised intersection of the city registry."""

    id: str
    name_zh: str
    name_en: str
    district: str
    lat: float
    lon: float
    groups: tuple[SignalGroup, ...]
    conflicts: frozenset[frozenset[int]]  # pairs of sg that may never be green together
    j2735_id: int | None = None

    def group(self, sg: int) -> SignalGroup | None:
        """The registry entry for signal group ``sg``, or None if the intersection has none."""
        for group in self.groups:
            if group.sg == sg:
                return group
        return None

    def main_group(self) -> SignalGroup:
        """The group a one-glance map marker shows: the first straight movement, else the first."""
        for group in self.groups:
            if group.movement is Movement.STRAIGHT:
                return group
        return self.groups[0]
