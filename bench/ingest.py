"""Ingest throughput, in-process: validated controller messages per second on one core.

Pre-builds real controller payloads (``simulator.plan`` at real speed: every change and a 1 Hz
heartbeat, each with its own seq and ts_ms), then times two loops over them with the clock
passed in (receive time = ts_ms + 2 ms):

* ``parse+judge``: ``wire.parse_spat`` + ``City.on_spat`` (validation at the edge + the core);
* ``handle``: ``MqttIngest.handle`` (topic parsing, counters, outcome callback as well).

No broker, no network: what the process could take if MQTT cost nothing. Prints JSON.
"""

from __future__ import annotations

import argparse
import heapq
import json
import os
import sys
import time
from dataclasses import dataclass

from signal_gateway.core.city import City
from signal_gateway.core.model import Rejection
from signal_gateway.core.registry import Registry, load_registry
from signal_gateway.ingest import wire
from signal_gateway.ingest.mqtt import MqttIngest
from signal_gateway.settings import BrokerURL
from simulator.plan import build_city_plan

START_MS = 1_764_000_000_000


@dataclass(frozen=True)
class Message:
    """One pre-built controller message."""

    topic: str
    intersection_id: str
    payload: bytes
    rx_ms: int


def build_messages(registry: Registry, seconds: float, seed: int = 1) -> list[Message]:
    """What the city's controllers publish over ``seconds`` at real speed, in order."""
    plans = list(build_city_plan(list(registry), seed=seed, epoch_ms=START_MS))
    seqs = [0] * len(plans)
    due = [(START_MS + (i * 1000) // len(plans), i) for i in range(len(plans))]
    heapq.heapify(due)
    end = START_MS + round(seconds * 1000)
    out: list[Message] = []
    while due[0][0] < end:
        at, i = heapq.heappop(due)
        seqs[i] += 1
        plan = plans[i]
        out.append(Message(f"signals/{plan.id}/spat", plan.id, plan.report(at, seqs[i]), at + 2))
        nxt = plan.next_change_after(at)
        heapq.heappush(due, (at + 1000 if nxt is None else min(nxt, at + 1000), i))
    return out


def time_parse_judge(registry: Registry, messages: list[Message]) -> tuple[float, int]:
    """Seconds for parse_spat + on_spat over all messages; and how many were accepted."""
    city = City(registry)
    accepted = 0
    started = time.process_time()
    for m in messages:
        report = wire.parse_spat(m.intersection_id, m.payload)
        if isinstance(report, Rejection):
            continue
        accepted += city.on_spat(report, m.rx_ms).accepted
    return time.process_time() - started, accepted


def time_handle(registry: Registry, messages: list[Message]) -> tuple[float, int]:
    """Seconds for ``MqttIngest.handle`` over all messages; and how many were accepted."""
    city = City(registry)
    clock = [START_MS]
    ingest = MqttIngest(city, BrokerURL("127.0.0.1", 1), clock=lambda: clock[0])
    started = time.process_time()
    for m in messages:
        clock[0] = m.rx_ms
        ingest.handle(m.topic, m.payload)
    return time.process_time() - started, ingest.stats.results.get("accepted", 0)


def measure(registry: Registry, seconds: float = 60.0, repeats: int = 3) -> dict[str, float]:
    """Best of ``repeats`` for both loops, in messages per CPU second."""
    messages = build_messages(registry, seconds)
    best_pj = best_h = float("inf")
    accepted = 0
    for _ in range(repeats):
        elapsed, accepted = time_parse_judge(registry, messages)
        best_pj = min(best_pj, elapsed)
        elapsed, _ = time_handle(registry, messages)
        best_h = min(best_h, elapsed)
    return {
        "messages": float(len(messages)),
        "accepted": float(accepted),
        "parse_judge_per_s": len(messages) / best_pj,
        "handle_per_s": len(messages) / best_h,
        "us_per_message": best_pj / len(messages) * 1e6,
    }


def main(argv: list[str] | None = None) -> int:
    """``python -m bench.ingest [--cpu N] [--seconds S]``"""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--intersections", default="intersections.yaml")
    parser.add_argument("--seconds", type=float, default=60.0, help="city time to pre-build")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cpu", type=int, default=None, help="pin to this core")
    args = parser.parse_args(argv)
    if args.cpu is not None:
        os.sched_setaffinity(0, {args.cpu})
    result = measure(load_registry(args.intersections), args.seconds, args.repeats)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
