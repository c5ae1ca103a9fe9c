"""The running gateway: wires ingest → city → hub and owns the tasks that move data between them.

Owns the lifetime of the MQTT loop and the flush loop (started and stopped by the app's lifespan,
never at import), the flush scheduling (an isolated change goes out at once; bursts are coalesced
to at most one update per ``flush_ms``), and the recent-events ring. Holds no module globals.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable

from signal_gateway.core.city import City, Event, Outcome
from signal_gateway.core.model import Rejection
from signal_gateway.core.monitor import Monitor, MonitoredCity
from signal_gateway.core.registry import Registry
from signal_gateway.fanout.hub import Hub
from signal_gateway.ingest import j2735
from signal_gateway.ingest.mqtt import ExtraHandler, MqttIngest, wall_ms
from signal_gateway.settings import Settings

log = logging.getLogger("signal_gateway")


class Gateway:
    """One gateway process's state and background work."""

    def __init__(
        self, settings: Settings, registry: Registry, clock: Callable[[], int] = wall_ms
    ) -> None:
        self.settings = settings
        self.registry = registry
        self.clock = clock
        # -- engineers' view (issue 4): rules, health and timing history see every report ----
        history_ms = round(settings.history_minutes * 60_000)
        self.monitor = Monitor(settings.rules(), history_ms=history_ms)
        self.city: City = MonitoredCity(registry, settings.core(), self.monitor)
        # -- end engineers' view -----------------------------------------------------------
        self.hub = Hub(self.city.view, registry.ids, settings.hub())
        self.events: deque[Event] = deque(maxlen=10_000)
        self.event_listeners: list[Callable[[Event], None]] = []
        self.ingest = MqttIngest(
            self.city,
            settings.broker_url(),
            prefix=settings.topic_prefix,
            client_id=settings.client_id,
            keepalive_s=settings.mqtt_keepalive_s,
            max_payload_bytes=settings.max_payload_bytes,
            backoff=(settings.reconnect_min_s, settings.reconnect_max_s),
            slow_link_ms=settings.mqtt_slow_link_ms,
            on_outcome=self._on_outcome,
            extra_handlers=self._feeds(),
            clock=clock,
            ca_file=settings.broker_ca_file,
        )
        self._wake = asyncio.Event()
        self.flushes = 0
        self.flush_seconds = 0.0
        self.frames_sent = 0
        self.evictions = 0
        self.started_ms = clock()

    def _feeds(self) -> dict[str, ExtraHandler]:
        """Handlers for other SPaT dialects on the same broker (J2735 ODE JSON)."""
        if not self.settings.j2735_topic:
            return {}
        city = self.city

        def j2735_feed(topic: str, payload: bytes, now_ms: int) -> list[Outcome]:
            return [
                city.reject(item, now_ms)
                if isinstance(item, Rejection)
                else city.on_spat(item, now_ms)
                for item in j2735.parse_ode(payload, now_ms, self.registry)
            ]

        return {self.settings.j2735_topic: j2735_feed}

    def _on_outcome(self, outcome: Outcome) -> None:
        if outcome.changed:
            self._wake.set()
        for event in outcome.events:
            self.record(event)

    def record(self, event: Event) -> None:
        """Keep an event and tell the listeners (event log, engineers' feed)."""
        self.events.append(event)
        for listener in self.event_listeners:
            listener(event)

    async def run(self) -> None:
        """Run the MQTT loop and the flush loop until cancelled."""
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(self.ingest.run(), name="mqtt-ingest")
            tasks.create_task(self.flush_loop(), name="fanout-flush")

    async def flush_loop(self) -> None:
        """Tick the city and flush the hub: at once on a change, at most every ``flush_ms``."""
        period = self.settings.flush_ms / 1000
        tick = min(period, 0.1)
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=tick)
            self._wake.clear()
            started = time.perf_counter()
            self.flush_once()
            elapsed = time.perf_counter() - started
            self.flush_seconds += elapsed
            # Coalescing window: whatever changes meanwhile waits for the next flush.
            await asyncio.sleep(max(0.0, period - elapsed))

    def flush_once(self) -> None:
        """One tick of the city and one flush of the hub."""
        now = self.clock()
        for event in self.city.tick(now):
            self.record(event)
        changed = self.city.take_changed()
        report = self.hub.flush(changed, now)
        self.flushes += 1
        self.frames_sent += report.clients_sent
        if report.evicted:
            self.evictions += len(report.evicted)
            for client in report.evicted:
                log.warning("evicted slow WebSocket client %s", client.peer)

    @property
    def ready(self) -> bool:
        """Connected to the broker with the registry loaded."""
        return self.ingest.stats.connected and len(self.registry) > 0
