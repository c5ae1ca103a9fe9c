"""Transport comparison: the same frames to the same connections through each WebSocket stack.

One server process per run, pinned by bench/run.py to the gateway's core. It accepts the load
generator's connections, and after ``START`` on stdin sends the captured full-city update frames
(bench/frames.py) in rounds, as fast as the stack allows: round r gives frame r % K to every
connection that can take it now (the hub's rule: a client over 64 KiB of unsent bytes is
skipped, never queued for), then yields to the event loop once so the I/O can progress.
``STOP`` prints ``RESULT {json}`` (frames handed to the stack) and exits. The load generator
counts what was delivered.

Kinds:

* ``uvicorn-transport``: uvicorn's websockets-sansio protocol + ``signal_gateway.fanout.sinks.
  TransportSink`` (the gateway's production path, as in this tree);
* ``uvicorn-transport-legacy``: the same with the TransportSink as it was before the benchmark
  (``LegacyTransportSink`` below, kept verbatim for the before/after ratio);
* ``uvicorn-asgi``: uvicorn + the portable ``AsgiSink`` (one send task per client, ASGI send);
* ``websockets-broadcast``: the ``websockets`` asyncio server and ``websockets.broadcast``;
* ``picows``: picows' server, ``WSTransport.send`` (no permessage-deflate support).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import time
from collections.abc import Callable, MutableMapping
from pathlib import Path
from typing import Any

from signal_gateway.fanout.sinks import (
    SOFT_LIMIT_BYTES,
    AsgiSend,
    AsgiSink,
    TransportSink,
)

KINDS = (
    "uvicorn-transport",
    "uvicorn-transport-legacy",
    "uvicorn-asgi",
    "websockets-broadcast",
    "picows",
)


class LegacyTransportSink:
    """``TransportSink`` as committed before this benchmark: frames through websockets' sans-I/O."""

    __slots__ = ("_conn", "_proto", "_transport")

    def __init__(self, proto: Any) -> None:
        self._proto = proto
        self._conn = proto.conn
        self._transport = proto.transport

    def ready(self) -> bool:
        """Open and with little enough buffered."""
        return (
            not self._proto.close_sent
            and not self._transport.is_closing()
            and self._transport.get_write_buffer_size() <= SOFT_LIMIT_BYTES
        )

    def send(self, frame: bytes) -> None:
        """Frame and write now."""
        if self._proto.close_sent or self._transport.is_closing():
            return
        self._conn.send_text(frame)
        self._transport.write(b"".join(self._conn.data_to_send()))


def read_frames(path: Path) -> list[bytes]:
    """Frames as written by ``bench.frames.write_frames``."""
    data = path.read_bytes()
    frames: list[bytes] = []
    at = 0
    while at + 4 <= len(data):
        size = int.from_bytes(data[at : at + 4], "little")
        frames.append(data[at + 4 : at + 4 + size])
        at += 4 + size
    return frames


class Bench:
    """The connected clients of one kind and the round driver."""

    def __init__(self, kind: str, frames: list[bytes]) -> None:
        self.kind = kind
        self.frames = frames
        self.texts = [f.decode() for f in frames]
        self.sinks: list[Any] = []
        self.conns: set[Any] = set()
        self.sent = 0
        self.rounds = 0
        self.running = False
        self.task: asyncio.Future[None] | None = None

    def round(self, index: int) -> int:
        """Send frame ``index`` to every client that can take it; returns how many."""
        frame = self.frames[index]
        sent = 0
        if self.kind == "websockets-broadcast":
            from websockets.asyncio.server import broadcast

            targets = [
                c for c in self.conns if c.transport.get_write_buffer_size() <= SOFT_LIMIT_BYTES
            ]
            broadcast(targets, self.texts[index])
            return len(targets)
        if self.kind == "picows":
            from picows import WSMsgType

            for transport in self.conns:
                if transport.underlying_transport.get_write_buffer_size() <= SOFT_LIMIT_BYTES:
                    transport.send(WSMsgType.TEXT, frame)
                    sent += 1
            return sent
        for sink in self.sinks:
            if sink.ready():
                sink.send(frame)
                sent += 1
        return sent

    async def drive(self) -> None:
        """Rounds until stopped."""
        count = len(self.frames)
        while self.running:
            self.sent += self.round(self.rounds % count)
            self.rounds += 1
            await asyncio.sleep(0)

    async def asgi(
        self,
        scope: MutableMapping[str, Any],
        receive: Callable[[], Any],
        send: AsgiSend,
    ) -> None:
        """The uvicorn kinds' ASGI app."""
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                else:
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "websocket":
            return
        await receive()
        await send({"type": "websocket.accept"})
        proto = getattr(send, "__self__", None)
        sink: Any
        if self.kind == "uvicorn-asgi":
            sink = AsgiSink(send)
        elif self.kind == "uvicorn-transport-legacy":
            sink = LegacyTransportSink(proto)
        else:
            sink = TransportSink(proto, send)
        self.sinks.append(sink)
        try:
            while (await receive())["type"] != "websocket.disconnect":
                pass
        finally:
            self.sinks.remove(sink)


async def serve(kind: str, port: int, frames: list[bytes], max_seconds: float) -> dict[str, Any]:
    """Serve one kind until STOP (or ``max_seconds``); returns the server-side counts."""
    bench = Bench(kind, frames)
    loop = asyncio.get_running_loop()
    stopper: contextlib.AsyncExitStack = contextlib.AsyncExitStack()
    if kind.startswith("uvicorn"):
        import uvicorn

        config = uvicorn.Config(
            bench.asgi,
            host="127.0.0.1",
            port=port,
            ws="websockets-sansio",
            lifespan="on",
            interface="asgi3",
            log_level="warning",
            backlog=4096,
            ws_ping_interval=20.0,
            ws_ping_timeout=20.0,
        )
        server = uvicorn.Server(config)
        server_task = asyncio.create_task(server.serve())

        async def stop_uvicorn() -> None:
            server.should_exit = True
            server.force_exit = True
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server_task, 5)

        stopper.push_async_callback(stop_uvicorn)
        while not server.started:
            if server_task.done():
                server_task.result()
                raise SystemExit("uvicorn did not start")
            await asyncio.sleep(0.05)
    elif kind == "websockets-broadcast":
        from websockets.asyncio.server import ServerConnection
        from websockets.asyncio.server import serve as ws_serve

        async def handler(ws: ServerConnection) -> None:
            bench.conns.add(ws)
            try:
                async for _ in ws:
                    pass
            finally:
                bench.conns.discard(ws)

        ws_server = await ws_serve(handler, "127.0.0.1", port, backlog=4096, max_queue=4)
        stopper.push_async_callback(_close_ws_server, ws_server)
    elif kind == "picows":
        from picows import WSListener, WSTransport, ws_create_server

        class Listener(WSListener):
            def on_ws_connected(self, transport: WSTransport) -> None:
                self.transport = transport
                bench.conns.add(transport)

            def on_ws_disconnected(self, transport: WSTransport) -> None:
                bench.conns.discard(transport)

        pserver = await ws_create_server(lambda _: Listener(), "127.0.0.1", port, backlog=4096)
        stopper.callback(pserver.close)
    else:
        raise SystemExit(f"unknown kind {kind!r}")
    print("LISTENING", flush=True)
    started = time.perf_counter()
    stop = asyncio.Event()

    def on_stdin() -> None:
        line = sys.stdin.readline()
        if line.strip() == "START" and not bench.running:
            bench.running = True
            bench.sent = bench.rounds = 0
            nonlocal started
            started = time.perf_counter()
            bench.task = asyncio.ensure_future(bench.drive())
        elif line == "" or line.strip() == "STOP":
            bench.running = False
            stop.set()

    loop.add_reader(sys.stdin.fileno(), on_stdin)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), max_seconds)
    seconds = time.perf_counter() - started
    bench.running = False
    loop.remove_reader(sys.stdin.fileno())
    result = {"kind": kind, "sent": bench.sent, "rounds": bench.rounds, "seconds": seconds}
    print("RESULT " + json.dumps(result), flush=True)
    await stopper.aclose()
    return result


async def _close_ws_server(server: Any) -> None:
    server.close()
    with contextlib.suppress(Exception):
        await asyncio.wait_for(server.wait_closed(), 5)


def main(argv: list[str] | None = None) -> int:
    """``python -m bench.transports --kind K --port P --frames F [--loop uvloop|asyncio]``"""
    parser = argparse.ArgumentParser(description="WebSocket transport comparison server")
    parser.add_argument("--kind", choices=KINDS, required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--frames", type=Path, required=True)
    parser.add_argument("--loop", choices=["uvloop", "asyncio"], default="uvloop")
    parser.add_argument("--max-seconds", type=float, default=300.0)
    args = parser.parse_args(argv)
    frames = read_frames(args.frames)
    coro = serve(args.kind, args.port, frames, args.max_seconds)
    if args.loop == "uvloop":
        import uvloop

        uvloop.run(coro)
    else:
        asyncio.run(coro)
    return 0


if __name__ == "__main__":
    sys.exit(main())
