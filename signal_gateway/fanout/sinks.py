"""Non-blocking WebSocket writers (``Sink``s) over an ASGI connection.

Owns the bridge from the hub's synchronous flush to the network. The fast sink writes frames
straight into the transport of uvicorn's sans-I/O WebSocket protocol (one ``transport.write``
per frame, no await, no task); the portable sink works over any ASGI server with one in-flight
send task per client. ``make_sink`` picks the fast one when the server allows it.

The hub hands the same ``bytes`` object to every client that gets the same update, so the fast
sink frames it (WebSocket header, and permessage-deflate compression when the client negotiated
it) once and writes those same wire bytes to each of them (``framed``): per client only a
``transport.write`` remains. Measured in docs/performance.md (bench/transports.py).
"""

from __future__ import annotations

import asyncio
import logging
import zlib
from collections import deque
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

log = logging.getLogger("signal_gateway.ws")

AsgiSend = Callable[[MutableMapping[str, Any]], Awaitable[None]]

# Below this many buffered bytes a client is ready for the next frame; above it the hub skips
# the client and remembers what it missed (latest state wins) instead of queueing frames.
SOFT_LIMIT_BYTES = 64 * 1024


# Framed-and-compressed wire bytes of recent payloads, keyed by the payload object's identity
# (the cache holds the payload, so the identity cannot be reused while it is cached) and the
# compression window (0: uncompressed). A handful is enough: one flush sends a few distinct
# frames, each to many clients in a row.
_WIRE_CACHE: dict[tuple[int, int], tuple[bytes, bytes]] = {}
_WIRE_CACHE_SIZE = 16
_DEFLATE_TAIL = b"\x00\x00\xff\xff"


def _header(length: int, compressed: bool) -> bytes:
    """A server-to-client (unmasked, final) text frame header."""
    first = 0xC1 if compressed else 0x81
    if length < 126:
        return bytes((first, length))
    if length < 65536:
        return bytes((first, 126)) + length.to_bytes(2, "big")
    return bytes((first, 127)) + length.to_bytes(8, "big")


def framed(payload: bytes, window_bits: int = 0) -> bytes:
    """The whole text frame for ``payload``: built once, shared by every client it goes to.

    ``window_bits`` > 0 compresses with permessage-deflate (RFC 7692) as a self-contained
    message: no back-references to earlier messages, which every peer can decode whether or
    not it keeps a context, within the negotiated window.
    """
    key = (id(payload), window_bits)
    hit = _WIRE_CACHE.get(key)
    if hit is not None and hit[0] is payload:
        return hit[1]
    if window_bits:
        packer = zlib.compressobj(6, zlib.DEFLATED, -window_bits, 5)
        body = packer.compress(payload) + packer.flush(zlib.Z_SYNC_FLUSH)
        if body.endswith(_DEFLATE_TAIL):
            body = body[:-4]
        wire = _header(len(body), True) + body
    else:
        wire = _header(len(payload), False) + payload
    if len(_WIRE_CACHE) >= _WIRE_CACHE_SIZE:
        _WIRE_CACHE.clear()
    _WIRE_CACHE[key] = (payload, wire)
    return wire


def _window_bits(conn: Any) -> int | None:
    """0 without extensions, the server's deflate window with permessage-deflate, else None.

    With permessage-deflate the connection's own encoder is switched to no context takeover
    (and its persistent compressor freed): anything it still compresses later is then
    self-contained too, so its frames and ours can be mixed on one connection.
    """
    extensions = list(getattr(conn, "extensions", ()) or ())
    if not extensions:
        return 0
    if len(extensions) != 1 or extensions[0].name != "permessage-deflate":
        return None
    deflate = extensions[0]
    bits = getattr(deflate, "local_max_window_bits", None) or 15
    if not 9 <= bits <= 15:  # zlib cannot honour an 8-bit window for raw deflate
        return None
    deflate.local_no_context_takeover = True
    if hasattr(deflate, "encoder"):
        del deflate.encoder
    return int(bits)


# A client being closed has this long to read what is buffered and answer the close frame.
CLOSE_WAIT_S = 2.0


class TransportSink:
    """Writes frames synchronously into uvicorn's websockets-sansio protocol transport."""

    __slots__ = ("_bits", "_closing", "_conn", "_proto", "_send", "_transport")

    def __init__(self, proto: Any, send: AsgiSend) -> None:
        self._proto = proto
        self._conn = proto.conn
        self._transport = proto.transport
        self._send = send
        self._closing = False
        self._bits = _window_bits(self._conn)
        # uvicorn keeps the handshake's request and response for the connection's life but reads
        # neither after the accept: a few KiB per client with a browser's headers.
        for name in ("request", "response"):
            if getattr(proto, name, None) is not None:
                setattr(proto, name, None)

    def ready(self) -> bool:
        """Open and with little enough buffered."""
        return (
            not self._proto.close_sent
            and not self._transport.is_closing()
            and self._transport.get_write_buffer_size() <= SOFT_LIMIT_BYTES
        )

    def send(self, frame: bytes) -> None:
        """Write the frame now; the bytes are already UTF-8 JSON."""
        if self._proto.close_sent or self._transport.is_closing():
            return
        if self._bits is None:  # an extension we do not frame ourselves: let websockets do it
            self._conn.send_text(frame)
            self._transport.write(b"".join(self._conn.data_to_send()))
            return
        self._transport.write(framed(frame, self._bits))

    def buffered_bytes(self) -> int:
        """Bytes in the transport's write buffer."""
        return int(self._transport.get_write_buffer_size())

    def close(self, code: int, reason: str) -> None:
        """Write the close frame now, behind what is buffered; abort if the peer is not done soon.

        Written here, not through ASGI ``websocket.close`` from a task: uvicorn's send first
        waits for the buffer to drain, which a client that does not read never allows (it got
        an abort, never its 1013), and a handler returning right after closing let uvicorn
        close the transport before the task ran (no 1008). Then as uvicorn's own close does:
        ``close_sent``, reads resumed for the reply, and a timer it cancels when the reply comes.
        """
        if self._closing:
            return
        self._closing = True
        proto, transport = self._proto, self._transport
        if proto.close_sent or transport.is_closing():
            return
        self._conn.send_close(code, reason)
        transport.write(b"".join(self._conn.data_to_send()))
        proto.close_sent = True
        if proto.read_paused:
            proto.read_paused = False
            transport.resume_reading()
        proto.close_timer = asyncio.get_running_loop().call_later(CLOSE_WAIT_S, transport.abort)


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
