"""A minimal in-process MQTT 3.1.1 broker for the demo command and the test-suite.

This module owns :class:`EmbeddedBroker`, a small broker written with nothing but ``asyncio`` so
that ``signal-gateway demo`` runs on a machine that has only the Python project installed.

Supported: MQTT 3.1.1 (protocol level 4) and MQTT 3.1 ("MQIsdp", level 3) clients, clean
sessions only, QoS 0 and QoS 1 delivery (QoS 2 publishers get the full PUBREC/PUBREL/PUBCOMP
handshake but subscriptions are granted at most QoS 1), retained messages, wills, keepalive,
``+``/``#`` wildcards and client-id takeover. Not supported: persistent sessions, QoS 2 delivery,
authentication, TLS, redelivery of unacknowledged QoS 1 messages.

It is NOT meant for production: production deployments use Mosquitto.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import uuid
from types import TracebackType
from typing import Final, Self, cast

__all__ = ["BrokerPortInUseError", "EmbeddedBroker"]

_CONNECT: Final = 1
_CONNACK: Final = 2
_PUBLISH: Final = 3
_PUBACK: Final = 4
_PUBREC: Final = 5
_PUBREL: Final = 6
_PUBCOMP: Final = 7
_SUBSCRIBE: Final = 8
_SUBACK: Final = 9
_UNSUBSCRIBE: Final = 10
_UNSUBACK: Final = 11
_PINGREQ: Final = 12
_PINGRESP: Final = 13
_DISCONNECT: Final = 14

_PINGRESP_PACKET: Final = bytes((_PINGRESP << 4, 0))
_PROTOCOLS: Final = frozenset({("MQTT", 4), ("MQIsdp", 3)})
_CONNECT_TIMEOUT: Final = 10.0  # seconds a fresh TCP connection gets to send CONNECT
_SLOW_CONSUMER_FACTOR: Final = 4  # QoS 1 backlog beyond factor × limit disconnects a subscriber
_ROUTE_CACHE_SIZE: Final = 65_536
_STOP_GRACE: Final = 2.0  # seconds stop() waits for buffers to flush before aborting
_ADDR_IN_USE: Final = frozenset({errno.EADDRINUSE, 10048})  # 10048 = WSAEADDRINUSE


class BrokerPortInUseError(OSError):
    """Raised by :meth:`EmbeddedBroker.start` when the listening port is already taken."""

    def __init__(self, host: str, port: int) -> None:
        super().__init__(errno.EADDRINUSE, f"port {port} on {host} is already in use")
        self.host = host
        self.port = port

    def __str__(self) -> str:
        return str(self.strerror)


class _ProtocolError(Exception):
    """A client broke the MQTT protocol; its connection is closed (and its will published)."""


def _encode_length(n: int) -> bytes:
    """Encode an MQTT "remaining length" variable-byte integer."""
    out = bytearray()
    while True:
        n, digit = divmod(n, 128)
        if n:
            out.append(digit | 0x80)
        else:
            out.append(digit)
            return bytes(out)


def _decode_length(buf: bytearray, start: int, end: int) -> tuple[int, int] | None:
    """Decode a remaining length at ``buf[start:]``; ``(value, next_index)`` or None if partial."""
    value = 0
    shift = 0
    i = start
    while i < end:
        byte = buf[i]
        value |= (byte & 0x7F) << shift
        i += 1
        if not byte & 0x80:
            return value, i
        shift += 7
        if shift >= 28:
            raise _ProtocolError("malformed remaining length")
    return None


def _parse_filter(topic_filter: str) -> tuple[str, ...] | None:
    """Split a topic filter into levels, or return None if it is not a valid filter."""
    if not topic_filter or "\x00" in topic_filter:
        return None
    levels = tuple(topic_filter.split("/"))
    last = len(levels) - 1
    for i, level in enumerate(levels):
        if level == "#":
            if i != last:
                return None
        elif level != "+" and ("+" in level or "#" in level):
            return None
    return levels


def _matches(filter_levels: tuple[str, ...], topic_levels: list[str], dollar: bool) -> bool:
    """Return whether a parsed topic filter matches a topic split into levels."""
    if dollar and filter_levels[0] in ("+", "#"):
        return False
    n = len(topic_levels)
    for i, level in enumerate(filter_levels):
        if level == "#":
            return True
        if i >= n or (level != "+" and level != topic_levels[i]):
            return False
    return len(filter_levels) == n


class _Reader:
    """Cursor over a packet body that raises _ProtocolError on truncation or bad UTF-8."""

    __slots__ = ("_data", "_pos")

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._pos = 0

    @property
    def remaining(self) -> int:
        return len(self._data) - self._pos

    def byte(self) -> int:
        if self._pos >= len(self._data):
            raise _ProtocolError("packet truncated")
        self._pos += 1
        return self._data[self._pos - 1]

    def uint16(self) -> int:
        end = self._pos + 2
        if end > len(self._data):
            raise _ProtocolError("packet truncated")
        value = int.from_bytes(self._data[self._pos : end], "big")
        self._pos = end
        return value

    def binary(self) -> bytes:
        size = self.uint16()
        end = self._pos + size
        if end > len(self._data):
            raise _ProtocolError("packet truncated")
        value = self._data[self._pos : end]
        self._pos = end
        return value

    def string(self) -> str:
        return _decode_utf8(self.binary())


def _decode_utf8(raw: bytes) -> str:
    """Decode an MQTT UTF-8 string (no U+0000 allowed)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _ProtocolError("invalid UTF-8 string") from exc
    if "\x00" in text:
        raise _ProtocolError("U+0000 in string")
    return text


def _valid_topic_name(topic: str) -> bool:
    """Return whether ``topic`` may be published to (non-empty, no wildcards)."""
    return bool(topic) and "+" not in topic and "#" not in topic


class _Message:
    """An application message plus its lazily encoded PUBLISH packet prefixes."""

    __slots__ = ("_encoded", "payload", "qos", "retain", "topic", "topic_bytes")

    def __init__(
        self, topic: str, topic_bytes: bytes, payload: bytes, qos: int, retain: bool
    ) -> None:
        self.topic = topic
        self.topic_bytes = topic_bytes
        self.payload = payload
        self.qos = qos
        self.retain = retain
        self._encoded: dict[int, bytes] = {}

    def packet(self, qos: int, retain: bool) -> bytes:
        """Whole packet for QoS 0; everything before the packet identifier for QoS 1.

        Encoded once per (qos, retain) and shared by every subscriber.
        """
        key = qos << 1 | retain
        encoded = self._encoded.get(key)
        if encoded is None:
            topic = self.topic_bytes
            length = 2 + len(topic) + len(self.payload) + (2 if qos else 0)
            head = bytes((_PUBLISH << 4 | qos << 1 | retain,))
            encoded = head + _encode_length(length) + len(topic).to_bytes(2, "big") + topic
            if not qos:
                encoded += self.payload
            self._encoded[key] = encoded
        return encoded


class _Connection(asyncio.Protocol):
    """One client's TCP connection: parses packets and writes deliveries to its transport."""

    def __init__(self, broker: EmbeddedBroker, loop: asyncio.AbstractEventLoop) -> None:
        self._broker = broker
        self._loop = loop
        self._transport: asyncio.Transport | None = None
        self._buf = bytearray()
        self.peer = "?"
        self.client_id: str | None = None
        self.will: _Message | None = None
        self.subscriptions: dict[str, tuple[int, tuple[str, ...]]] = {}
        self._timeout = _CONNECT_TIMEOUT
        self._last_rx = loop.time()
        self._timer: asyncio.TimerHandle | None = None
        self._next_pid = 0
        self._inflight: set[int] = set()
        self._qos2_in: set[int] = set()
        self.closing = False
        self.closed: asyncio.Future[None] = loop.create_future()

    # -- asyncio.Protocol ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self._transport = cast(asyncio.Transport, transport)
        peer = transport.get_extra_info("peername")
        if isinstance(peer, tuple) and len(peer) >= 2:
            self.peer = f"{peer[0]}:{peer[1]}"
        self._broker._connections.add(self)
        if self._broker._stopping:
            self.shutdown()
            return
        self._arm_timer()

    def data_received(self, data: bytes) -> None:
        if self.closing:
            return
        buf = self._buf
        buf += data
        self._last_rx = self._loop.time()
        end = len(buf)
        pos = 0
        max_size = self._broker._max_packet_size
        try:
            while end - pos >= 2:
                decoded = _decode_length(buf, pos + 1, end)
                if decoded is None:
                    break
                length, body_start = decoded
                packet_end = body_start + length
                if packet_end - pos > max_size:
                    raise _ProtocolError(
                        f"packet of {packet_end - pos} bytes exceeds max_packet_size {max_size}"
                    )
                if packet_end > end:
                    break
                self._handle(buf[pos], bytes(buf[body_start:packet_end]))
                pos = packet_end
                if self.closing:
                    return
        except _ProtocolError as exc:
            self.abort_session(f"protocol error: {exc}")
            return
        except Exception:
            self._broker._log.exception("MQTT broker: error handling packet from %s", self.name)
            self.abort_session("internal error")
            return
        if pos:
            del buf[:pos]

    def eof_received(self) -> bool | None:
        return None  # no half-closed connections: let the transport close

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closing:
            reason = f"connection lost ({exc})" if exc else "connection closed by peer"
            self._close(reason)
            self._publish_will()
        self._broker._connections.discard(self)
        self._buf.clear()
        if not self.closed.done():
            self.closed.set_result(None)

    # -- lifecycle -------------------------------------------------------------------------

    @property
    def name(self) -> str:
        """Client id if known, else the peer address (for logs)."""
        return self.client_id if self.client_id is not None else self.peer

    def abort_session(self, reason: str) -> None:
        """End the connection abnormally: close it and publish the will."""
        if self.closing:
            return
        self._close(reason)
        self._publish_will()

    def shutdown(self) -> None:
        """Close for broker shutdown: no will is published."""
        self.will = None
        self._close("broker stopping")

    def force_abort(self) -> None:
        """Drop the socket without flushing buffered output."""
        if self._transport is not None:
            self._transport.abort()

    def _close(self, reason: str) -> None:
        if self.closing:
            return
        self.closing = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._broker._detach(self)
        self._broker._log.debug("MQTT broker: %s disconnected: %s", self.name, reason)
        if self._transport is not None:
            self._transport.close()

    def _publish_will(self) -> None:
        will, self.will = self.will, None
        if will is not None and not self._broker._stopping:
            self._broker._publish(will)

    def _arm_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._timeout > 0:
            self._timer = self._loop.call_at(self._last_rx + self._timeout, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        if self.closing:
            return
        deadline = self._last_rx + self._timeout
        if self._loop.time() < deadline:
            self._timer = self._loop.call_at(deadline, self._on_timer)
        elif self.client_id is None:
            self.abort_session("no CONNECT received in time")
        else:
            self.abort_session("keepalive expired")

    def _write(self, data: bytes) -> None:
        if not self.closing and self._transport is not None:
            self._transport.write(data)

    # -- outgoing PUBLISH --------------------------------------------------------------------

    def send(self, msg: _Message, qos: int, retain: bool) -> None:
        """Deliver ``msg`` at ``qos`` without ever waiting; QoS 0 is dropped when backlogged."""
        transport = self._transport
        if self.closing or transport is None:
            return
        broker = self._broker
        limit = broker._write_buffer_limit
        backlog = transport.get_write_buffer_size()
        if backlog > limit:
            if not qos:
                broker.stats["messages_dropped"] += 1
                return
            if backlog > limit * _SLOW_CONSUMER_FACTOR:
                broker.stats["messages_dropped"] += 1
                broker._log.warning("MQTT broker: disconnecting slow consumer %s", self.name)
                self.abort_session("slow consumer")
                return
        if qos:
            pid = self._allocate_pid()
            if pid is None:
                broker.stats["messages_dropped"] += 1
                self.abort_session("65535 unacknowledged QoS 1 messages")
                return
            transport.writelines((msg.packet(qos, retain), pid.to_bytes(2, "big"), msg.payload))
        else:
            transport.write(msg.packet(0, retain))
        broker.stats["messages_out"] += 1

    def _allocate_pid(self) -> int | None:
        inflight = self._inflight
        if len(inflight) >= 65535:
            return None
        pid = self._next_pid
        while True:
            pid = pid % 65535 + 1
            if pid not in inflight:
                break
        self._next_pid = pid
        inflight.add(pid)
        return pid

    # -- incoming packets --------------------------------------------------------------------

    def _handle(self, first: int, body: bytes) -> None:
        kind = first >> 4
        flags = first & 0x0F
        if self.client_id is None:
            if kind != _CONNECT:
                raise _ProtocolError(f"first packet is type {kind}, not CONNECT")
            if flags:
                raise _ProtocolError("reserved CONNECT flags set")
            self._on_connect(body)
        elif kind == _PUBLISH:
            self._on_publish(flags, body)
        elif kind == _PUBACK:
            self._check(flags == 0 and len(body) == 2, "malformed PUBACK")
            self._inflight.discard(int.from_bytes(body, "big"))
        elif kind == _PUBREL:
            self._check(flags == 2 and len(body) == 2, "malformed PUBREL")
            self._qos2_in.discard(int.from_bytes(body, "big"))
            self._write(bytes((_PUBCOMP << 4, 2)) + body)
        elif kind == _SUBSCRIBE:
            self._check(flags == 2, "malformed SUBSCRIBE")
            self._on_subscribe(body)
        elif kind == _UNSUBSCRIBE:
            self._check(flags == 2, "malformed UNSUBSCRIBE")
            self._on_unsubscribe(body)
        elif kind == _PINGREQ:
            self._check(flags == 0 and not body, "malformed PINGREQ")
            self._write(_PINGRESP_PACKET)
        elif kind == _DISCONNECT:
            self._check(flags == 0 and not body, "malformed DISCONNECT")
            self.will = None
            self._close("DISCONNECT")
        elif kind == _CONNECT:
            raise _ProtocolError("second CONNECT on one connection")
        else:
            raise _ProtocolError(f"unexpected packet type {kind}")

    @staticmethod
    def _check(ok: bool, what: str) -> None:
        if not ok:
            raise _ProtocolError(what)

    def _on_connect(self, body: bytes) -> None:
        r = _Reader(body)
        protocol = (r.string(), r.byte())
        if protocol not in _PROTOCOLS:
            if protocol[0] in ("MQTT", "MQIsdp"):
                self._write(bytes((_CONNACK << 4, 2, 0, 1)))  # unacceptable protocol version
                self._close(f"unsupported protocol level {protocol[1]}")
                return
            raise _ProtocolError(f"unknown protocol name {protocol[0]!r}")
        flags = r.byte()
        will_flag = bool(flags & 0x04)
        will_qos = (flags >> 3) & 0x03
        will_retain = bool(flags & 0x20)
        self._check(not flags & 0x01, "reserved CONNECT flag set")
        self._check(will_qos != 3, "will QoS 3")
        self._check(will_flag or not (will_qos or will_retain), "will QoS/retain without will")
        self._check(bool(flags & 0x80) or not flags & 0x40, "password without username")
        keepalive = r.uint16()
        client_id = r.string()
        will: _Message | None = None
        if will_flag:
            topic_bytes = r.binary()
            topic = _decode_utf8(topic_bytes)
            self._check(_valid_topic_name(topic), "invalid will topic")
            will = _Message(topic, topic_bytes, r.binary(), will_qos, will_retain)
        if flags & 0x80:
            r.string()  # username: accepted, ignored
        if flags & 0x40:
            r.binary()  # password: accepted, ignored
        self._check(r.remaining == 0, "trailing bytes in CONNECT")
        if not client_id:
            if not flags & 0x02:
                self._write(bytes((_CONNACK << 4, 2, 0, 2)))  # identifier rejected
                self._close("empty client id without clean session")
                return
            client_id = f"auto-{uuid.uuid4().hex}"
        self.client_id = client_id
        self.will = will
        self._broker._register(self)
        self._write(bytes((_CONNACK << 4, 2, 0, 0)))
        self._timeout = keepalive * 1.5
        self._arm_timer()
        self._broker._log.debug(
            "MQTT broker: %s connected from %s (keepalive %ss)", client_id, self.peer, keepalive
        )

    def _on_publish(self, flags: int, body: bytes) -> None:
        qos = (flags >> 1) & 0x03
        self._check(qos != 3, "PUBLISH with QoS 3")
        self._check(len(body) >= 2, "packet truncated")
        topic_end = 2 + int.from_bytes(body[:2], "big")
        pid_end = topic_end + (2 if qos else 0)
        self._check(len(body) >= pid_end, "packet truncated")
        topic_bytes = body[2:topic_end]
        topic = _decode_utf8(topic_bytes)
        self._check(_valid_topic_name(topic), f"invalid topic name {topic!r}")
        msg = _Message(topic, topic_bytes, body[pid_end:], qos, bool(flags & 0x01))
        broker = self._broker
        broker.stats["messages_in"] += 1
        if not qos:
            broker._publish(msg)
            return
        pid = body[topic_end:pid_end]
        self._check(pid != b"\x00\x00", "packet identifier 0")
        if qos == 1:
            broker._publish(msg)
            self._write(bytes((_PUBACK << 4, 2)) + pid)
            return
        pid_value = int.from_bytes(pid, "big")
        if pid_value not in self._qos2_in:  # a retransmission before PUBREL is not re-delivered
            self._qos2_in.add(pid_value)
            broker._publish(msg)
        self._write(bytes((_PUBREC << 4, 2)) + pid)

    def _on_subscribe(self, body: bytes) -> None:
        r = _Reader(body)
        pid = r.uint16()
        self._check(pid != 0, "packet identifier 0")
        codes = bytearray()
        added: list[tuple[tuple[str, ...], int]] = []
        while r.remaining:
            topic_filter = r.string()
            options = r.byte()
            self._check(not options & 0xFC and options & 0x03 != 3, "bad requested QoS")
            levels = _parse_filter(topic_filter)
            if levels is None:
                codes.append(0x80)
                continue
            granted = min(options & 0x03, 1)
            self.subscriptions[topic_filter] = (granted, levels)
            codes.append(granted)
            added.append((levels, granted))
        self._check(bool(codes), "SUBSCRIBE without topic filters")
        self._broker._routes_changed()
        self._write(
            bytes((_SUBACK << 4,)) + _encode_length(2 + len(codes)) + pid.to_bytes(2, "big") + codes
        )
        for levels, granted in added:
            self._broker._send_retained(self, levels, granted)

    def _on_unsubscribe(self, body: bytes) -> None:
        r = _Reader(body)
        pid = r.uint16()
        self._check(pid != 0, "packet identifier 0")
        count = 0
        while r.remaining:
            self.subscriptions.pop(r.string(), None)
            count += 1
        self._check(count > 0, "UNSUBSCRIBE without topic filters")
        self._broker._routes_changed()
        self._write(bytes((_UNSUBACK << 4, 2)) + pid.to_bytes(2, "big"))


class EmbeddedBroker:
    """A small asyncio MQTT 3.1.1 broker for the demo and tests (not for production)."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        max_packet_size: int = 256 * 1024,
        write_buffer_limit: int = 8 * 1024 * 1024,
        logger: logging.Logger | None = None,
    ) -> None:
        if max_packet_size < 2:
            raise ValueError("max_packet_size must be at least 2 bytes")
        self._host = host
        self._requested_port = port
        self._bound_port: int | None = None
        self._max_packet_size = max_packet_size
        self._write_buffer_limit = write_buffer_limit
        self._log = logger if logger is not None else logging.getLogger(__name__)
        self._server: asyncio.Server | None = None
        self._stopping = False
        self._connections: set[_Connection] = set()
        self._clients: dict[str, _Connection] = {}
        self._retained: dict[str, _Message] = {}
        self._routes: dict[str, tuple[tuple[_Connection, int], ...]] = {}
        self.stats: dict[str, int] = {
            "connections": 0,
            "clients_connected": 0,
            "messages_in": 0,
            "messages_out": 0,
            "messages_dropped": 0,
        }
        """Counters: accepted MQTT sessions, current sessions, PUBLISH in/out, QoS 0 dropped."""

    @property
    def host(self) -> str:
        """The address the broker listens on."""
        return self._host

    @property
    def port(self) -> int:
        """The actual listening port (valid once started, so ``port=0`` works)."""
        if self._bound_port is None:
            raise RuntimeError("EmbeddedBroker is not started")
        return self._bound_port

    @property
    def retained_topics(self) -> list[str]:
        """Topics that currently hold a retained message."""
        return list(self._retained)

    async def start(self) -> None:
        """Bind the listening socket; raises BrokerPortInUseError if the port is taken."""
        if self._server is not None:
            raise RuntimeError("EmbeddedBroker is already started")
        loop = asyncio.get_running_loop()
        self._stopping = False
        try:
            server = await loop.create_server(
                lambda: _Connection(self, loop), self._host, self._requested_port
            )
        except OSError as exc:
            if exc.errno in _ADDR_IN_USE:
                raise BrokerPortInUseError(self._host, self._requested_port) from exc
            raise
        self._server = server
        self._bound_port = int(server.sockets[0].getsockname()[1])
        self._log.info("embedded MQTT broker listening on %s:%d", self._host, self._bound_port)

    async def stop(self) -> None:
        """Close the listener and every client connection (no wills are published)."""
        server = self._server
        if server is None:
            return
        self._server = None
        self._stopping = True
        server.close()
        connections = list(self._connections)
        for conn in connections:
            conn.shutdown()
        if connections:
            _, pending = await asyncio.wait([c.closed for c in connections], timeout=_STOP_GRACE)
            if pending:
                for conn in connections:
                    if not conn.closed.done():
                        conn.force_abort()
                await asyncio.wait(pending, timeout=_STOP_GRACE)
        await server.wait_closed()
        self._clients.clear()
        self._retained.clear()
        self._routes.clear()
        self.stats["clients_connected"] = 0
        self._bound_port = None
        self._log.info("embedded MQTT broker stopped")

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    # -- internals used by _Connection -----------------------------------------------------

    def _register(self, conn: _Connection) -> None:
        assert conn.client_id is not None
        previous = self._clients.get(conn.client_id)
        if previous is not None:
            previous.abort_session(f"client id taken over by {conn.peer}")  # will is published
        self._clients[conn.client_id] = conn
        self.stats["connections"] += 1
        self.stats["clients_connected"] = len(self._clients)

    def _detach(self, conn: _Connection) -> None:
        if conn.client_id is not None and self._clients.get(conn.client_id) is conn:
            del self._clients[conn.client_id]
            self.stats["clients_connected"] = len(self._clients)
        if conn.subscriptions:
            conn.subscriptions.clear()
            self._routes.clear()

    def _routes_changed(self) -> None:
        self._routes.clear()

    def _publish(self, msg: _Message) -> None:
        if msg.retain:
            if msg.payload:
                self._retained[msg.topic] = msg
            else:
                self._retained.pop(msg.topic, None)
        routes = self._routes.get(msg.topic)
        if routes is None:
            routes = self._compute_routes(msg.topic)
        qos = msg.qos
        for conn, granted in routes:
            conn.send(msg, qos if qos < granted else granted, False)

    def _compute_routes(self, topic: str) -> tuple[tuple[_Connection, int], ...]:
        levels = topic.split("/")
        dollar = topic.startswith("$")
        routes = []
        for conn in self._clients.values():
            best = -1
            for granted, filter_levels in conn.subscriptions.values():
                if granted > best and _matches(filter_levels, levels, dollar):
                    best = granted
            if best >= 0:
                routes.append((conn, best))
        if len(self._routes) >= _ROUTE_CACHE_SIZE:
            self._routes.clear()
        result = self._routes[topic] = tuple(routes)
        return result

    def _send_retained(self, conn: _Connection, filter_levels: tuple[str, ...], qos: int) -> None:
        for msg in list(self._retained.values()):
            if _matches(filter_levels, msg.topic.split("/"), msg.topic.startswith("$")):
                conn.send(msg, min(msg.qos, qos), True)
