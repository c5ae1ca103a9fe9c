"""The hub's own cost per client, without any network: ``Hub.flush`` against no-op sinks.

Separates what ``Hub.flush`` spends per client (subscription checks, backlog, counters, the
sink calls) from what the socket write costs, and compares it with the bare loop a flush cannot
go below (``for sink in sinks: if sink.ready(): sink.send(frame)``). Prints JSON; pin it with
``--cpu``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

from signal_gateway.core.registry import load_registry
from signal_gateway.core.views import IntersectionView
from signal_gateway.fanout.hub import EVERYTHING, Hub


class NullSink:
    """A sink that takes everything and does nothing."""

    __slots__ = ()

    def ready(self) -> bool:
        """Always ready."""
        return True

    def send(self, frame: bytes) -> None:
        """Drop the frame."""

    def buffered_bytes(self) -> int:
        """Nothing buffered."""
        return 0

    def close(self, code: int, reason: str) -> None:
        """Nothing to close."""


def measure(clients: int, flushes: int = 50) -> dict[str, float]:
    """Microseconds per client per flush: the hub, and the bare loop."""
    registry = load_registry("intersections.yaml")
    from signal_gateway.core.city import City

    city = City(registry)
    views: dict[str, IntersectionView] = {i.id: city.view(i.id) for i in registry}
    hub = Hub(views.__getitem__, registry.ids)
    sinks = [NullSink() for _ in range(clients)]
    for sink in sinks:
        hub.subscribe(hub.add(sink), EVERYTHING, 0)
    ids = list(registry.ids)
    started = time.process_time()
    for k in range(flushes):
        changed = {ids[(k * 5 + j) % len(ids)] for j in range(5)}
        hub.flush(changed, k)
    hub_s = time.process_time() - started
    frame = b"x" * 100
    started = time.process_time()
    for _ in range(flushes):
        for sink in sinks:
            if sink.ready():
                sink.send(frame)
    bare_s = time.process_time() - started
    per = clients * flushes
    return {
        "clients": float(clients),
        "hub_us_per_client": hub_s / per * 1e6,
        "bare_loop_us_per_client": bare_s / per * 1e6,
    }


def main(argv: list[str] | None = None) -> int:
    """``python -m bench.hub_micro [--clients N] [--cpu C]``"""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--clients", type=int, default=5000)
    parser.add_argument("--cpu", type=int, default=None)
    args = parser.parse_args(argv)
    if args.cpu is not None:
        os.sched_setaffinity(0, {args.cpu})
    print(json.dumps(measure(args.clients)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
