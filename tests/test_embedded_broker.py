"""Tests for the embedded demo MQTT broker, driven by aiomqtt, mosquitto clients and raw sockets."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import shutil
import socket
import uuid
from collections.abc import AsyncIterator
from types import TracebackType
from typing import Self

import aiomqtt
import pytest
from paho.mqtt.reasoncodes import ReasonCode

from signal_gateway.embedded_broker import BrokerPortInUseError, EmbeddedBroker

TIMEOUT = 10.0

needs_mosquitto_clients = pytest.mark.skipif(
    shutil.which("mosquitto_pub") is None or shutil.which("mosquitto_sub") is None,
    reason="mosquitto_pub/mosquitto_sub not installed",
)


# -- helpers -----------------------------------------------------------------------------------


def _length(n: int) -> bytes:
    out = bytearray()
    while True:
        n, digit = divmod(n, 128)
        out.append(digit | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _str(text: str | bytes) -> bytes:
    raw = text.encode() if isinstance(text, str) else text
    return len(raw).to_bytes(2, "big") + raw


def _packet(first: int, body: bytes) -> bytes:
    return bytes((first,)) + _length(len(body)) + body


def _connect(
    client_id: str,
    *,
    keepalive: int = 60,
    will: tuple[str, bytes, bool] | None = None,
    level: int = 4,
) -> bytes:
    flags = 0x02
    payload = _str(client_id)
    if will is not None:
        topic, message, retain = will
        flags |= 0x04 | (0x20 if retain else 0)
        payload += _str(topic) + _str(message)
    body = _str("MQTT") + bytes((level, flags)) + keepalive.to_bytes(2, "big") + payload
    return _packet(0x10, body)


def _publish(topic: str | bytes, payload: bytes, *, first: int = 0x30) -> bytes:
    pid = b"\x00\x01" if first & 0x06 else b""
    return _packet(first, _str(topic) + pid + payload)


class RawClient:
    """A bare TCP MQTT client for behaviour aiomqtt will not produce (abrupt close, bad bytes)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, port: int, sock: socket.socket | None = None) -> RawClient:
        """Open a TCP connection (over ``sock`` if given) without sending anything."""
        if sock is None:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        else:
            reader, writer = await asyncio.open_connection(sock=sock)
        return cls(reader, writer)

    @classmethod
    async def connect(
        cls,
        port: int,
        client_id: str,
        *,
        keepalive: int = 60,
        will: tuple[str, bytes, bool] | None = None,
    ) -> RawClient:
        """Open a connection, send CONNECT and check for a successful CONNACK."""
        client = await cls.open(port)
        try:
            client.send(_connect(client_id, keepalive=keepalive, will=will))
            assert await client.read(4) == b"\x20\x02\x00\x00"
        except BaseException:
            client.abort()
            raise
        return client

    def send(self, data: bytes) -> None:
        """Write raw bytes."""
        self.writer.write(data)

    async def read(self, n: int) -> bytes:
        """Read exactly ``n`` bytes."""
        async with asyncio.timeout(TIMEOUT):
            return await self.reader.readexactly(n)

    async def expect_closed(self) -> bytes:
        """Wait until the broker closes the connection; return whatever arrived before that."""
        async with asyncio.timeout(TIMEOUT):
            return await self.reader.read()

    def abort(self) -> None:
        """Drop the socket abruptly, as a crashed controller would."""
        self.writer.transport.abort()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError):
            await self.writer.wait_closed()


def mqtt(
    broker: EmbeddedBroker, identifier: str, will: aiomqtt.Will | None = None
) -> aiomqtt.Client:
    """An aiomqtt client for ``broker``."""
    return aiomqtt.Client("127.0.0.1", broker.port, identifier=identifier, will=will)


async def next_message(client: aiomqtt.Client) -> aiomqtt.Message:
    """The next message ``client`` receives, failing after TIMEOUT."""
    async with asyncio.timeout(TIMEOUT):
        return await anext(client.messages)


async def mosquitto_pub(broker: EmbeddedBroker, *args: str) -> None:
    """Run mosquitto_pub against ``broker`` and require success."""
    proc = await asyncio.create_subprocess_exec(
        "mosquitto_pub",
        *("-h", "127.0.0.1", "-p", str(broker.port), *args),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        async with asyncio.timeout(TIMEOUT):
            out, _ = await proc.communicate()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.communicate()
    assert proc.returncode == 0, out.decode()


class MosquittoSub:
    """A running mosquitto_sub whose output lines are ``retain|qos|topic|payload``."""

    def __init__(self, proc: asyncio.subprocess.Process, marker: str) -> None:
        self.proc = proc
        self.marker = marker

    async def message(self, *, skip_marker: bool = True) -> tuple[bool, int, str, str]:
        """The next received message as (retain, qos, topic, payload)."""
        assert self.proc.stdout is not None
        while True:
            async with asyncio.timeout(TIMEOUT):
                raw = await self.proc.stdout.readline()
            assert raw, "mosquitto_sub exited"
            retain, qos, topic, payload = raw.decode().rstrip("\n").split("|", 3)
            if not (skip_marker and topic == self.marker):
                return retain == "1", int(qos), topic, payload


@contextlib.asynccontextmanager
async def mosquitto_sub(broker: EmbeddedBroker, *args: str) -> AsyncIterator[MosquittoSub]:
    """Start mosquitto_sub and return once it is subscribed.

    mosquitto_sub block-buffers its debug log on a pipe but flushes every message it prints, so
    readiness is a retained marker message arriving on an extra subscription.
    """
    marker = f"ready/{uuid.uuid4().hex}"
    await mosquitto_pub(broker, "-r", "-t", marker, "-m", "ready")
    proc = await asyncio.create_subprocess_exec(
        "mosquitto_sub",
        *("-h", "127.0.0.1", "-p", str(broker.port), "-F", "%r|%q|%t|%p", "-t", marker, *args),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    sub = MosquittoSub(proc, marker)
    try:
        assert await sub.message(skip_marker=False) == (True, 0, marker, "ready")
        await mosquitto_pub(broker, "-r", "-n", "-t", marker)
        yield sub
    finally:
        if proc.returncode is None:
            proc.kill()
        await proc.communicate()


@pytest.fixture
async def broker() -> AsyncIterator[EmbeddedBroker]:
    """A running broker on a free port."""
    async with EmbeddedBroker() as running:
        yield running


# -- routing -----------------------------------------------------------------------------------


async def test_wildcard_subscriptions_receive_exactly_the_matching_topics(
    broker: EmbeddedBroker,
) -> None:
    """``+`` matches one level and ``#`` matches any number including the parent level."""
    async with (
        mqtt(broker, "plus") as plus,
        mqtt(broker, "hash") as hash_,
        mqtt(broker, "pub") as pub,
    ):
        await plus.subscribe("signals/+/state")
        await hash_.subscribe("signals/#")
        for topic in (
            "signals",
            "signals/a/state",
            "signals/a/b/state",
            "other/x",
            "signals/z/state",
        ):
            await pub.publish(topic, topic.encode())
        assert [str((await next_message(plus)).topic) for _ in range(2)] == [
            "signals/a/state",
            "signals/z/state",
        ]
        assert [str((await next_message(hash_)).topic) for _ in range(4)] == [
            "signals",
            "signals/a/state",
            "signals/a/b/state",
            "signals/z/state",
        ]


async def test_dollar_topics_are_not_matched_by_leading_wildcards(broker: EmbeddedBroker) -> None:
    """``#`` and ``+/…`` skip topics starting with ``$``; an explicit ``$SYS/#`` gets them."""
    async with mqtt(broker, "wild") as wild, mqtt(broker, "sys") as sys_:
        await wild.subscribe([("#", 0), ("+/x", 0)])
        await sys_.subscribe("$SYS/#")
        await wild.publish("$SYS/x", b"hidden")
        await wild.publish("plain/x", b"sentinel")
        assert str((await next_message(wild)).topic) == "plain/x"
        assert str((await next_message(sys_)).topic) == "$SYS/x"


async def test_unsubscribe_stops_delivery(broker: EmbeddedBroker) -> None:
    """After UNSUBSCRIBE the filter no longer delivers while other filters still do."""
    async with mqtt(broker, "sub") as sub:
        await sub.subscribe([("a/#", 0), ("b/#", 0)])
        await sub.unsubscribe("a/#")
        await sub.publish("a/1", b"gone")
        await sub.publish("b/1", b"kept")
        message = await next_message(sub)
        assert (str(message.topic), message.payload) == ("b/1", b"kept")


async def test_qos_is_the_minimum_of_publish_and_subscription(broker: EmbeddedBroker) -> None:
    """QoS 1 round-trips (PUBACK), QoS 2 publishes complete, delivery is min(pub, sub, 1)."""
    async with (
        mqtt(broker, "q1") as q1,
        mqtt(broker, "q0") as q0,
        mqtt(broker, "pub") as pub,
    ):
        granted = await q1.subscribe("q/#", qos=2)
        assert [code.value if isinstance(code, ReasonCode) else code for code in granted] == [1]
        await q0.subscribe("q/#", qos=0)
        async with asyncio.timeout(TIMEOUT):  # QoS 1 awaits PUBACK, QoS 2 awaits PUBCOMP
            await pub.publish("q/1", b"one", qos=1)
            await pub.publish("q/2", b"two", qos=2)
            await pub.publish("q/0", b"zero", qos=0)
        assert [(await next_message(q1)).qos for _ in range(3)] == [1, 1, 0]
        assert [(await next_message(q0)).qos for _ in range(3)] == [0, 0, 0]
    assert broker.stats["messages_in"] == 3
    assert broker.stats["messages_out"] == 6


@needs_mosquitto_clients
async def test_mosquitto_clients_publish_and_subscribe_at_every_qos(
    broker: EmbeddedBroker,
) -> None:
    """mosquitto_pub (QoS 0/1/2, MQTT 3.1 and 3.1.1) reaches mosquitto_sub with QoS capped at 1."""
    async with mosquitto_sub(broker, "-q", "2", "-t", "lights/#") as sub:
        await mosquitto_pub(broker, "-t", "lights/0", "-m", "q0", "-q", "0")
        await mosquitto_pub(broker, "-t", "lights/1", "-m", "q1", "-q", "1")
        await mosquitto_pub(broker, "-t", "lights/2", "-m", "q2", "-q", "2")
        await mosquitto_pub(broker, "-V", "mqttv31", "-t", "lights/31", "-m", "v31", "-q", "1")
        received = [await sub.message() for _ in range(4)]
    assert received == [
        (False, 0, "lights/0", "q0"),
        (False, 1, "lights/1", "q1"),
        (False, 1, "lights/2", "q2"),
        (False, 1, "lights/31", "v31"),
    ]


# -- retained messages -----------------------------------------------------------------------


@needs_mosquitto_clients
async def test_retained_message_reaches_late_subscribers_until_cleared(
    broker: EmbeddedBroker,
) -> None:
    """A retained publish reaches later subscribers with retain set; an empty one clears it."""
    async with mqtt(broker, "early") as early:
        await early.subscribe("plan/#")
        await mosquitto_pub(broker, "-r", "-q", "1", "-t", "plan/7", "-m", "cycle-90")
        live = await next_message(early)
        assert (live.payload, live.retain) == (b"cycle-90", False)

    async with mosquitto_sub(broker, "-t", "plan/+") as late_cli:
        assert await late_cli.message() == (True, 0, "plan/7", "cycle-90")
    async with mqtt(broker, "late") as late:
        await late.subscribe("plan/7", qos=1)
        retained = await next_message(late)
        assert (retained.payload, retained.retain, retained.qos) == (b"cycle-90", True, 1)

    await mosquitto_pub(broker, "-r", "-n", "-t", "plan/7")
    assert broker.retained_topics == []
    async with mqtt(broker, "later") as later:
        await later.subscribe("plan/7")
        await later.publish("plan/7", b"sentinel")
        message = await next_message(later)  # a retained copy would have arrived first
        assert (message.payload, message.retain) == (b"sentinel", False)


# -- wills -------------------------------------------------------------------------------------


async def test_will_is_published_and_retained_when_socket_drops(broker: EmbeddedBroker) -> None:
    """Closing the socket without DISCONNECT publishes the Will, retained for later subscribers."""
    async with mqtt(broker, "watcher") as watcher:
        await watcher.subscribe("status/#")
        raw = await RawClient.connect(
            broker.port, "ctrl-1", will=("status/ctrl-1", b"offline", True)
        )
        raw.abort()
        will = await next_message(watcher)
        assert (str(will.topic), will.payload) == ("status/ctrl-1", b"offline")
    async with mqtt(broker, "late") as late:
        await late.subscribe("status/#")
        retained = await next_message(late)
        assert (retained.payload, retained.retain) == (b"offline", True)


@needs_mosquitto_clients
async def test_will_is_published_when_mosquitto_sub_is_killed(broker: EmbeddedBroker) -> None:
    """SIGKILLing a mosquitto_sub that set --will-topic makes the broker publish its Will."""
    async with mqtt(broker, "watcher") as watcher:
        await watcher.subscribe("status/#", qos=1)
        will_args = ("--will-topic", "status/cli", "--will-payload", "lost", "--will-qos", "1")
        async with mosquitto_sub(broker, "-t", "unused", *will_args) as sub:
            sub.proc.kill()
        will = await next_message(watcher)
        assert (str(will.topic), will.payload, will.qos) == ("status/cli", b"lost", 1)


async def test_no_will_after_clean_disconnect(broker: EmbeddedBroker) -> None:
    """A client that sends DISCONNECT before closing does not get its Will published."""
    async with mqtt(broker, "watcher") as watcher:
        await watcher.subscribe("status/#")
        async with await RawClient.connect(
            broker.port, "ctrl-2", will=("status/ctrl-2", b"offline", True)
        ) as raw:
            raw.send(b"\xe0\x00")
            assert await raw.expect_closed() == b""  # broker closed after handling DISCONNECT
        await watcher.publish("status/ctrl-2", b"sentinel")
        message = await next_message(watcher)
        assert message.payload == b"sentinel"
    assert broker.retained_topics == []


async def test_aiomqtt_clean_exit_publishes_no_will(broker: EmbeddedBroker) -> None:
    """Leaving aiomqtt's context (DISCONNECT) does not fire the Will set through aiomqtt."""
    async with mqtt(broker, "watcher") as watcher:
        await watcher.subscribe("status/#")
        async with mqtt(broker, "polite", will=aiomqtt.Will("status/polite", b"x", retain=True)):
            assert broker.stats["clients_connected"] == 2
        async with asyncio.timeout(TIMEOUT):
            # Poll a condition (bounded by the timeout): paho closes its socket itself, so there
            # is no reply to wait for that proves the broker has handled the DISCONNECT.
            while broker.stats["clients_connected"] != 1:  # noqa: ASYNC110
                await asyncio.sleep(0.01)
        await watcher.publish("status/polite", b"sentinel")
        assert (await next_message(watcher)).payload == b"sentinel"


async def test_keepalive_expiry_publishes_will_after_one_and_a_half_keepalives(
    broker: EmbeddedBroker,
) -> None:
    """A silent client with keepalive=1 is dropped about 1.5 s later and its Will published."""
    loop = asyncio.get_running_loop()
    async with mqtt(broker, "watcher") as watcher:
        await watcher.subscribe("status/#")
        async with await RawClient.connect(
            broker.port, "sleepy", keepalive=1, will=("status/sleepy", b"timeout", False)
        ) as raw:
            started = loop.time()
            will = await next_message(watcher)
            elapsed = loop.time() - started
            assert will.payload == b"timeout"
            assert 1.2 <= elapsed < 3.0
            assert await raw.expect_closed() == b""


async def test_client_id_takeover_disconnects_old_client_and_publishes_its_will(
    broker: EmbeddedBroker,
) -> None:
    """A second CONNECT with the same client id closes the first connection, firing its Will."""
    async with mqtt(broker, "watcher") as watcher:
        await watcher.subscribe("status/#")
        async with (
            await RawClient.connect(broker.port, "dup", will=("status/dup", b"old", False)) as old,
            await RawClient.connect(broker.port, "dup") as new,
        ):
            assert await old.expect_closed() == b""
            assert (await next_message(watcher)).payload == b"old"
            new.send(b"\xc0\x00")
            assert await new.read(2) == b"\xd0\x00"
    assert broker.stats["connections"] == 3


# -- protocol errors ---------------------------------------------------------------------------

MALFORMED = {
    "publish-qos-3": _publish("a/b", b"x", first=0x36),
    "remaining-length-5-bytes": b"\x30\xff\xff\xff\xff\x01",
    "second-connect": _connect("again"),
    "wildcard-in-topic-name": _publish("a/+", b"x"),
    "invalid-utf8-topic": _publish(b"\xff\xfe", b"x"),
    "reserved-packet-type": b"\xf0\x00",
    "subscribe-bad-flags": _packet(0x80, b"\x00\x01" + _str("a") + b"\x00"),
    "subscribe-without-filters": _packet(0x82, b"\x00\x01"),
    "pingreq-with-body": b"\xc0\x01\x00",
}


@pytest.mark.parametrize("packet", MALFORMED.values(), ids=MALFORMED.keys())
async def test_malformed_packet_closes_only_that_connection(
    broker: EmbeddedBroker, packet: bytes
) -> None:
    """A malformed packet closes its connection and publishes its Will; others carry on."""
    async with mqtt(broker, "healthy") as healthy:
        await healthy.subscribe([("status/#", 0), ("ok/#", 0)])
        async with await RawClient.connect(
            broker.port, "broken", will=("status/broken", b"bad", False)
        ) as raw:
            raw.send(packet)
            assert await raw.expect_closed() == b""
        assert (await next_message(healthy)).payload == b"bad"
        await healthy.publish("ok/ping", b"still here")
        assert (await next_message(healthy)).payload == b"still here"
        assert broker.stats["clients_connected"] == 1


async def test_oversized_packet_is_rejected_from_its_header() -> None:
    """A packet larger than max_packet_size closes the connection before its body is sent."""
    async with EmbeddedBroker(max_packet_size=1024) as small:
        async with await RawClient.connect(small.port, "big") as raw:
            raw.send(b"\x30" + _length(2000))
            assert await raw.expect_closed() == b""
        async with await RawClient.connect(small.port, "fits") as raw:
            raw.send(_publish("a", bytes(1000)) + b"\xc0\x00")
            assert await raw.read(2) == b"\xd0\x00"


async def test_first_packet_must_be_connect(broker: EmbeddedBroker) -> None:
    """A connection whose first packet is not CONNECT is closed without any reply."""
    async with await RawClient.open(broker.port) as raw:
        raw.send(b"\xc0\x00")
        assert await raw.expect_closed() == b""
    assert broker.stats["connections"] == 0


async def test_unsupported_protocol_level_is_refused_with_connack_1(
    broker: EmbeddedBroker,
) -> None:
    """CONNECT with protocol level 5 gets CONNACK return code 1 and is closed."""
    async with await RawClient.open(broker.port) as raw:
        raw.send(_connect("v5", level=5))
        assert await raw.expect_closed() == b"\x20\x02\x00\x01"


async def test_pingreq_gets_pingresp(broker: EmbeddedBroker) -> None:
    """PINGREQ is answered with PINGRESP."""
    async with await RawClient.connect(broker.port, "pinger") as raw:
        raw.send(b"\xc0\x00")
        assert await raw.read(2) == b"\xd0\x00"


# -- lifecycle -----------------------------------------------------------------------------------


async def test_port_in_use_raises_a_clear_error(broker: EmbeddedBroker) -> None:
    """Starting a second broker on a taken port raises BrokerPortInUseError with a clear message."""
    second = EmbeddedBroker(port=broker.port)
    with pytest.raises(BrokerPortInUseError) as caught:
        await second.start()
    assert str(caught.value) == f"port {broker.port} on 127.0.0.1 is already in use"
    assert isinstance(caught.value, OSError)
    assert caught.value.errno == errno.EADDRINUSE


async def test_stop_closes_every_client_connection() -> None:
    """stop() closes the listener and all client connections, and may be called twice."""
    running = EmbeddedBroker()
    await running.start()
    port = running.port
    async with await RawClient.connect(port, "a") as first, await RawClient.open(port) as second:
        async with asyncio.timeout(1.0):  # a clean close, not the 2 s abort fallback
            await running.stop()
        assert await first.expect_closed() == b""
        assert await second.expect_closed() == b""
    await running.stop()
    with pytest.raises(RuntimeError):
        _ = running.port
    with pytest.raises(ConnectionRefusedError):
        await RawClient.open(port)


# -- load --------------------------------------------------------------------------------------

CONTROLLERS = 235
MESSAGES_EACH = 10


async def test_235_concurrent_controllers_reach_one_subscriber(broker: EmbeddedBroker) -> None:
    """235 concurrently publishing aiomqtt clients deliver every message, in order per client."""
    total = CONTROLLERS * MESSAGES_EACH

    async def controller(index: int, ready: asyncio.Barrier) -> None:
        async with mqtt(broker, f"ctrl-{index}") as client:
            await ready.wait()
            for seq in range(MESSAGES_EACH):
                await client.publish(f"signals/{index}/state", f"{seq}".encode(), qos=1)

    async with mqtt(broker, "gateway") as gateway:
        await gateway.subscribe("signals/+/state", qos=1)
        ready = asyncio.Barrier(CONTROLLERS)
        async with asyncio.timeout(60):
            await asyncio.gather(*(controller(i, ready) for i in range(CONTROLLERS)))
            received: dict[str, list[int]] = {}
            for _ in range(total):
                message = await anext(gateway.messages)
                assert isinstance(message.payload, bytes)
                received.setdefault(str(message.topic), []).append(int(message.payload))
    assert len(received) == CONTROLLERS
    assert all(seqs == list(range(MESSAGES_EACH)) for seqs in received.values())
    assert broker.stats["messages_in"] == total
    assert broker.stats["connections"] == CONTROLLERS + 1


async def test_slow_subscriber_loses_qos0_without_blocking_others() -> None:
    """A subscriber that stops reading has QoS 0 messages dropped; other subscribers get all."""
    count, size = 320, 32 * 1024
    async with EmbeddedBroker(write_buffer_limit=64 * 1024) as small:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", small.port))
        async with (
            await RawClient.open(small.port, sock=sock) as slow,
            mqtt(small, "fast") as fast,
            mqtt(small, "pub") as pub,
        ):
            slow.send(_connect("slow") + _packet(0x82, b"\x00\x01" + _str("bulk/#") + b"\x00"))
            assert await slow.read(9) == b"\x20\x02\x00\x00\x90\x03\x00\x01\x00"
            await fast.subscribe("bulk/#")
            payload = bytes(size)
            for i in range(count):
                await pub.publish(f"bulk/{i}", payload)
            for i in range(count):
                assert str((await next_message(fast)).topic) == f"bulk/{i}"
            assert small.stats["messages_dropped"] > 0
            assert small.stats["clients_connected"] == 3  # QoS 0 backlog never disconnects
            slow.abort()
