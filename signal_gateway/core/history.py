"""The recent past of every intersection's signal groups, for the engineers' timing diagram.

Owns a bounded in-memory ring per intersection: for each group the state changes of the last
``window_ms`` (15 minutes by default), for the intersection its mode changes, and the spans in
which nothing was known (offline, stale: the diagram shows a gap, never an invented state).
Memory is bounded twice: by time (pruned on every write and read) and by a hard count of
segments per group, so a flapping controller cannot grow it. Pure: callers pass ``now_ms``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field

from signal_gateway.core.model import Intersection, Mode, SignalState, SpatReport

UNKNOWN = "unknown"
"""The state recorded for a span in which the gateway knew nothing (offline, stale)."""


@dataclass(frozen=True, slots=True)
class Segment:
    """One state held from ``start_ms`` until ``end_ms`` (None: still held)."""

    state: str
    start_ms: int
    end_ms: int | None

    def as_dict(self) -> dict[str, object]:
        """JSON object for the timing endpoint."""
        return {"state": self.state, "start_ms": self.start_ms, "end_ms": self.end_ms}


@dataclass(slots=True)
class _Ring:
    """Changes of one quantity: (start_ms, value), oldest first, bounded."""

    changes: deque[tuple[int, str]]

    def set(self, at_ms: int, value: str) -> None:
        if self.changes and self.changes[-1][1] == value:
            return
        if self.changes and at_ms < self.changes[-1][0]:
            at_ms = self.changes[-1][0]  # gateway time never runs back within one ring
        self.changes.append((at_ms, value))

    def prune(self, before_ms: int) -> None:
        """Forget changes entirely before ``before_ms``, keeping the one in force then."""
        while len(self.changes) >= 2 and self.changes[1][0] <= before_ms:
            self.changes.popleft()

    def segments(self, from_ms: int, to_ms: int) -> list[Segment]:
        out: list[Segment] = []
        items = list(self.changes)
        for index, (start, value) in enumerate(items):
            end = items[index + 1][0] if index + 1 < len(items) else None
            if end is not None and end <= from_ms:
                continue
            if start > to_ms:
                break
            out.append(Segment(value, max(start, from_ms), end))
        return out


@dataclass(slots=True)
class _IntersectionHistory:
    groups: dict[int, _Ring]
    mode: _Ring
    started_ms: int | None = None


@dataclass(frozen=True, slots=True)
class TimingDiagram:
    """What the timing endpoint returns for one intersection."""

    intersection_id: str
    from_ms: int
    to_ms: int
    groups: tuple[tuple[int, tuple[Segment, ...]], ...]
    modes: tuple[Segment, ...]

    def as_dict(self, intersection: Intersection | None = None) -> dict[str, object]:
        """JSON for ``GET /api/v1/engineer/controllers/{id}/timing``."""
        registered = {} if intersection is None else {g.sg: g for g in intersection.groups}
        groups: list[dict[str, object]] = []
        for sg, segments in self.groups:
            entry: dict[str, object] = {"sg": sg}
            info = registered.get(sg)
            if info is not None:
                entry["approach"] = info.approach.value
                entry["movement"] = info.movement.value
            entry["segments"] = [segment.as_dict() for segment in segments]
            groups.append(entry)
        return {
            "id": self.intersection_id,
            "from_ms": self.from_ms,
            "to_ms": self.to_ms,
            "groups": groups,
            "modes": [segment.as_dict() for segment in self.modes],
        }


@dataclass(slots=True)
class TimingHistory:
    """The last ``window_ms`` of every intersection's group states, bounded in memory."""

    window_ms: int = 15 * 60 * 1000
    max_segments: int = 2048
    _by_id: dict[str, _IntersectionHistory] = field(default_factory=dict, init=False)

    def register(self, intersections: Iterable[Intersection]) -> None:
        """Make room for every intersection of the registry (groups in registry order)."""
        for intersection in intersections:
            self._by_id[intersection.id] = _IntersectionHistory(
                {g.sg: self._ring() for g in intersection.groups}, self._ring()
            )

    def _ring(self) -> _Ring:
        return _Ring(deque(maxlen=self.max_segments))

    def record(self, report: SpatReport, at_ms: int) -> None:
        """Note the states of an accepted report, held from ``at_ms`` (gateway time)."""
        history = self._by_id.get(report.intersection_id)
        if history is None:
            return
        if history.started_ms is None:
            history.started_ms = at_ms
        history.mode.set(at_ms, report.mode.value)
        states: dict[int, SignalState] = {g.sg: g.state for g in report.groups}
        for sg, ring in history.groups.items():
            state = states.get(sg)
            ring.set(at_ms, UNKNOWN if state is None else state.value)
        self._prune(history, at_ms)

    def unknown(self, intersection_id: str, at_ms: int) -> None:
        """From ``at_ms`` nothing is known (offline or stale): every group shows a gap."""
        history = self._by_id.get(intersection_id)
        if history is None or history.started_ms is None:
            return
        history.mode.set(at_ms, Mode.UNKNOWN.value)
        for ring in history.groups.values():
            ring.set(at_ms, UNKNOWN)
        self._prune(history, at_ms)

    def diagram(
        self, intersection_id: str, now_ms: int, span_ms: int | None = None
    ) -> TimingDiagram:
        """The states of the last ``span_ms`` (at most the window); KeyError for unknown ids."""
        history = self._by_id[intersection_id]
        span = self.window_ms if span_ms is None else max(0, min(span_ms, self.window_ms))
        start = now_ms - span
        self._prune(history, now_ms)
        groups = tuple(
            (sg, tuple(ring.segments(start, now_ms))) for sg, ring in history.groups.items()
        )
        return TimingDiagram(
            intersection_id, start, now_ms, groups, tuple(history.mode.segments(start, now_ms))
        )

    def _prune(self, history: _IntersectionHistory, now_ms: int) -> None:
        before = now_ms - self.window_ms
        history.mode.prune(before)
        for ring in history.groups.values():
            ring.prune(before)
