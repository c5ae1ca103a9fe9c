"""The MQTT loop: subscribe to the controllers' topics and hand each message to the city.

Owns the broker connection (aiomqtt, a new client per attempt, reconnect in a loop with
jittered exponential backoff, resubscribing on every connect) and nothing else: parsing is
``wire``'s, judging is the core's.

Link watch: a report's transit delay cannot be told from its controller's clock offset, so a
delay that lasts (a slow link, a backlog of messages) would be learned as offset and make every
end late by it. The ingest therefore probes its own round trip through the broker every
``probe_interval_s``: it publishes a token to ``{prefix}/{its username or client id}/probe`` and
takes it back through its own subscription, the path every controller message takes to it, so
a backlog anywhere on that path (the broker's queue for this client, the link, this process)
delays the probe too. While the round trip exceeds ``slow_link_ms`` (a probe still unanswered
counts), the city learns no offset (``City.set_timely``): an end can then be late by at most
that much. While disconnected, the city shows no time at all (``City.set_link``).

The broker must let the gateway write there: the city's ACL (deploy/mosquitto/acl) does, with
its ``pattern write signals/%u/#``. A probe never answered 10 s after connecting means it
cannot: the ingest then says so in the log, once, and runs without the guard.

After each connect no offset is learned until the first probe is back in time (the first
reports may be late by anything: a backlog, a herd of controllers reconnecting with the broker).

Overload: aiomqtt reads one packet per event-loop iteration, so a gateway that cannot keep up
leaves the backlog in the broker (which drops QoS 0 messages beyond its queue limit) and the
socket, not in this process, and the probe waits behind it.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import random
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import aiomqtt

from signal_gateway.core.city import City, Outcome
from signal_gateway.core.model import Rejection
from signal_gateway.ingest import wire
from signal_gateway.settings import BrokerURL

log = logging.getLogger("signal_gateway.mqtt")

# A handler for another feed on the same broker (e.g. J2735 SPaT): topic, payload, receive ms.
ExtraHandler = Callable[[str, bytes, int], list[Outcome]]


def wall_ms() -> int:
    """The gateway clock, Unix ms (the only clock the I/O layer reads)."""
    return time.time_ns() // 1_000_000


@dataclass
class IngestStats:
    """Counters the metrics and readiness endpoints read."""

    connected: bool = False
    connects: int = 0
    disconnects: int = 0
    last_error: str = ""
    results: dict[str, int] = field(default_factory=dict)
    timely: bool = True
    link_rtt_ms: float | None = None  # the last completed probe's round trip
    slow_episodes: int = 0


class RateLimitedLog:
    """Logs at most one line per reason per interval, then says how many were suppressed."""

    def __init__(self, logger: logging.Logger, interval_s: float = 10.0) -> None:
        self._log = logger
        self._interval = interval_s
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def warning(self, reason: str, message: str) -> None:
        """Log ``message`` unless ``reason`` was logged within the interval."""
        now = time.monotonic()
        if now - self._last.get(reason, -1e9) < self._interval:
            self._suppressed[reason] = self._suppressed.get(reason, 0) + 1
            return
        more = self._suppressed.pop(reason, 0)
        self._last[reason] = now
        suffix = f" (+{more} more since last logged)" if more else ""
        self._log.warning("rejected [%s] %s%s", reason, message, suffix)


class MqttIngest:
    """Subscribes to ``{prefix}/+/spat`` and ``{prefix}/+/status`` and feeds the city."""

    def __init__(
        self,
        city: City,
        broker: BrokerURL,
        *,
        prefix: str = "signals",
        client_id: str = "",
        keepalive_s: int = 10,
        max_payload_bytes: int = wire.DEFAULT_MAX_PAYLOAD_BYTES,
        backoff: tuple[float, float] = (0.5, 15.0),
        slow_link_ms: float = 150.0,
        probe_interval_s: float = 1.0,
        on_outcome: Callable[[Outcome], None] | None = None,
        extra_handlers: dict[str, ExtraHandler] | None = None,
        clock: Callable[[], int] = wall_ms,
        ca_file: str = "",
    ) -> None:
        self.city = city
        self.broker = broker
        self.prefix = prefix
        self.client_id = client_id or f"signal-gateway-{random.randrange(16**8):08x}"
        self.keepalive_s = keepalive_s
        self.max_payload_bytes = max_payload_bytes
        self.backoff = backoff
        self.slow_link_ms = slow_link_ms
        self.probe_interval_s = probe_interval_s
        self.on_outcome = on_outcome
        self.extra_handlers = extra_handlers or {}
        self.clock = clock
        self.ca_file = ca_file
        self.stats = IngestStats()
        self.connected = asyncio.Event()
        self._rejections = RateLimitedLog(log)
        user = broker.username or self.client_id
        self.probe_topic = f"{prefix}/{user}/probe"
        self._probe_answer: tuple[bytes, asyncio.Future[None]] | None = None
        self._probe_echoed = False  # some probe came back on this connection
        self._quiet = False  # untimely only because no probe came back yet

    def _client(self) -> aiomqtt.Client:
        tls = None
        if self.broker.tls:
            tls = ssl.create_default_context(cafile=self.ca_file or None)
        return aiomqtt.Client(
            self.broker.host,
            self.broker.port,
            username=self.broker.username,
            password=self.broker.password,
            identifier=self.client_id,
            keepalive=self.keepalive_s,
            tls_context=tls,
            timeout=max(5.0, self.keepalive_s),
        )

    async def run(self) -> None:
        """Connect, subscribe, consume; on any broker error reconnect with jittered backoff."""
        delay = self.backoff[0]
        while True:
            # A fresh client per attempt: a reused aiomqtt 2.5 client keeps the CONNACK future
            # of its previous connection after an unexpected disconnect, so its next
            # ``async with`` returns "connected" before the broker answered (and a refusal is
            # then ignored). tests/faults/test_network.py shows it through a blackholed link.
            client = self._client()
            try:
                async with client:
                    self.stats.connected = True
                    self.stats.connects += 1
                    self.connected.set()
                    self._set_link(True)
                    # Until the first probe comes back in time, nothing tells how late the
                    # first reports are (a backlog, a herd of controllers reconnecting): learn
                    # no offset from them. A broker that never echoes: see _probe.
                    self._set_timely(False, "", quiet=True)
                    log.info("connected to %s as %s", self.broker, self.client_id)
                    delay = self.backoff[0]
                    await client.subscribe(f"{self.prefix}/+/spat", qos=0)
                    await client.subscribe(f"{self.prefix}/+/status", qos=1)
                    for topic in self.extra_handlers:
                        await client.subscribe(topic, qos=0)
                    await client.subscribe(self.probe_topic, qos=0)
                    probe = asyncio.create_task(self._probe(client), name="mqtt-link-probe")
                    try:
                        async for message in client.messages:
                            topic, payload = str(message.topic), _payload(message.payload)
                            if topic == self.probe_topic:
                                self._probe_back(payload)
                            else:
                                self.handle(topic, payload, message.retain)
                    finally:
                        probe.cancel()
                        await asyncio.gather(probe, return_exceptions=True)
            except aiomqtt.MqttError as exc:
                self.stats.last_error = str(exc)
                if self.stats.connected:
                    log.warning("lost the broker %s: %s", self.broker, exc)
                else:
                    log.warning("cannot reach the broker %s: %s", self.broker, exc)
            finally:
                if self.stats.connected:
                    self.stats.disconnects += 1
                self.stats.connected = False
                self.connected.clear()
                self._set_link(False)
            sleep = delay * random.uniform(0.5, 1.0)
            log.info("reconnecting in %.1f s", sleep)
            await asyncio.sleep(sleep)
            delay = min(delay * 2, self.backoff[1])

    async def _probe(self, client: aiomqtt.Client) -> None:
        """Measure the round trip through the broker for ever; say when reports are held up."""
        loop = asyncio.get_running_loop()
        limit = self.slow_link_ms
        self._probe_echoed = False
        connected_at = loop.time()
        warned = False
        for number in itertools.count(1):
            token = b"%d" % number
            answer: asyncio.Future[None] = loop.create_future()
            self._probe_answer = (token, answer)
            started = loop.time()
            try:
                await client.publish(self.probe_topic, token, qos=0)
                done, _ = await asyncio.wait({answer}, timeout=limit / 1000)
                if not done and self._probe_echoed:
                    self._set_timely(False, f"no probe answer within {limit:g} ms")
                await asyncio.wait_for(answer, timeout=max(5.0, self.keepalive_s))
            except (aiomqtt.MqttError, TimeoutError) as exc:
                if self._probe_echoed:  # unanswered: a dead link ends by keepalive
                    self._set_timely(False, f"probe unanswered ({exc or 'timed out'})")
                elif not warned and loop.time() - connected_at > 10:
                    warned = True
                    log.error(
                        "the broker does not echo the gateway's probe on %s (may the gateway "
                        "write there?): a slow link cannot be told from clock offsets",
                        self.probe_topic,
                    )
                    self._set_timely(True, "no probe: guard off")
            else:
                self._probe_echoed = True
                rtt_ms = (loop.time() - started) * 1000
                self.stats.link_rtt_ms = rtt_ms
                self._set_timely(rtt_ms <= limit, f"probe round trip {rtt_ms:.0f} ms")
            await asyncio.sleep(self.probe_interval_s)

    def _probe_back(self, payload: bytes) -> None:
        pending = self._probe_answer
        if pending is not None and pending[0] == payload and not pending[1].done():
            pending[1].set_result(None)

    def _set_timely(self, timely: bool, why: str, *, quiet: bool = False) -> None:
        if timely is self.stats.timely:
            return
        self.stats.timely = timely
        self.city.set_timely(timely)
        if quiet:
            self._quiet = not timely
        elif timely:
            level = logging.DEBUG if self._quiet else logging.INFO
            log.log(level, "reports reach the gateway in time (%s)", why)
            self._quiet = False
        else:
            self.stats.slow_episodes += 1
            log.warning(
                "reports held up on the way (%s): clock offsets are not learned meanwhile", why
            )

    def _set_link(self, connected: bool) -> None:
        if self.city.set_link(connected, self.clock()) and self.on_outcome is not None:
            self.on_outcome(Outcome("link", changed=True))

    def handle(self, topic: str, payload: bytes, retained: bool = False) -> list[Outcome]:
        """Parse, judge and apply one message; returns what the city made of it. Never raises."""
        now = self.clock()
        try:
            outcomes = self._dispatch(topic, payload, retained, now)
        except Exception:  # a bug must cost one message, never the loop or other data
            log.exception("internal error handling a message on %s", topic)
            outcomes = [self.city.reject(Rejection("internal_error", f"{topic}: see the log"), now)]
        for outcome in outcomes:
            self.stats.results[outcome.result] = self.stats.results.get(outcome.result, 0) + 1
            if outcome.rejection is not None:
                self._rejections.warning(outcome.result, _describe(topic, outcome.rejection))
            if self.on_outcome is not None:
                self.on_outcome(outcome)
        return outcomes

    def _dispatch(self, topic: str, payload: bytes, retained: bool, now: int) -> list[Outcome]:
        handler = self._extra_handler(topic)
        if handler is None:
            return [self._handle_own(topic, payload, retained, now)]
        if retained:
            # Retained SPaT of any dialect is old by definition: its times would be wrong.
            rejection = Rejection("retained_spat", f"retain flag on {topic}: stale on arrival")
            return [self.city.reject(rejection, now)]
        return handler(topic, payload, now)

    def _extra_handler(self, topic: str) -> ExtraHandler | None:
        if not self.extra_handlers:
            return None
        parsed = aiomqtt.Topic(topic)
        for pattern, handler in self.extra_handlers.items():
            if parsed.matches(pattern):
                return handler
        return None

    def _handle_own(self, topic: str, payload: bytes, retained: bool, now: int) -> Outcome:
        parsed_topic = wire.parse_topic(topic, self.prefix)
        if isinstance(parsed_topic, Rejection):
            return self.city.reject(parsed_topic, now)
        iid = parsed_topic.intersection_id
        if parsed_topic.kind == "status":
            status = wire.parse_status(iid, payload, self.max_payload_bytes)
            if isinstance(status, Rejection):
                return self.city.reject(status, now)
            return self.city.on_status(status, now)
        if retained:
            # A retained SPaT is by definition old: its countdowns would be wrong numbers.
            rejection = Rejection(
                "retained_spat", "retain flag: SPaT must not be retained (stale on arrival)", iid
            )
            return self.city.reject(rejection, now)
        report = wire.parse_spat(iid, payload, self.max_payload_bytes)
        if isinstance(report, Rejection):
            return self.city.reject(report, now)
        return self.city.on_spat(report, now)


def _payload(payload: object) -> bytes:
    if isinstance(payload, bytes | bytearray):
        return bytes(payload)
    if isinstance(payload, str):
        return payload.encode()
    return b"" if payload is None else str(payload).encode()


def _describe(topic: str, rejection: Rejection) -> str:
    return f"{topic}: {rejection.message}"
