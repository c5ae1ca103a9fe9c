"""What clients are shown: the view of an intersection, and its one-time JSON encoding.

Owns the public view types and their wire encoding (the ``View`` of docs/protocol.md). A view
holds absolute end times on the gateway clock, so it does not change while a countdown merely
runs. Pure: no I/O, no clock.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from signal_gateway.core.model import Mode, SignalState


@dataclass(frozen=True, slots=True)
class GroupView:
    """One signal group as a client sees it; every time is gateway-clock Unix ms or None."""

    sg: int
    state: SignalState | None
    end_ms: int | None  # set only when the end is certain (min == max) and trustworthy
    min_end_ms: int | None
    max_end_ms: int | None
    likely_end_ms: int | None
    confidence: int | None

    def as_dict(self) -> dict[str, object]:
        """The JSON object of docs/protocol.md."""
        return {
            "sg": self.sg,
            "state": None if self.state is None else self.state.value,
            "end_ms": self.end_ms,
            "min_end_ms": self.min_end_ms,
            "max_end_ms": self.max_end_ms,
            "likely_end_ms": self.likely_end_ms,
            "confidence": self.confidence,
        }


@dataclass(frozen=True, slots=True)
class IntersectionView:
    """The live state of one intersection as clients see it."""

    id: str
    mode: Mode
    online: bool
    stale: bool
    updated_ms: int | None  # gateway time of the last accepted report
    groups: tuple[GroupView, ...]

    def as_dict(self) -> dict[str, object]:
        """The JSON object of docs/protocol.md."""
        return {
            "id": self.id,
            "mode": self.mode.value,
            "online": self.online,
            "stale": self.stale,
            "updated_ms": self.updated_ms,
            "groups": [group.as_dict() for group in self.groups],
        }

    def encode(self) -> bytes:
        """Compact UTF-8 JSON, encoded once and spliced into every frame that carries it."""
        return json.dumps(self.as_dict(), separators=(",", ":"), ensure_ascii=False).encode()

    @property
    def countdowns_shown(self) -> bool:
        """Whether any group carries a number a driver may see."""
        return any(group.end_ms is not None for group in self.groups)


def blank_group(sg: int, state: SignalState | None = None) -> GroupView:
    """A group with no times at all."""
    return GroupView(sg, state, None, None, None, None, None)


def frame(kind: str, server_time_ms: int, encoded_views: list[bytes]) -> bytes:
    """A snapshot or update frame spliced from views that were each encoded once."""
    head = b'{"type":"%s","server_time_ms":%d,"intersections":[' % (kind.encode(), server_time_ms)
    return head + b",".join(encoded_views) + b"]}"
