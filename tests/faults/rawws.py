"""A WebSocket client at the socket level, for clients that misbehave on purpose.

It completes the handshake with websockets' sans-I/O ``ClientProtocol`` and then does whatever
the test wants: never read (with a tiny receive buffer, so the server's send buffer fills), send
pings without ever reading the pongs, send frames no well-behaved client sends (invalid UTF-8,
RSV1 set without negotiated compression), or vanish without a close.
"""

from __future__ import annotations

import asyncio
import os
import socket
import struct

from websockets.client import ClientProtocol
from websockets.frames import Close, Frame, Opcode
from websockets.http11 import Response
from websockets.uri import parse_uri


def masked_frame(opcode: int, payload: bytes, *, fin: bool = True, rsv1: bool = False) -> bytes:
    """One client frame (masked, as clients must), built by hand so it can be wrong."""
    head = (0x80 if fin else 0) | (0x40 if rsv1 else 0) | opcode
    length = len(payload)
    if length < 126:
        header = struct.pack("!BB", head, 0x80 | length)
    elif length < 65536:
        header = struct.pack("!BBH", head, 0x80 | 126, length)
    else:
        header = struct.pack("!BBQ", head, 0x80 | 127, length)
    mask = os.urandom(4)
    body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return header + mask + body


class RawWebSocket:
    """One connection: ``await open()``, then send anything, read only when told to."""

    def __init__(
        self,
        url: str,
        *,
        origin: str | None = None,
        rcvbuf: int | None = None,
        local_host: str = "127.0.0.1",
    ) -> None:
        self.uri = parse_uri(url)
        self.origin = origin
        self.rcvbuf = rcvbuf
        self.local_host = local_host
        self.protocol = ClientProtocol(self.uri, origin=origin, max_size=None)  # type: ignore[arg-type]
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.response: Response | None = None

    async def open(self) -> RawWebSocket:
        """Connect and complete the handshake (raises if the server refuses it)."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if self.rcvbuf is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.rcvbuf)
        sock.bind((self.local_host, 0))
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, (self.uri.host, self.uri.port))
        self.reader, self.writer = await asyncio.open_connection(
            sock=sock, limit=2**20 if self.rcvbuf is None else 4096
        )
        self.protocol.send_request(self.protocol.connect())
        self._flush()
        while self.response is None:
            data = await self.reader.read(4096)
            if not data:
                raise ConnectionError("closed during the handshake")
            self.protocol.receive_data(data)
            for event in self.protocol.events_received():
                if isinstance(event, Response):
                    self.response = event
        if self.response.status_code != 101:
            raise ConnectionRefusedError(f"handshake refused: {self.response.status_code}")
        return self

    def _flush(self) -> None:
        assert self.writer is not None
        data = b"".join(self.protocol.data_to_send())
        if data:
            self.writer.write(data)

    def send_text(self, text: str) -> None:
        """One text frame."""
        self.protocol.send_text(text.encode())
        self._flush()

    def send_ping(self, payload: bytes = b"") -> None:
        """One ping."""
        self.protocol.send_ping(payload)
        self._flush()

    def send_raw(self, data: bytes) -> None:
        """Bytes straight onto the socket (hand-built frames)."""
        assert self.writer is not None
        self.writer.write(data)

    async def drain(self) -> None:
        """Wait until the socket took what was written (waits while the server does not read)."""
        assert self.writer is not None
        await self.writer.drain()

    @property
    def unsent(self) -> int:
        """Bytes written here that the kernel has not taken yet."""
        assert self.writer is not None
        return int(self.writer.transport.get_write_buffer_size())

    async def close_code(self, within_s: float) -> int | None:
        """Read (and discard) until the server closes; its close code, None for no close frame."""
        assert self.reader is not None
        async with asyncio.timeout(within_s):
            while True:
                try:
                    data = await self.reader.read(65536)
                except ConnectionError:
                    return None
                if not data:
                    self.protocol.receive_eof()
                    return None
                self.protocol.receive_data(data)
                for event in self.protocol.events_received():
                    if isinstance(event, Frame) and event.opcode is Opcode.CLOSE:
                        return Close.parse(bytes(event.data)).code if event.data else 1005

    def abort(self) -> None:
        """Vanish: reset the TCP connection, no close frame."""
        if self.writer is not None:
            self.writer.transport.abort()

    def close(self) -> None:
        """Let the socket go (no close frame either); idempotent."""
        if self.writer is not None:
            self.writer.close()

    async def __aenter__(self) -> RawWebSocket:
        return await self.open()

    async def __aexit__(self, *exc: object) -> None:
        self.close()
