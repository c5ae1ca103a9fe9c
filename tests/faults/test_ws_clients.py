"""Scenarios 12 and 16: WebSocket clients that do not read, and clients that vanish.

Bounds (docs/reliability.md): a client that does not read is evicted with 1013 as soon as a
flush finds its send buffer over ``ws_max_buffered_bytes`` (within ``EVICT_MS`` here), while a
healthy client's latency stays under ``HEALTHY_P99_MS``; a client that vanishes is reaped within
``ws_ping_interval_s + ws_ping_timeout_s`` plus slack.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import statistics
from collections.abc import AsyncIterator

import pytest
from websockets.exceptions import InvalidState

from signal_gateway.core.registry import Registry
from tests.faults.conftest import Figures
from tests.faults.rawws import RawWebSocket
from tests.faults.support import Memory, gateway, judged_client, simulator, wall_ms
from tests.support.gateway import RunningGateway, until
from tests.support.mosquitto import MosquittoProcess

pytestmark = pytest.mark.broker

IDS = [f"YT{n:03d}" for n in range(1, 9)]
BOUND = 512 * 1024
EVICT_MS = 10_000
HEALTHY_P99_MS = 250


@contextlib.asynccontextmanager
async def pestering(client: RawWebSocket, ops: list[str], per_s: float) -> AsyncIterator[None]:
    """Send the ``ops`` back to back ``per_s`` times a second, never reading."""

    async def loop() -> None:
        with contextlib.suppress(ConnectionError, OSError, InvalidState):
            while True:
                for op in ops:
                    client.send_text(op)
                await asyncio.sleep(1 / per_s)  # the client's pace, not a synchronisation

    task = asyncio.create_task(loop())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def hub_client(gw: RunningGateway, peer_port: int) -> object | None:
    """The hub's client for a local port (None once it is gone)."""
    for client in gw.gateway.hub.clients.values():
        if client.peer.endswith(f":{peer_port}"):
            return client
    return None


async def test_slow_readers_are_evicted_without_delaying_others(
    mosquitto: MosquittoProcess, registry: Registry, figures: Figures
) -> None:
    """Clients that never read are evicted (1013) over the byte bound; others keep their latency."""
    all_ = json.dumps({"op": "subscribe", "all": True})
    quiet = json.dumps({"op": "subscribe", "ids": ["YT200"]})  # an intersection nobody runs
    async with (
        simulator(registry, mosquitto.port, IDS, speed=4) as sim,
        gateway(mosquitto.url, registry, ws_max_buffered_bytes=BOUND) as gw,
        judged_client(gw, sim.truth) as judge,
        contextlib.AsyncExitStack() as stack,
    ):
        await judge.wait_timed(IDS)
        await until(lambda: len(judge.latencies) >= 20, 10)
        before = list(judge.latencies)
        judge.latencies.clear()
        # A: follows everything and re-subscribes, never reading. B: asks for everything and
        # then for one quiet intersection, round and round: its subscription never changes
        # again, so only a check of every client's buffer can find it.
        greedy = await stack.enter_async_context(RawWebSocket(gw.ws, rcvbuf=4096))
        sneaky = await stack.enter_async_context(RawWebSocket(gw.ws, rcvbuf=4096))
        ports = [c.writer.get_extra_info("sockname")[1] for c in (greedy, sneaky) if c.writer]
        started = wall_ms()

        async def evicted(client: RawWebSocket, port: int) -> tuple[int, int | None]:
            """When the hub let the client go, and the close code it then reads at once."""
            await until(lambda: hub_client(gw, port) is None, EVICT_MS / 1000)
            return wall_ms() - started, await client.close_code(5)

        async with (
            Memory() as memory,
            pestering(greedy, [all_], 4),
            pestering(sneaky, [all_, quiet], 2),
        ):
            results = await asyncio.gather(
                *(evicted(c, p) for c, p in zip((greedy, sneaky), ports, strict=True))
            )
        evicted_ms = max(took for took, _ in results)
        codes = [code for _, code in results]
        evictions = gw.gateway.evictions
        await until(lambda: len(judge.latencies) >= 20, 10)
        during = list(judge.latencies)
    judge.assert_clean(min_checked=20)
    assert codes == [1013, 1013]
    assert evictions >= 2
    p99 = sorted(during)[int(len(during) * 0.99) - 1]
    assert p99 <= HEALTHY_P99_MS, (before, during)
    assert memory.growth_mb < 64
    figures.record(
        "12 slow WebSocket readers",
        detection_ms=evicted_ms,
        recovery_ms=0,
        peak_rss_mb=memory.peak_mb,
        rss_growth_mb=memory.growth_mb,
        wrong_numbers=len(judge.wrong),
        numbers_checked=judge.checked,
        notes=f"both evicted (1013) over {BOUND // 1024} KiB; healthy client latency "
        f"p50 {statistics.median(during):.0f} ms, p99 {p99} ms "
        f"(before: p50 {statistics.median(before):.0f} ms)",
    )


async def test_vanished_client_is_reaped_by_ping_timeout(
    mosquitto: MosquittoProcess, registry: Registry, figures: Figures
) -> None:
    """A client that stops answering (no close, no FIN) is dropped by the ping timeout."""
    interval, timeout = 0.5, 0.5
    async with (
        Memory() as memory,
        gateway(
            mosquitto.url, registry, ws_ping_interval_s=interval, ws_ping_timeout_s=timeout
        ) as gw,
        contextlib.AsyncExitStack() as stack,
    ):
        ghosts = [await stack.enter_async_context(RawWebSocket(gw.ws)) for _ in range(5)]
        for ghost in ghosts:
            ghost.send_text(json.dumps({"op": "subscribe", "all": True}))
        hub = gw.gateway.hub
        await until(lambda: len(hub) == 5, 2)
        gone = wall_ms()  # from now on they neither read nor answer pings
        await until(lambda: len(hub) == 0, interval + timeout + 3)
        reaped = wall_ms() - gone
        codes = [await g.close_code(5) for g in ghosts]
    assert reaped <= (interval + timeout) * 1000 + 1000
    assert all(code == 1011 for code in codes), codes  # "keepalive ping timeout"
    figures.record(
        "16 vanished client (no close)",
        detection_ms=reaped,
        peak_rss_mb=memory.peak_mb,
        rss_growth_mb=memory.growth_mb,
        notes=f"reaped by ping timeout (interval {interval} s + timeout {timeout} s), code 1011",
    )
