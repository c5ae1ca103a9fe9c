"""Faults a simulated controller can be told to commit, described and rendered without any I/O.

Pure: no asyncio, no MQTT, no clock. :class:`Faults` is the fault state of one controller (what
the test asked for); :func:`render` turns one tick of a plan plus that state into the payloads to
publish, in order. The I/O layer (``simulator.controllers``) only carries out what is decided
here, plus the faults that are about the connection itself (drop, resume, restart).

Catalogue (docs/simulator.md, issue 5's fault suite):

* ``mode``: flash (vehicles flashing yellow, pedestrians dark), dark (everything dark), fault
  (vehicles flashing red, pedestrians dark), manual and preempt (the lamps follow the plan, but the
  controller cannot know when an officer or a fire engine will release them): every remaining time
  is null in any mode but normal.
* ``skew_ms``: added to ``ts_ms`` (the controller's clock is wrong; remaining times are not).
* ``silent``: connected (keepalive keeps running), publishes nothing.
* ``duplicate``: the next report is published twice with the same ``seq``.
* ``reorder``: the next report is held back and published after the one that follows it.
* ``conflict``: two groups that conflict are both reported green (for the engineers' rules).
* malformed payloads (:func:`malformed`, kinds in :data:`MALFORMED_KINDS`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, replace

from signal_gateway.core.model import Intersection, Mode, Movement, SignalState
from signal_gateway.testing import G, spat_dict, spat_payload

__all__ = [
    "HUGE_BYTES",
    "MALFORMED_KINDS",
    "Faults",
    "apply_mode",
    "conflicting_pair",
    "malformed",
    "render",
    "with_conflict",
]

HUGE_BYTES = 10 * 1024 * 1024
"""Size of the ``huge`` malformed payload (issue 5: 10 MB)."""

MALFORMED_KINDS: dict[str, str] = {
    "invalid_json": "truncated JSON",
    "not_utf8": "bytes that are not UTF-8",
    "empty": "an empty payload",
    "nan": "remaining_s NaN",
    "infinity": "remaining_s Infinity",
    "negative_time": "remaining_s -5",
    "huge_time": "remaining_s 1e12 (31 700 years)",
    "unknown_state": "a state that does not exist ('purple')",
    "unknown_group": "a signal group the registry does not know (sg 250)",
    "wrong_id": "an id other than the topic's",
    "missing_field": "no ts_ms",
    "wrong_version": "v 2",
    "deeply_nested": "JSON nested 5 000 levels deep (10 kB: under the size limit)",
    "huge": "a valid-looking report padded to 10 MB",
}
"""Every kind :func:`malformed` knows, with what it sends."""


@dataclass(slots=True)
class Faults:
    """The faults one controller is currently told to commit."""

    mode: Mode = Mode.NORMAL
    skew_ms: int = 0
    silent: bool = False
    conflict: bool = False
    duplicate: int = 0  # reports still to be published twice
    reorder: bool = False  # hold the next report back and send it after its successor
    held: bytes | None = None  # the report held back by ``reorder``

    def clear(self) -> None:
        """Back to a healthy controller."""
        self.mode = Mode.NORMAL
        self.skew_ms = 0
        self.silent = False
        self.conflict = False
        self.duplicate = 0
        self.reorder = False
        self.held = None


def apply_mode(intersection: Intersection, groups: Sequence[G], mode: Mode) -> list[G]:
    """What the groups show in ``mode``: normal keeps the plan, any other mode has no times."""
    if mode is Mode.NORMAL:
        return list(groups)
    out = []
    for group in groups:
        registry_group = intersection.group(group.sg)
        pedestrian = registry_group is not None and registry_group.movement is Movement.PEDESTRIAN
        state: SignalState | str
        if mode is Mode.FLASH:
            state = SignalState.DARK if pedestrian else SignalState.FLASHING_YELLOW
        elif mode is Mode.FAULT:
            state = SignalState.DARK if pedestrian else SignalState.FLASHING_RED
        elif mode in (Mode.DARK, Mode.UNKNOWN):
            state = SignalState.DARK
        else:  # manual, preempt: lamps as they are, end unknown
            state = group.state
        out.append(G(group.sg, state, None))
    return out


def conflicting_pair(intersection: Intersection, groups: Sequence[G]) -> tuple[int, int] | None:
    """A pair (green, other) of conflicting groups, the first one green now if possible."""
    pairs = sorted(tuple(sorted(pair)) for pair in intersection.conflicts if len(pair) == 2)
    if not pairs:
        return None
    green = {g.sg for g in groups if g.state in (SignalState.GREEN, SignalState.GREEN.value)}
    for a, b in pairs:
        if a in green:
            return a, b
        if b in green:
            return b, a
    a, b = pairs[0]
    return a, b


def with_conflict(intersection: Intersection, groups: Sequence[G]) -> list[G]:
    """The groups with a conflicting pair both green (the second copies the first's times)."""
    pair = conflicting_pair(intersection, groups)
    if pair is None:
        return list(groups)
    first, second = pair
    by_sg = {g.sg: g for g in groups}
    template = by_sg[first]
    if template.state not in (SignalState.GREEN, SignalState.GREEN.value):
        template = G(first, SignalState.GREEN, None)
    return [replace(template, sg=g.sg) if g.sg in (first, second) else g for g in groups]


def render(
    intersection: Intersection,
    plan_groups: Sequence[G],
    now_ms: int,
    seq: int,
    faults: Faults,
) -> tuple[list[bytes], int]:
    """The payloads to publish for one tick, in order, and the next ``seq``.

    ``plan_groups`` is what the plan shows at ``now_ms`` (``IntersectionPlan.groups_at``).
    A silent controller publishes nothing and keeps its ``seq``.
    """
    if faults.silent:
        return [], seq
    groups = apply_mode(intersection, plan_groups, faults.mode)
    if faults.conflict:
        groups = with_conflict(intersection, groups)
    payload = spat_payload(
        intersection.id, seq, now_ms + faults.skew_ms, groups, mode=faults.mode.value
    )
    seq += 1
    out: list[bytes] = []
    if faults.reorder and faults.held is None:
        faults.held = payload  # sent after the next one
        faults.reorder = False
        return out, seq
    out.append(payload)
    if faults.duplicate > 0:
        faults.duplicate -= 1
        out.append(payload)
    if faults.held is not None:
        out.append(faults.held)
        faults.held = None
    return out, seq


def malformed(
    kind: str,
    intersection: Intersection,
    plan_groups: Sequence[G],
    now_ms: int,
    seq: int,
    *,
    other_id: str = "XX999",
    size: int = HUGE_BYTES,
) -> bytes:
    """A payload of the given ``kind`` (a key of :data:`MALFORMED_KINDS`) for this controller."""
    iid = intersection.id
    groups = list(plan_groups) or [G(1, SignalState.RED, 1.0)]
    first = groups[0]
    if kind == "invalid_json":
        return spat_payload(iid, seq, now_ms, groups)[:-7]
    if kind == "not_utf8":
        return b'{"v":1,"id":"\xff\xfe' + iid.encode() + b'"}'
    if kind == "empty":
        return b""
    if kind in ("nan", "infinity", "negative_time", "huge_time", "unknown_state"):
        bad = {
            "nan": replace(first, remaining_s=float("nan"), min_remaining_s=None),
            "infinity": replace(first, remaining_s=float("inf"), max_remaining_s=None),
            "negative_time": replace(first, remaining_s=-5.0, min_remaining_s=-5.0),
            "huge_time": replace(first, remaining_s=1e12, max_remaining_s=1e12),
            "unknown_state": replace(first, state="purple"),
        }[kind]
        return spat_payload(iid, seq, now_ms, [bad, *groups[1:]])
    if kind == "unknown_group":
        return spat_payload(iid, seq, now_ms, [*groups, G(250, SignalState.RED, 3.0)])
    if kind == "wrong_id":
        return spat_payload(other_id, seq, now_ms, groups)
    if kind == "missing_field":
        body = spat_dict(iid, seq, now_ms, groups)
        del body["ts_ms"]
        return _dumps(body)
    if kind == "wrong_version":
        body = spat_dict(iid, seq, now_ms, groups)
        body["v"] = 2
        return _dumps(body)
    if kind == "deeply_nested":
        depth = 5_000
        return b'{"v":1,"groups":' + b"[" * depth + b"]" * depth + b"}"
    if kind == "huge":
        body = spat_dict(iid, seq, now_ms, groups)
        text = _dumps(body)
        pad = max(0, size - len(text) - len(',"pad":""'))
        body["pad"] = "x" * pad
        return _dumps(body)
    raise ValueError(f"unknown malformed kind {kind!r}; known: {', '.join(MALFORMED_KINDS)}")


def _dumps(body: dict[str, object]) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode()
