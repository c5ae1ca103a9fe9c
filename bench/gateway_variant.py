"""``signal-gateway serve`` with one thing changed, to measure a proposal before making it.

``python -m bench.gateway_variant [--ws-deflate] [--min-gap-ms N] serve --broker ... --port ...``
runs the real CLI (``signal_gateway.cli.main``); everything not named here (settings, app, hub,
sinks, uvloop) is exactly what ``serve`` runs.

* ``--ws-deflate``: uvicorn's ``ws_per_message_deflate`` on (cli.py turns it off);
* ``--min-gap-ms N``: the flush loop leaves the event loop at least N ms between flushes, so the
  MQTT messages that arrived during a long flush are ingested before the next one (aiomqtt reads
  one packet per loop iteration; with ``sleep(0)`` between back-to-back flushes they pile up);
* ``--chunk N``: one flush is cut into slices of N clients with the event loop run between
  slices (``await asyncio.sleep(0)``), so MQTT messages are ingested while a long fan-out runs
  instead of waiting for all of it. Emulated here by handing the hub one slice of its client
  table at a time; a real change would be a ``Hub.flush`` that yields between slices.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from typing import Any

import uvicorn

from signal_gateway import cli
from signal_gateway.gateway import Gateway


def gap_flush_loop(min_gap_s: float) -> Any:
    """``Gateway.flush_loop`` with a minimum pause after each flush (otherwise identical)."""

    async def flush_loop(self: Gateway) -> None:
        period = self.settings.flush_ms / 1000
        tick = min(period, 0.1)
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=tick)
            self._wake.clear()
            started = time.perf_counter()
            self.flush_once()
            elapsed = time.perf_counter() - started
            self.flush_seconds += elapsed
            await asyncio.sleep(max(min_gap_s, period - elapsed))

    return flush_loop


def chunked_flush_loop(chunk: int) -> Any:
    """``Gateway.flush_loop`` whose fan-out yields to the event loop every ``chunk`` clients."""

    async def flush_loop(self: Gateway) -> None:
        period = self.settings.flush_ms / 1000
        tick = min(period, 0.1)
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=tick)
            self._wake.clear()
            started = time.perf_counter()
            now = self.clock()
            for event in self.city.tick(now):
                self.record(event)
            changed = self.city.take_changed()
            hub = self.hub
            everyone = hub.clients
            items = list(everyone.items())
            for at in range(0, len(items), chunk):
                hub.clients = dict(items[at : at + chunk])
                try:
                    report = hub.flush(changed, now)
                finally:
                    hub.clients = everyone
                for client in report.evicted:
                    everyone.pop(client.number, None)
                self.frames_sent += report.clients_sent
                self.evictions += len(report.evicted)
                if at + chunk < len(items):
                    await asyncio.sleep(0)
            self.flushes += 1
            elapsed = time.perf_counter() - started
            self.flush_seconds += elapsed
            await asyncio.sleep(max(0.0, period - elapsed))

    return flush_loop


def main(argv: list[str]) -> int:
    """Strip our flags, patch, hand the rest to the real CLI."""
    rest: list[str] = []
    deflate = False
    gap_ms = 0.0
    args = iter(argv)
    for arg in args:
        if arg == "--ws-deflate":
            deflate = True
        elif arg == "--min-gap-ms":
            gap_ms = float(next(args))
        elif arg == "--chunk":
            Gateway.flush_loop = chunked_flush_loop(int(next(args)))  # type: ignore[method-assign]
        else:
            rest.append(arg)
    if deflate:
        original = uvicorn.Config.__init__

        def patched(self: uvicorn.Config, *a: Any, **kw: Any) -> None:
            kw["ws_per_message_deflate"] = True
            original(self, *a, **kw)

        uvicorn.Config.__init__ = patched  # type: ignore[method-assign]
    if gap_ms:
        Gateway.flush_loop = gap_flush_loop(gap_ms / 1000)  # type: ignore[method-assign]
    return cli.main(rest)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
