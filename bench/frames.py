"""The frames a full-city client receives at real speed, made in-process with a fake clock.

Drives ``simulator.plan`` (every controller publishes on every change and at least once per
second, exactly what ``IntersectionPlan.report`` says) through the real edge and core
(``wire.parse_spat`` + ``City.on_spat``) and the real hub (``Hub.flush`` every ``flush_ms``, one
full-city ``RecordingSink``). No I/O, deterministic from the seed, seconds of CPU for minutes
of city time. Used for:

* the frames the floor (bench/c/floor.c) and the transport comparison replay ("the same
  frames"), written with :func:`write_frames`;
* the bytes a full-city client needs per second, and what compression or a compact encoding
  would make of them (:func:`analyse`), to check the live measurement against.
"""

from __future__ import annotations

import heapq
import json
import struct
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from signal_gateway.core.city import City
from signal_gateway.core.model import Rejection
from signal_gateway.core.registry import Registry
from signal_gateway.fanout.hub import EVERYTHING, Hub
from signal_gateway.ingest import wire
from signal_gateway.testing import RecordingSink
from simulator.plan import build_city_plan

START_MS = 1_764_000_000_000
TRANSIT_MS = 2


@dataclass(frozen=True)
class Capture:
    """Update frames of one full-city client over ``seconds`` of city time."""

    frames: tuple[bytes, ...]
    snapshot: bytes
    seconds: float
    messages: int  # controller messages published in the window
    view_changes: int  # intersection views that changed (before coalescing)


def schedule(plans: Sequence[object], start_ms: int) -> list[tuple[int, int]]:
    """First publish time of every controller: heartbeats spread over the first second."""
    count = len(plans)
    return [(start_ms + (i * 1000) // max(1, count), i) for i in range(count)]


def capture(
    registry: Registry,
    seconds: float,
    *,
    seed: int = 1,
    speed: float = 1.0,
    flush_ms: int = 100,
    warmup_s: float = 5.0,
) -> Capture:
    """Run the city for ``warmup_s + seconds``; keep what a full-city client got after warm-up."""
    plan = build_city_plan(list(registry), seed=seed, epoch_ms=START_MS, speed=speed)
    plans = list(plan)
    city = City(registry)
    hub = Hub(city.view, registry.ids)
    sink = RecordingSink(soft_limit=1 << 62)
    client = hub.add(sink, "capture")
    seqs = [0] * len(plans)
    due = schedule(plans, START_MS)
    heapq.heapify(due)
    end_ms = START_MS + round((warmup_s + seconds) * 1000)
    measure_from = START_MS + round(warmup_s * 1000)
    next_flush = START_MS + flush_ms
    messages = changes = 0
    subscribed = False
    while due and due[0][0] < end_ms:
        at, index = heapq.heappop(due)
        while next_flush <= at:
            if next_flush >= measure_from and not subscribed:
                hub.subscribe(client, EVERYTHING, next_flush)
                sink.frames.clear()
                subscribed = True
            city.tick(next_flush)
            changed = city.take_changed()
            if subscribed:
                changes += len(changed)
            hub.flush(changed, next_flush)
            next_flush += flush_ms
        ip = plans[index]
        seqs[index] += 1
        payload = ip.report(at, seqs[index])
        report = wire.parse_spat(ip.id, payload)
        if not isinstance(report, Rejection):
            city.on_spat(report, at + TRANSIT_MS)
        if at >= measure_from:
            messages += 1
        nxt = ip.next_change_after(at)
        heartbeat = at + 1000
        heapq.heappush(due, (heartbeat if nxt is None else min(nxt, heartbeat), index))
    snapshot = hub.snapshot(EVERYTHING, end_ms)
    return Capture(tuple(sink.frames), snapshot, seconds, messages, changes)


def write_frames(frames: Iterable[bytes], path: Path) -> int:
    """Write frames as (uint32 little-endian length, bytes) records; returns how many."""
    count = 0
    with path.open("wb") as out:
        for frame in frames:
            out.write(struct.pack("<I", len(frame)))
            out.write(frame)
            count += 1
    return count


def ws_header_bytes(length: int) -> int:
    """Size of a server-to-client WebSocket frame header for a payload of ``length`` bytes."""
    return 2 if length < 126 else 4 if length < 65536 else 10


def deflate_shared(frame: bytes, wbits: int = 12, mem_level: int = 5) -> bytes:
    """permessage-deflate payload compressed on its own (no context): shareable by all clients."""
    packer = zlib.compressobj(6, zlib.DEFLATED, -wbits, mem_level)
    data = packer.compress(frame) + packer.flush(zlib.Z_SYNC_FLUSH)
    return data[:-4] if data.endswith(b"\x00\x00\xff\xff") else data


def compact_view(view: dict[str, object]) -> dict[str, object]:
    """A what-if encoding: drop nulls, and min/max/likely when they equal the exact end."""
    out: dict[str, object] = {k: v for k, v in view.items() if k != "groups" and v is not None}
    groups: list[dict[str, object]] = []
    raw_groups = view.get("groups")
    assert isinstance(raw_groups, list)
    for group in raw_groups:
        g = {k: v for k, v in group.items() if v is not None}
        end = g.get("end_ms")
        if end is not None:
            for key in ("min_end_ms", "max_end_ms", "likely_end_ms"):
                if g.get(key) == end:
                    del g[key]
        groups.append(g)
    out["groups"] = groups
    return out


def analyse(cap: Capture) -> dict[str, float]:
    """Per full-city client: frames/s and bytes/s as sent today and under the what-ifs."""
    secs = cap.seconds
    raw = sum(len(f) + ws_header_bytes(len(f)) for f in cap.frames)
    shared = 0
    for frame in cap.frames:
        packed = deflate_shared(frame)
        shared += len(packed) + ws_header_bytes(len(packed))
    stream = zlib.compressobj(6, zlib.DEFLATED, -12, 5)  # uvicorn's per-connection context
    takeover = 0
    for frame in cap.frames:
        data = stream.compress(frame) + stream.flush(zlib.Z_SYNC_FLUSH)
        takeover += len(data) - 4 + ws_header_bytes(len(data) - 4)
    compact = 0
    compact_shared = 0
    views = 0
    for frame in cap.frames:
        body = json.loads(frame)
        views += len(body["intersections"])
        body["intersections"] = [compact_view(v) for v in body["intersections"]]
        data = json.dumps(body, separators=(",", ":")).encode()
        compact += len(data) + ws_header_bytes(len(data))
        packed = deflate_shared(data)
        compact_shared += len(packed) + ws_header_bytes(len(packed))
    snap_packed = deflate_shared(cap.snapshot)
    return {
        "city_seconds": secs,
        "messages_per_s": cap.messages / secs,
        "view_changes_per_s": cap.view_changes / secs,
        "frames_per_s": len(cap.frames) / secs,
        "views_per_frame": views / max(1, len(cap.frames)),
        "mean_frame_bytes": raw / max(1, len(cap.frames)),
        "bytes_per_s": raw / secs,
        "bytes_per_s_deflate_shared": shared / secs,
        "bytes_per_s_deflate_context": takeover / secs,
        "bytes_per_s_compact": compact / secs,
        "bytes_per_s_compact_deflate": compact_shared / secs,
        "snapshot_bytes": float(len(cap.snapshot)),
        "snapshot_bytes_deflate": float(len(snap_packed)),
    }
