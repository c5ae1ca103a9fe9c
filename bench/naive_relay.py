"""Baseline (a): the relay a newcomer would write. Not how the gateway works: it is what it beats.

FastAPI with uvicorn's defaults; every MQTT message is forwarded as it came to every connected
client with an awaited ``send_text``, one after the other. No validation, no views, no
coalescing, no slow-client handling: a client that does not read stalls everyone behind it, and
a city faster than the fan-out piles up in the MQTT client's queue.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from collections.abc import AsyncIterator

import aiomqtt
import uvicorn
from fastapi import FastAPI, WebSocket, WebSocketDisconnect


def create_app(host: str, port: int) -> FastAPI:
    """The relay: MQTT ``signals/+/spat`` in, every message to every client out."""
    clients: set[WebSocket] = set()

    async def relay() -> None:
        async with aiomqtt.Client(host, port) as mqtt:
            await mqtt.subscribe("signals/+/spat")
            async for message in mqtt.messages:
                text = bytes(message.payload).decode()
                for ws in list(clients):
                    try:
                        await ws.send_text(text)
                    except Exception:
                        clients.discard(ws)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        task = asyncio.create_task(relay())
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    app = FastAPI(lifespan=lifespan)

    @app.websocket("/ws/v1")
    async def websocket(ws: WebSocket) -> None:
        await ws.accept()
        clients.add(ws)
        try:
            while True:
                await ws.receive_text()
        except WebSocketDisconnect:
            pass
        finally:
            clients.discard(ws)

    return app


def main() -> None:
    """``python -m bench.naive_relay --broker HOST:PORT --port P``"""
    parser = argparse.ArgumentParser(description="naive FastAPI relay (benchmark baseline)")
    parser.add_argument("--broker", default="127.0.0.1:1883")
    parser.add_argument("--port", type=int, default=8001)
    args = parser.parse_args()
    host, _, port = args.broker.rpartition(":")
    uvicorn.run(create_app(host, int(port)), host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
