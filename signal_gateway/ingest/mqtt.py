"""The MQTT loop: subscribe to the controllers' topics and hand each message to the city.

Owns the broker connection (aiomqtt, one reusable client, reconnect in a loop with jittered
exponential backoff, resubscribing on every connect) and nothing else: parsing is ``wire``'s,
judging is the core's. While disconnected every intersection goes stale through the core's
ordinary staleness rule, so no number outlives the broker link.
"""

from __future__ import annotations

import asyncio
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
        on_outcome: Callable[[Outcome], None] | None = None,
        extra_handlers: dict[str, ExtraHandler] | None = None,
        clock: Callable[[], int] = wall_ms,
    ) -> None:
        self.city = city
        self.broker = broker
        self.prefix = prefix
        self.client_id = client_id or f"signal-gateway-{random.randrange(16**8):08x}"
        self.keepalive_s = keepalive_s
        self.max_payload_bytes = max_payload_bytes
        self.backoff = backoff
        self.on_outcome = on_outcome
        self.extra_handlers = extra_handlers or {}
        self.clock = clock
        self.stats = IngestStats()
        self.connected = asyncio.Event()
        self._rejections = RateLimitedLog(log)

    def _client(self) -> aiomqtt.Client:
        tls = ssl.create_default_context() if self.broker.tls else None
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
        client = self._client()
        while True:
            try:
                async with client:
                    self.stats.connected = True
                    self.stats.connects += 1
                    self.connected.set()
                    log.info("connected to %s as %s", self.broker, self.client_id)
                    delay = self.backoff[0]
                    await client.subscribe(f"{self.prefix}/+/spat", qos=0)
                    await client.subscribe(f"{self.prefix}/+/status", qos=1)
                    for topic in self.extra_handlers:
                        await client.subscribe(topic, qos=0)
                    async for message in client.messages:
                        self.handle(str(message.topic), _payload(message.payload), message.retain)
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
            sleep = delay * random.uniform(0.5, 1.0)
            log.info("reconnecting in %.1f s", sleep)
            await asyncio.sleep(sleep)
            delay = min(delay * 2, self.backoff[1])

    def handle(self, topic: str, payload: bytes, retained: bool = False) -> list[Outcome]:
        """Parse, judge and apply one message; returns what the city made of it. Never raises."""
        now = self.clock()
        try:
            outcomes = self._dispatch(topic, payload, retained, now)
        except Exception:  # a bug must cost one message, never the loop or other data
            log.exception("internal error handling a message on %s", topic)
            outcomes = [
                self.city.reject(Rejection("internal_error", f"{topic}: see the log"), now)
            ]
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
