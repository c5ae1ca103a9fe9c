"""Non-blocking WebSocket writers (``Sink``s) over an ASGI connection.

Owns the bridge from the hub's synchronous flush to the network. The fast sink writes frames
straight into the transport of uvicorn's sans-I/O WebSocket protocol (one ``transport.write``
per frame, no await, no task); the portable sink works over any ASGI server with one in-flight
send task per client. ``make_sink`` picks the fast one when the server allows it.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

log = logging.getLogger("signal_gateway.ws")

AsgiSend = Callable[[MutableMapping[str, Any]], Awaitable[None]]

# Below this many buffered bytes a client is ready for the next frame; above it the hub skips
# the client and remembers what it missed (latest state wins) instead of queueing frames.
SOFT_LIMIT_BYTES = 64 * 1024


class TransportSink:
    """Writes frames synchronously into uvicorn's websockets-sansio protocol transport."""

    __slots__ = ("_close_task", "_conn", "_proto", "_send", "_transport")

    def __init__(self, proto: Any, send: AsgiSend) -> None:
        self._proto = proto
        self._conn = proto.conn
        self._transport = proto.transport
        self._send = send
        self._close_task: asyncio.Task[None] | None = None

    def ready(self) -> bool:
        """Open and with little enough buffered."""
        return (
            not self._proto.close_sent
            and not self._transport.is_closing()
            and self._transport.get_write_buffer_size() <= SOFT_LIMIT_BYTES
        )

    def send(self, frame: bytes) -> None:
        """Frame and write now; the bytes are already UTF-8 JSON."""
        if self._proto.close_sent or self._transport.is_closing():
            return
        self._conn.send_text(frame)
        self._transport.write(b"".join(self._conn.data_to_send()))

    def buffered_bytes(self) -> int:
        """Bytes in the transport's write buffer."""
        return int(self._transport.get_write_buffer_size())

    def close(self, code: int, reason: str) -> None:
        """Send a close frame; abort the socket if the peer does not finish the close in time."""
        if self._close_task is not None:
            return
        transport = self._transport
        self._close_task = asyncio.get_running_loop().create_task(
            _close(self._send, code, reason, transport.abort)
        )


class AsgiSink:
    """Portable sink: frames go out in order through one send task at a time."""

    def __init__(self, send: AsgiSend) -> None:
        self._send = send
        self._pending: deque[bytes] = deque()
        self._pending_bytes = 0
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    def ready(self) -> bool:
        """Nothing is waiting to be sent."""
        return not self._closed and not self._pending

    def send(self, frame: bytes) -> None:
        """Queue the frame behind the one in flight (the hub bounds how many)."""
        if self._closed:
            return
        self._pending.append(frame)
        self._pending_bytes += len(frame)
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._drain())

    async def _drain(self) -> None:
        try:
            while self._pending and not self._closed:
                frame = self._pending[0]
                await self._send({"type": "websocket.send", "text": frame.decode()})
                self._pending.popleft()
                self._pending_bytes -= len(frame)
        except Exception as exc:  # a vanished client: the receive side sees the disconnect
            log.debug("send failed: %s", exc)
            self._closed = True
        finally:
            self._task = None

    def buffered_bytes(self) -> int:
        """Bytes queued and not yet handed to the server."""
        return self._pending_bytes

    def close(self, code: int, reason: str) -> None:
        """Close the connection (once)."""
        if self._closed:
            return
        self._closed = True
        self._pending.clear()
        asyncio.get_running_loop().create_task(_close(self._send, code, reason, None))


async def _close(
    send: AsgiSend, code: int, reason: str, abort: Callable[[], None] | None, wait_s: float = 2.0
) -> None:
    try:
        await asyncio.wait_for(
            send({"type": "websocket.close", "code": code, "reason": reason}), wait_s
        )
    except (TimeoutError, Exception) as exc:
        log.debug("close did not complete (%s); aborting", exc)
        if abort is not None:
            abort()


def make_sink(send: AsgiSend) -> TransportSink | AsgiSink:
    """The fast transport sink under uvicorn's websockets-sansio protocol, else the portable one."""
    proto = getattr(send, "__self__", None)
    if (
        proto is not None
        and all(hasattr(proto, name) for name in ("conn", "transport", "close_sent"))
        and hasattr(proto.conn, "send_text")
    ):
        return TransportSink(proto, send)
    return AsgiSink(send)
