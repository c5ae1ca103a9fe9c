"""The benchmark's controllers: publishes the city's SPaT stream through the broker, and logs when.

``--mode city`` replays ``simulator.plan`` at ``--speed`` (1.0 = real speed): each of the 235
controllers publishes on every change and at least once per second, exactly the payloads the
simulator's controllers send (``IntersectionPlan.report``), over one MQTT connection.
``--mode rate`` publishes ``--rate`` synthetic messages per second round-robin over the city,
each one a change (its remaining time moves), for a controlled load.

Every message's publish time (CLOCK_REALTIME ns, taken just before the write) is logged into a
shared-memory ring (layout in bench/c/common.h) keyed by intersection number and ``seq``, so the
load generator can turn each delivered view into a publish -> client latency.

Runs until ``--seconds`` have passed or stdin closes / says STOP; prints ``PUBLISHING`` once
the first second of messages is out and ``PUBLISHED {json}`` at the end.
"""

from __future__ import annotations

import argparse
import heapq
import json
import mmap
import os
import select
import struct
import sys
import time
from pathlib import Path

from bench.mqttwire import Publisher
from signal_gateway.core.registry import load_registry
from signal_gateway.testing import G, spat_payload
from simulator.plan import build_city_plan

PUBLOG_SLOTS = 1024
PUBLOG_RING = 64
PUBLOG_BYTES = PUBLOG_SLOTS * PUBLOG_RING * 16


def slot_of(intersection_id: str) -> int:
    """The publish-log slot of an id: its number (YT001 -> 1)."""
    digits = "".join(ch for ch in intersection_id if ch.isdigit())
    return int(digits) % PUBLOG_SLOTS if digits else 0


def create_publog(path: Path) -> None:
    """An empty publish log of the right size."""
    path.write_bytes(b"\x00" * PUBLOG_BYTES)


def reset_publog(path: Path) -> None:
    """Zero the log in place (never truncate: readers have it mapped)."""
    fd = os.open(path, os.O_WRONLY)
    try:
        os.pwrite(fd, b"\x00" * PUBLOG_BYTES, 0)
    finally:
        os.close(fd)


class PubLog:
    """Writer side of the publish log."""

    def __init__(self, path: Path) -> None:
        fd = os.open(path, os.O_RDWR)
        self.map = mmap.mmap(fd, PUBLOG_BYTES)
        os.close(fd)

    def record(self, slot: int, seq: int, pub_ns: int) -> None:
        """Publish time first, then seq: a reader that matches the seq sees the new time."""
        offset = (slot * PUBLOG_RING + seq % PUBLOG_RING) * 16
        struct.pack_into("<q", self.map, offset + 8, pub_ns)
        struct.pack_into("<q", self.map, offset, seq)


def stop_requested() -> bool:
    """Whether stdin says STOP or has closed (non-blocking)."""
    ready, _, _ = select.select([sys.stdin], [], [], 0)
    if not ready:
        return False
    line = sys.stdin.readline()
    return line == "" or line.strip() == "STOP"


def main(argv: list[str] | None = None) -> int:
    """Publish until told to stop."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--broker", default="127.0.0.1:1883", help="host:port")
    parser.add_argument("--publog", required=True, type=Path)
    parser.add_argument("--mode", choices=["city", "rate"], default="city")
    parser.add_argument("--speed", type=float, default=1.0)
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--seconds", type=float, default=120.0, help="hard stop")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--intersections", default="intersections.yaml")
    args = parser.parse_args(argv)
    host, _, port = args.broker.rpartition(":")
    registry = load_registry(args.intersections)
    log = PubLog(args.publog)
    pub = Publisher(host, int(port), f"bench-publisher-{os.getpid()}")
    start_ms = time.time_ns() // 1_000_000
    deadline = time.monotonic() + args.seconds
    plan = build_city_plan(list(registry), seed=args.seed, epoch_ms=start_ms, speed=args.speed)
    plans = list(plan)
    ids = [p.id for p in plans]
    topics = [f"signals/{i}/spat".encode() for i in ids]
    slots = [slot_of(i) for i in ids]
    seqs = [0] * len(plans)
    groups = [[g.sg for g in p.intersection.groups] for p in plans]
    if args.mode == "city":
        due = [(start_ms + (i * 1000) // len(plans), i) for i in range(len(plans))]
    else:  # one global schedule: message k at start + k / rate, to intersection k % n
        due = [(start_ms, 0)]
    heapq.heapify(due)
    sent = 0
    announced = False
    next_check = time.monotonic()
    rate_cursor = 0
    while True:
        now_mono = time.monotonic()
        if now_mono >= deadline:
            break
        if now_mono >= next_check:
            next_check = now_mono + 0.1
            if stop_requested():
                break
            if not announced and time.time_ns() // 1_000_000 - start_ms > 1000:
                print("PUBLISHING", flush=True)
                announced = True
        at, index = due[0]
        now_ms = time.time_ns() // 1_000_000
        if at > now_ms:
            time.sleep(min(0.05, (at - now_ms) / 1000))
            continue
        heapq.heappop(due)
        seqs[index] += 1
        seq = seqs[index]
        if args.mode == "city":
            payload = plans[index].report(now_ms, seq)
            nxt = plans[index].next_change_after(now_ms)
            heartbeat = now_ms + 1000
            heapq.heappush(due, (heartbeat if nxt is None else min(nxt, heartbeat), index))
        else:
            remaining = 10.0 + (seq % 50)
            payload = spat_payload(
                ids[index],
                seq,
                now_ms,
                [
                    G(sg, "green" if k == 0 else "red", remaining)
                    for k, sg in enumerate(groups[index])
                ],
            )
            rate_cursor += 1
            at_ms = start_ms + round(rate_cursor * 1000 / args.rate)
            heapq.heappush(due, (at_ms, rate_cursor % len(plans)))
        log.record(slots[index], seq, time.time_ns())
        pub.publish(topics[index], payload)
        sent += 1
    seconds = time.time_ns() / 1e9 - start_ms / 1000
    pub.close()
    print("PUBLISHED " + json.dumps({"messages": sent, "seconds": round(seconds, 3)}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
