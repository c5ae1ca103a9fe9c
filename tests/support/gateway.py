"""Run the real gateway (uvicorn, app, MQTT loop) inside the test's event loop."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection, connect

from signal_gateway.api.app import GatewayApp, create_app
from signal_gateway.cli import serve
from signal_gateway.core.registry import Registry
from signal_gateway.gateway import Gateway
from signal_gateway.settings import Settings, load_settings
from tests.support.mosquitto import free_port


@dataclass
class RunningGateway:
    """A gateway serving on a free port."""

    app: GatewayApp
    port: int

    @property
    def gateway(self) -> Gateway:
        """The live runtime object (city, hub, ingest)."""
        gateway: Gateway = self.app.api.state.gateway
        return gateway

    @property
    def http(self) -> str:
        """Base HTTP URL."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws(self) -> str:
        """The public WebSocket URL."""
        return f"ws://127.0.0.1:{self.port}/ws/v1"


@contextlib.asynccontextmanager
async def running_gateway(
    broker_url: str, registry: Registry | None = None, *, ready: bool = True, **overrides: Any
) -> AsyncIterator[RunningGateway]:
    """Serve until the block ends; waits for /readyz (broker connected, or only /healthz when
    ``ready`` is False) before yielding."""
    settings: Settings = load_settings(
        {"broker": broker_url, "port": free_port(), "host": "127.0.0.1", **overrides}, environ={}
    )
    app = create_app(settings, registry)
    stop = asyncio.Event()
    task = asyncio.create_task(serve(settings, stop=stop, app=app))
    running = RunningGateway(app, settings.port)
    try:
        async with httpx.AsyncClient() as http:
            for _ in range(500):
                if task.done():
                    task.result()
                    raise RuntimeError("gateway exited during start-up")
                with contextlib.suppress(httpx.HTTPError):
                    probe = "/readyz" if ready else "/healthz"
                    if (await http.get(running.http + probe)).status_code == 200:
                        break
                await asyncio.sleep(0.02)
            else:
                raise TimeoutError("gateway not ready after 10 s")
        yield running
    finally:
        stop.set()
        await task


async def next_frame(ws: ClientConnection, kind: str, within_s: float = 5.0) -> dict[str, Any]:
    """The next frame of the given type, skipping others."""
    async with asyncio.timeout(within_s):
        while True:
            frame: dict[str, Any] = json.loads(await ws.recv())
            if frame["type"] == kind:
                return frame


async def until(condition: Callable[[], bool], within_s: float = 5.0) -> None:
    """Poll a condition of in-process state every 10 ms until it holds (or time out).

    For state the gateway exposes no event for (counters, bookkeeping): polling a condition,
    unlike a fixed sleep, ends as soon as it holds and fails loudly if it never does.
    """
    async with asyncio.timeout(within_s):
        while True:
            if condition():
                return
            await asyncio.sleep(0.01)


@contextlib.asynccontextmanager
async def ws_client(url: str, **kwargs: Any) -> AsyncIterator[ClientConnection]:
    """A WebSocket client that has received its hello."""
    async with connect(url, **kwargs) as ws:
        await next_frame(ws, "hello")
        yield ws
