"""Scenarios 17 and 18: the gateway restarted under its clients, an engineer's token revoked.

Bounds (docs/reliability.md): on SIGTERM every client gets 1001 and the process exits 0 within
``SHUTDOWN_MS``; reconnected clients get a fresh snapshot and right numbers within
``RESTART_RECOVER_MS`` of the SIGTERM; a revoked engineer token closes its WebSocket with 1008
within ``REVOKE_MS`` (the engineers' push tick, 200 ms, plus the file's re-read).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import psutil
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from signal_gateway.core.registry import Registry
from tests.conftest import REPO
from tests.faults.conftest import Figures
from tests.faults.support import (
    FAULT_SETTINGS,
    Judge,
    Memory,
    gateway,
    judged_client,
    simulator,
    wall_ms,
)
from tests.support.gateway import until
from tests.support.mosquitto import MosquittoProcess, free_port

pytestmark = pytest.mark.broker

IDS = ["YT001", "YT002", "YT003"]
SHUTDOWN_MS = 6000  # uvicorn's graceful shutdown is capped at 5 s
RESTART_RECOVER_MS = 8000
REVOKE_MS = 1000


@contextlib.asynccontextmanager
async def serve_process(broker_url: str, port: int) -> AsyncIterator[asyncio.subprocess.Process]:
    """``signal-gateway serve`` in a process of its own, ready (``/readyz``) when yielded."""
    env = {
        **os.environ,
        **{f"SIGNAL_GATEWAY_{k.upper()}": str(v) for k, v in FAULT_SETTINGS.items()},
        "SIGNAL_GATEWAY_LOG_LEVEL": "warning",
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "signal_gateway",
        "serve",
        "--broker",
        broker_url,
        "--port",
        str(port),
        "--host",
        "127.0.0.1",
        cwd=REPO,
        env=env,
    )
    try:
        async with httpx.AsyncClient() as http:

            async def ready() -> bool:
                with contextlib.suppress(httpx.HTTPError):
                    return (await http.get(f"http://127.0.0.1:{port}/readyz")).status_code == 200
                return False

            async with asyncio.timeout(20):
                while not await ready():
                    assert process.returncode is None, "the gateway exited at start"
                    await asyncio.sleep(0.05)  # polling interval of the readiness probe
        yield process
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def reconnect(url: str, within_s: float) -> None:
    """Wait until the gateway accepts WebSockets again (polling, the way clients back off)."""
    async with asyncio.timeout(within_s):
        while True:
            try:
                async with connect(url):
                    return
            except (OSError, ConnectionClosed):
                await asyncio.sleep(0.1)  # a client's reconnect backoff


def closed_by(judge: Judge) -> Callable[[], bool]:
    """A condition: the judge's connection was closed."""
    return lambda: judge.closed is not None


async def test_gateway_restart_under_clients(
    mosquitto: MosquittoProcess, registry: Registry, figures: Figures
) -> None:
    """SIGTERM: clients get 1001, exit 0; reconnected, a fresh snapshot and right numbers."""
    port = free_port()
    url = f"ws://127.0.0.1:{port}/ws/v1"
    async with simulator(registry, mosquitto.port, IDS, speed=4) as sim:
        async with serve_process(mosquitto.url, port) as process:
            rss = psutil.Process(process.pid)
            async with contextlib.AsyncExitStack() as stack:
                judges: list[Judge] = [
                    await stack.enter_async_context(judged_client(url, sim.truth)) for _ in range(3)
                ]
                for judge in judges:
                    await judge.wait_timed(IDS)
                peak_mb = rss.memory_info().rss / 2**20
                stopped = wall_ms()
                process.send_signal(signal.SIGTERM)
                for judge in judges:
                    await judge.wait(closed_by(judge), SHUTDOWN_MS / 1000)
                code = await asyncio.wait_for(process.wait(), SHUTDOWN_MS / 1000)
                exited_ms = wall_ms() - stopped
        async with serve_process(mosquitto.url, port):
            await reconnect(url, 10)
            async with judged_client(url, sim.truth) as again:
                snapshot_ms = wall_ms() - stopped
                recovery = await again.timed_after("YT001", stopped, RESTART_RECOVER_MS / 1000)
                await again.wait_timed(IDS, RESTART_RECOVER_MS / 1000)
                await until(lambda: again.checked >= 20, 10)
    assert [judge.closed for judge in judges] == [1001, 1001, 1001]
    assert code == 0
    assert exited_ms <= SHUTDOWN_MS
    for judge in [*judges, again]:
        judge.assert_clean(min_checked=10)
    assert recovery <= RESTART_RECOVER_MS
    figures.record(
        "17 gateway restarted (SIGTERM) under clients",
        detection_ms=exited_ms,
        recovery_ms=recovery,
        peak_rss_mb=peak_mb,
        wrong_numbers=sum(len(j.wrong) for j in [*judges, again]),
        numbers_checked=sum(j.checked for j in [*judges, again]),
        notes=f"3 clients got 1001, exit 0 after {exited_ms} ms; fresh snapshot "
        f"{snapshot_ms} ms after SIGTERM (process RSS)",
    )


async def test_revoked_engineer_token_closes_with_1008(
    mosquitto: MosquittoProcess, registry: Registry, figures: Figures, tmp_path: Path
) -> None:
    """A token removed from the token file closes its engineers' WebSocket with 1008."""
    tokens = tmp_path / "tokens"
    tokens.write_text("revoked-token\nkept-token\n")
    async with (
        Memory() as memory,
        gateway(mosquitto.url, registry, engineer_token_file=str(tokens)) as gw,
        connect(f"ws://127.0.0.1:{gw.port}/ws/v1/engineer") as doomed,
        connect(f"ws://127.0.0.1:{gw.port}/ws/v1/engineer") as kept,
    ):
        for ws, token in ((doomed, "revoked-token"), (kept, "kept-token")):
            await ws.send(json.dumps({"op": "auth", "token": token}))
            assert json.loads(await ws.recv())["type"] == "hello"
        revoked = wall_ms()
        tokens.write_text("kept-token\n")
        async with asyncio.timeout(REVOKE_MS / 1000 + 2):
            with contextlib.suppress(ConnectionClosed):
                while True:
                    await doomed.recv()
        took = wall_ms() - revoked
        assert doomed.close_code == 1008
        assert doomed.close_reason == "token revoked"
        frames_before = gw.app.api.state.engineer.feed.frames_sent
        await until(lambda: gw.app.api.state.engineer.feed.frames_sent > frames_before, 3)
        assert json.loads(await kept.recv())["type"] in ("controllers", "events")
    assert took <= REVOKE_MS
    figures.record(
        "18 engineer token revoked while connected",
        detection_ms=took,
        peak_rss_mb=memory.peak_mb,
        rss_growth_mb=memory.growth_mb,
        notes="closed with 1008 'token revoked'; the other engineer stayed",
    )
