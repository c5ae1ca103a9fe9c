"""All 235 controllers publishing at 10 Hz, lean, in a process of their own (scenario 11).

``python -m tests.faults.burst_sim --port P --epoch-ms E --seconds S`` opens one MQTT connection
per controller (client id ``sim-<id>``, a retained ``online`` status) and prints ``ready``. Each
controller then publishes its report at every change and at least every 900 ms (as the
simulator does) for ``--calm-s``; prints ``burst`` and publishes every ``--period-ms`` (100:
10 Hz) for ``S`` seconds; prints ``calm`` and goes back to 900 ms for ``--calm-s``; and prints
``published N`` (the burst's messages). Reports are stamped with the time they are made
(``IntersectionPlan.report``, exactly what the simulator's controllers send).

Why not ``simulator.Simulator``: at 2 350 messages a second its per-message asyncio and paho
overhead takes a whole core, and on a 2-core machine shared with the broker and the gateway the
controllers then publish late, which no gateway can tell from clock offset. Real controllers
are 235 machines; this publisher costs a fraction of a core. The plans depend only on the
registry, seed, epoch and speed, so the test rebuilds the same ground truth.
"""

from __future__ import annotations

import argparse
import heapq
import socket
import sys
import time
from collections.abc import Sequence

from signal_gateway.core.registry import load_registry
from signal_gateway.testing import status_payload
from simulator.plan import build_city_plan
from tests.conftest import REPO


def _length(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n % 128, n // 128
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _string(text: bytes) -> bytes:
    return len(text).to_bytes(2, "big") + text


def connect(port: int, client_id: str) -> socket.socket:
    """An MQTT 3.1.1 connection (clean session, keepalive 0), CONNACK checked."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    body = _string(b"MQTT") + b"\x04\x02\x00\x00" + _string(client_id.encode())
    sock.sendall(b"\x10" + _length(len(body)) + body)
    ack = sock.recv(4)
    if len(ack) < 4 or ack[0] != 0x20 or ack[3] != 0:
        raise ConnectionError(f"broker refused {client_id}: {ack!r}")
    return sock


def publish(sock: socket.socket, topic: str, payload: bytes, retain: bool = False) -> None:
    """One QoS 0 PUBLISH."""
    body = _string(topic.encode()) + payload
    sock.sendall((b"\x31" if retain else b"\x30") + _length(len(body)) + body)


def now_ms() -> int:
    """The clock every controller stamps its reports with, Unix ms."""
    return time.time_ns() // 1_000_000


def main(argv: Sequence[str] | None = None) -> int:
    """Connect every controller, publish for the given time, report the count."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--epoch-ms", type=int, required=True)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--period-ms", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--calm-s", type=float, default=8.0)
    args = parser.parse_args(argv)
    registry = load_registry(REPO / "intersections.yaml")
    plans = list(build_city_plan(list(registry), seed=args.seed, epoch_ms=args.epoch_ms))
    socks = [connect(args.port, f"sim-{plan.id}") for plan in plans]
    for plan, sock in zip(plans, socks, strict=True):
        publish(sock, f"signals/{plan.id}/status", status_payload(True, now_ms()), retain=True)
    print("ready", flush=True)
    calm_ms = round(args.calm_s * 1000)
    start = now_ms()
    burst_from = start + calm_ms
    burst_to = burst_from + round(args.seconds * 1000)
    end = burst_to + calm_ms
    due = [(start + i * 900 // len(plans), i) for i in range(len(plans))]
    heapq.heapify(due)
    seqs = [0] * len(plans)
    published = 0
    phase = "calm"
    while True:
        at, i = heapq.heappop(due)
        if at >= end:
            break
        wait = (at - now_ms()) / 1000
        if wait > 0:
            time.sleep(wait)  # this publisher's pacing
        plan, now = plans[i], now_ms()
        if phase == "calm" and burst_from <= now < burst_to:
            phase = "burst"
            print("burst", flush=True)
        elif phase == "burst" and now >= burst_to:
            phase = "after"
            print("calm", flush=True)
        seqs[i] += 1
        publish(socks[i], f"signals/{plan.id}/spat", plan.report(now, seqs[i]))
        published += phase == "burst"
        change = plan.next_change_after(now)
        nxt = now + (args.period_ms if phase == "burst" else 900)
        heapq.heappush(due, (nxt if change is None else min(change, nxt), i))
    for sock in socks:
        sock.close()  # no DISCONNECT: the broker publishes nothing (no Will was set)
    print(f"published {published}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
