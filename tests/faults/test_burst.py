"""Scenario 11: all 235 controllers at 10 Hz for a minute (``SG_FAULTS_BURST_S`` to change it).

The controllers run in a process of their own (``tests.faults.burst_sim``): 8 s at their usual
pace, the burst, 8 s calm again. The gateway and a client following the whole city run here,
and every end the client is shown is judged against the same plans rebuilt from the seed and
epoch. Bounds (docs/reliability.md): the gateway takes 75 % of the reports or more (at most 15 %
dropped as too old), the client's update latency p99 stays under
``P99_MS``, memory growth under ``GROWTH_MB``, and no number is wrong.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import statistics
import sys
import time

import pytest

from signal_gateway.core.registry import Registry
from simulator.controllers import Truth
from simulator.plan import build_city_plan
from tests.conftest import REPO
from tests.faults.conftest import Figures
from tests.faults.support import Memory, any_time, gateway, judged_client, wall_ms
from tests.support.gateway import until
from tests.support.mosquitto import MosquittoProcess

pytestmark = pytest.mark.broker

BURST_S = float(os.environ.get("SG_FAULTS_BURST_S", "60"))
P99_MS = 500
GROWTH_MB = 100


async def lag_watch(lags: list[float], period_s: float = 0.05) -> None:
    """How late the event loop wakes a 50 ms sleep (the gateway shares this loop)."""
    while True:
        started = time.perf_counter()
        await asyncio.sleep(period_s)  # the sampling period of the lag probe
        lags.append((time.perf_counter() - started - period_s) * 1000)


async def test_burst_all_controllers_at_10_hz(
    mosquitto: MosquittoProcess, registry: Registry, figures: Figures
) -> None:
    """235 controllers at 10 Hz: every report taken in time, every number right, memory flat."""
    epoch = wall_ms() // 1000 * 1000
    truth = Truth(build_city_plan(list(registry), seed=7, epoch_ms=epoch))
    ids = [entry.id for entry in registry]
    controllers = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.faults.burst_sim",
        "--port",
        str(mosquitto.port),
        "--epoch-ms",
        str(epoch),
        "--seconds",
        str(BURST_S),
        stdout=asyncio.subprocess.PIPE,
        cwd=REPO,
    )
    lags: list[float] = []
    try:
        assert controllers.stdout is not None
        async with (
            gateway(mosquitto.url, registry) as gw,
            judged_client(gw, truth) as judge,
            Memory() as memory,
        ):
            # judged afterwards, every frame: the judge must not load the gateway's loop
            judge.deferred = True
            city, stats = gw.gateway.city, gw.gateway.ingest.stats
            lines = controllers.stdout
            assert await asyncio.wait_for(lines.readline(), 60) == b"ready\n"
            await until(lambda: all(any_time(city.view(i)) for i in ids), 20)
            assert await asyncio.wait_for(lines.readline(), 20) == b"burst\n"
            started, accepted_before = time.monotonic(), city.totals["accepted"]
            started_ms = wall_ms()
            slow_before = stats.slow_episodes
            watcher = asyncio.create_task(lag_watch(lags))
            try:
                calm = await asyncio.wait_for(lines.readline(), BURST_S + 60)
            finally:
                watcher.cancel()
            assert calm == b"calm\n"
            elapsed = time.monotonic() - started
            accepted = city.totals["accepted"] - accepted_before
            slow_episodes = stats.slow_episodes - slow_before
            last = await asyncio.wait_for(lines.readline(), 60)  # after the calm tail
            late = city.totals["too_old"]
            evictions = gw.gateway.evictions
            shown_after = sum(any_time(city.view(i)) for i in ids)
            held_mb = judge.held_bytes / 2**20
            judge.deferred = False
            await judge.settle()
            latencies = [ms for at, ms in judge.stamped_latencies if at >= started_ms]
        await controllers.wait()
    finally:
        with contextlib.suppress(ProcessLookupError):
            controllers.kill()
        await controllers.wait()
    published = int(last.split()[1])
    rate = accepted / elapsed
    p99 = sorted(latencies)[int(len(latencies) * 0.99) - 1]
    judge.assert_clean(min_checked=1000)
    # ~98 % on an idle 2-core machine; a floor that holds while another suite shares the cores
    assert rate >= 0.75 * len(ids) * 10, f"{rate:.0f} reports/s taken"
    # Reports more than the stale time late are dropped (too_old): the safety valve when this
    # shared machine falls behind; never a wrong number (above).
    # A fresh-clone CI run on 2 cores dropped 6.5 % (8,359 of 127,703) with 0 wrong numbers;
    # the bound catches a gateway that stops keeping up, not the machine's size.
    assert late <= 0.15 * accepted, f"{late} reports dropped as too old"
    assert evictions == 0
    assert shown_after == len(ids)
    assert p99 <= P99_MS
    assert memory.growth_mb - held_mb < GROWTH_MB
    figures.record(
        f"11 burst: 235 controllers at 10 Hz for {BURST_S:g} s",
        peak_rss_mb=memory.peak_mb,
        rss_growth_mb=memory.growth_mb,
        wrong_numbers=len(judge.wrong),
        numbers_checked=judge.checked,
        notes=f"{rate:.0f} reports/s taken ({published} published, {late} too old); latency p50 "
        f"{statistics.median(latencies):.0f} ms, p99 {p99} ms; "
        f"loop lag max {max(lags):.0f} ms; {slow_episodes} slow-probe episodes; RSS growth "
        f"includes {held_mb:.0f} MiB of frames the judge kept",
    )
