"""A small asyncio TCP proxy for the fault suite: blackhole, delay and cut mid-frame.

Sits between a client (the gateway, or one controller) and the broker on loopback. Faults:

* ``blackhole()``: stop forwarding in both directions without closing anything, as a cut
  cable does. Bytes already read are held, and the proxy stops reading, so TCP back-pressure
  fills the kernel buffers; new connections are accepted but not connected upstream.
  ``heal()`` releases everything in order (the retransmitted backlog of a short cut).
* ``set_delay(seconds)``: deliver every chunk, both ways, this much later (a slow link).
* ``cut(mid_frame=True)``: on every open link, forward only the first half of the next chunk
  from the broker and then reset both sides (the connection dies in the middle of an MQTT
  packet).
* ``close_all()``: reset every open link at once.

``accepted`` keeps the loop time of every accepted connection (reconnect spacing).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from dataclasses import dataclass, field

CHUNK = 65_536


@dataclass(eq=False)
class _Link:
    """One proxied connection: the client side and the upstream side."""

    client: asyncio.StreamWriter
    upstream: asyncio.StreamWriter | None = None
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    cut_pending: bool = False
    closed: bool = False


class TcpProxy:
    """``127.0.0.1:<port>`` forwarding to ``upstream_host:upstream_port``."""

    def __init__(self, upstream_port: int, upstream_host: str = "127.0.0.1") -> None:
        self.upstream_host = upstream_host
        self.upstream_port = upstream_port
        self.port = 0
        self.delay_s = 0.0
        self.accepted: list[float] = []
        self.links: list[_Link] = []
        self.bytes_down = 0  # broker -> client
        self.bytes_up = 0  # client -> broker
        self.cuts = 0
        self._healed = asyncio.Event()
        self._healed.set()
        self._server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        """The broker URL a client should use to go through the proxy."""
        return f"mqtt://127.0.0.1:{self.port}"

    async def start(self) -> TcpProxy:
        """Listen on a free loopback port."""
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        """Stop listening and reset every link."""
        if self._server is not None:
            self._server.close()
        self._healed.set()
        self.close_all()
        tasks = [task for link in self.links for task in link.tasks]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)
            self._server = None

    async def __aenter__(self) -> TcpProxy:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- faults ----------------------------------------------------------------------------------

    def blackhole(self) -> None:
        """Stop forwarding (both ways) and stop reading; nothing is closed."""
        self._healed.clear()

    def heal(self) -> None:
        """Forward again, releasing what was held, in order."""
        self._healed.set()

    def set_delay(self, seconds: float) -> None:
        """Deliver every chunk this much later from now on (0: no delay)."""
        self.delay_s = seconds

    def cut(self) -> None:
        """Reset every open link in the middle of the next chunk from the broker."""
        for link in self.links:
            if not link.closed:
                link.cut_pending = True

    def close_all(self) -> None:
        """Reset every open link now."""
        for link in self.links:
            self._close(link)

    @property
    def open_links(self) -> int:
        """Links not closed yet."""
        return sum(not link.closed for link in self.links)

    # -- forwarding ------------------------------------------------------------------------------

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted.append(asyncio.get_running_loop().time())
        link = _Link(writer)
        self.links.append(link)
        await self._healed.wait()
        try:
            up_reader, up_writer = await asyncio.open_connection(
                self.upstream_host, self.upstream_port
            )
        except OSError:
            self._close(link)
            return
        link.upstream = up_writer
        if link.closed:
            self._close(link)
            return
        link.tasks = [
            asyncio.create_task(self._pump(link, reader, up_writer, down=False)),
            asyncio.create_task(self._pump(link, up_reader, writer, down=True)),
        ]

    async def _pump(
        self, link: _Link, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, down: bool
    ) -> None:
        """Copy one direction: chunks wait out the delay and the blackhole, in order."""
        loop = asyncio.get_running_loop()
        queue: deque[tuple[float, bytes]] = deque()
        ready = asyncio.Event()
        reading = asyncio.create_task(self._read(link, reader, queue, ready))
        try:
            while True:
                while not queue:
                    if reading.done():
                        self._close(link)
                        return
                    ready.clear()
                    await ready.wait()
                due, data = queue[0]
                wait = due - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)  # the simulated link delay, not a synchronisation
                await self._healed.wait()
                queue.popleft()
                if not data:
                    self._close(link)
                    return
                if down and link.cut_pending and len(data) >= 2:
                    writer.write(data[: len(data) // 2])
                    self.cuts += 1
                    self._close(link)
                    return
                writer.write(data)
                if down:
                    self.bytes_down += len(data)
                else:
                    self.bytes_up += len(data)
                with contextlib.suppress(ConnectionError):
                    await writer.drain()
        except (ConnectionError, OSError):
            self._close(link)
        finally:
            reading.cancel()

    async def _read(
        self,
        link: _Link,
        reader: asyncio.StreamReader,
        queue: deque[tuple[float, bytes]],
        ready: asyncio.Event,
    ) -> None:
        loop = asyncio.get_running_loop()
        while not link.closed:
            await self._healed.wait()  # a blackhole stops reading: back-pressure, like a cut
            try:
                data = await reader.read(CHUNK)
            except (ConnectionError, OSError):
                data = b""
            queue.append((loop.time() + self.delay_s, data))
            ready.set()
            if not data:
                return

    def _close(self, link: _Link) -> None:
        if link.closed:
            return
        link.closed = True
        for writer in (link.client, link.upstream):
            if writer is not None:
                writer.transport.abort()  # no polite MQTT or TCP goodbye: the link just dies
