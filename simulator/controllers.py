"""The simulated controllers' I/O: one MQTT connection per intersection, one shared scheduler.

Each controller is its own ``aiomqtt.Client`` (client id ``sim-<id>``, optional username and
password), sets a retained Last Will ``{"v":1,"online":false}`` on ``<prefix>/<id>/status``,
publishes a retained ``online`` status when it connects, and reconnects with jittered
exponential backoff when the broker goes away. What it publishes and when comes from the pure
modules: :mod:`simulator.plan` (the signal timing and the ground truth) and
:mod:`simulator.faults` (what a faulty controller sends instead).

Scheduling: one task keeps a heap of "next publish" times for all controllers. A controller is
due at its next state change or one heartbeat (default 900 ms, so at least 1 Hz) after its last
report, whichever comes first, so a change is published within a few milliseconds of happening.
The report published at time t is computed for t itself, so a late wake-up never publishes a
stale state: its remaining times are simply counted from a later ``ts_ms``.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
import random
import socket
import ssl
import time
import uuid
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

import aiomqtt

from signal_gateway.core.model import Intersection, Mode, SignalState
from signal_gateway.testing import status_payload
from simulator.control import (
    CONTROL_TOPIC,
    Command,
    CommandError,
    ack_error,
    ack_ok,
    ack_topic,
    check_control_topic,
    encode_ack,
    encode_command,
    parse_command,
)
from simulator.faults import MALFORMED_KINDS, Faults, malformed, render
from simulator.plan import CityPlan, IntersectionPlan, as_g, build_city_plan

__all__ = ["Credential", "FaultEvent", "Simulator", "Truth"]

log = logging.getLogger("simulator")

Credential = Callable[[str], str | None] | Mapping[str, str] | None

WIRE_MODES = frozenset({Mode.NORMAL, Mode.FLASH, Mode.DARK, Mode.MANUAL, Mode.PREEMPT, Mode.FAULT})


@dataclass(frozen=True, slots=True)
class FaultEvent:
    """Something the simulator did to a controller, with the wall time it did it."""

    at_ms: int
    intersection_id: str
    kind: str  # connected, disconnected, dropped, resumed, mode, silence, skew, ...
    detail: str = ""


class Truth:
    """Ground truth for tests: when each group actually changes, and what faults were injected.

    Times are the simulator's clock (Unix ms), the clock a skewed controller's ``ts_ms`` is wrong
    against. Signal changes come from the plans and hold whatever a controller publishes (a
    controller in flash mode still has a plan running underneath; see :meth:`mode_at`).
    """

    def __init__(self, city: CityPlan, max_events: int = 100_000) -> None:
        """Truth over ``city``'s plans; keeps the last ``max_events`` fault events."""
        self.city = city
        self.events: deque[FaultEvent] = deque(maxlen=max_events)

    def plan(self, intersection_id: str) -> IntersectionPlan:
        """The plan of one intersection."""
        return self.city[intersection_id]

    def transitions(
        self, intersection_id: str, sg: int, from_ms: int, to_ms: int
    ) -> list[tuple[int, SignalState]]:
        """``(at_ms, new_state)`` for every change of group ``sg`` in [from_ms, to_ms)."""
        return self.city[intersection_id].transitions(sg, from_ms, to_ms)

    def next_transition(
        self, intersection_id: str, sg: int, after_ms: int, horizon_ms: int = 600_000
    ) -> tuple[int, SignalState] | None:
        """The first change of ``sg`` strictly after ``after_ms`` (within ``horizon_ms``)."""
        found = self.transitions(intersection_id, sg, after_ms + 1, after_ms + 1 + horizon_ms)
        return found[0] if found else None

    def state_at(self, intersection_id: str, sg: int, at_ms: int) -> SignalState:
        """The state the plan shows for ``sg`` at ``at_ms``."""
        return self.city[intersection_id].state_of(sg, at_ms)

    def record(self, event: FaultEvent) -> None:
        """Remember an event (the simulator calls this)."""
        self.events.append(event)

    def events_for(self, intersection_id: str, kind: str | None = None) -> list[FaultEvent]:
        """The recorded events of one controller, optionally of one kind, oldest first."""
        return [
            e
            for e in self.events
            if e.intersection_id == intersection_id and (kind is None or e.kind == kind)
        ]

    def mode_at(self, intersection_id: str, at_ms: int) -> Mode:
        """The mode the controller published at ``at_ms`` (normal unless a fault set another)."""
        mode = Mode.NORMAL
        for event in self.events:
            if event.intersection_id == intersection_id and event.kind == "mode":
                if event.at_ms > at_ms:
                    break
                mode = Mode(event.detail)
        return mode


@dataclass(eq=False, slots=True)
class _Controller:
    plan: IntersectionPlan
    faults: Faults = field(default_factory=Faults)
    client: aiomqtt.Client | None = None
    seq: int = 0
    dropped: bool = False
    hold: bool = False  # a restart is announcing itself: publish nothing meanwhile
    resume: asyncio.Event = field(default_factory=asyncio.Event)
    connected: asyncio.Event = field(default_factory=asyncio.Event)
    token: int = 0
    published: int = 0
    connects: int = 0
    task: asyncio.Task[None] | None = None

    @property
    def id(self) -> str:
        return self.plan.id

    @property
    def intersection(self) -> Intersection:
        return self.plan.intersection


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def _abort(client: aiomqtt.Client) -> None:
    """Shut the TCP connection down without an MQTT DISCONNECT, so the broker fires the Will."""
    sock = client._client.socket()
    if isinstance(sock, socket.socket):
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


def _lookup(source: Credential, intersection_id: str) -> str | None:
    if source is None:
        return None
    if callable(source):
        return source(intersection_id)
    return source.get(intersection_id)


class Simulator:
    """All (or ``only`` some) of the city's controllers, publishing their plans over MQTT.

    ``await run()`` until cancelled, or ``await start()`` ... ``await stop()``. ``ready`` is set
    while every controller that is meant to be connected (all but the dropped ones) is.
    ``truth`` is the ground truth. The fault methods act on one controller at once.
    """

    def __init__(
        self,
        registry: Iterable[Intersection],
        broker_host: str,
        broker_port: int = 1883,
        *,
        seed: int = 0,
        speed: float = 1.0,
        only: Iterable[str] | None = None,
        prefix: str = "signals",
        username_for: Credential = None,
        password_for: Credential = None,
        clock: Callable[[], float] = time.time,
        epoch_ms: int | None = None,
        heartbeat_ms: int = 900,
        keepalive_s: int = 10,
        reconnect_min_s: float = 0.5,
        reconnect_max_s: float = 10.0,
        tls_context: ssl.SSLContext | None = None,
        announce_offline: bool = True,
        control_topic: str | None = CONTROL_TOPIC,
        control_username: str | None = None,
        control_password: str | None = None,
    ) -> None:
        """Plans for the whole registry (they do not depend on ``only``); nothing connects yet.

        Credentials: with ``password_for`` (a dict or a callable of the intersection id) and no
        ``username_for``, each controller logs in as its intersection id.
        ``control_topic``: where fault commands are taken from (:mod:`simulator.control`), over
        one more connection logging in as ``control_username``/``control_password``; empty or
        None: no control channel. ValueError if it lies under ``prefix``.
        ``epoch_ms`` anchors the plans (default: now, to the second); ``clock`` returns Unix
        seconds and must run at real pace (sleeps are real).
        """
        self._clock = clock
        intersections = list(registry)
        if epoch_ms is None:
            epoch_ms = self.now_ms() // 1000 * 1000
        self.city = build_city_plan(intersections, seed=seed, epoch_ms=epoch_ms, speed=speed)
        self.truth = Truth(self.city)
        wanted = None if only is None else list(dict.fromkeys(only))
        if wanted is not None:
            unknown = [iid for iid in wanted if iid not in self.city.plans]
            if unknown:
                raise KeyError(f"unknown intersection id(s): {', '.join(unknown)}")
        ids = wanted if wanted is not None else list(self.city.plans)
        self._controllers = {iid: _Controller(self.city[iid]) for iid in ids}
        self.host = broker_host
        self.port = broker_port
        self.prefix = prefix.rstrip("/")
        self.seed = seed
        self.speed = speed
        self.heartbeat_ms = heartbeat_ms
        self.keepalive_s = keepalive_s
        self.reconnect_min_s = reconnect_min_s
        self.reconnect_max_s = reconnect_max_s
        self.announce_offline = announce_offline
        self._tls_context = tls_context
        self._username_for = username_for
        self._password_for = password_for
        self.ready = asyncio.Event()
        self._all_up_logged = False
        self._failure_logged = False
        self._heap: list[tuple[int, int, str, int]] = []
        self._counter = 0
        self._wake: asyncio.Future[None] | None = None
        self._scheduler: asyncio.Task[None] | None = None
        self._publishing: set[asyncio.Task[None]] = set()
        self._jitter = random.Random()
        self._started = False
        self._stats_at = 0
        self._stats_published = 0
        self.control_topic = control_topic or None
        if self.control_topic is not None:
            problem = check_control_topic(self.control_topic, self.prefix)
            if problem is not None:
                raise ValueError(problem)
        self._control_username = control_username
        self._control_password = control_password
        self._control_task: asyncio.Task[None] | None = None
        self._control_client_id = f"sim-control-{uuid.uuid4().hex[:8]}"
        self._answered: OrderedDict[str, bytes] = OrderedDict()
        self.control_ready = asyncio.Event()
        """Set while the control channel is subscribed to ``control_topic``."""

    # ------------------------------------------------------------------ identity and time

    @property
    def ids(self) -> tuple[str, ...]:
        """The ids of the controllers this simulator runs."""
        return tuple(self._controllers)

    def now_ms(self) -> int:
        """The simulator's clock, Unix ms."""
        return int(self._clock() * 1000)

    def topic(self, intersection_id: str, kind: str) -> str:
        """``<prefix>/<id>/<kind>``."""
        return f"{self.prefix}/{intersection_id}/{kind}"

    def client_id(self, intersection_id: str) -> str:
        """The MQTT client id of a controller."""
        return f"sim-{intersection_id}"

    def connected(self, intersection_id: str) -> bool:
        """Whether the controller is connected right now."""
        return self._get(intersection_id).client is not None

    def seq(self, intersection_id: str) -> int:
        """The ``seq`` the controller's next report will carry."""
        return self._get(intersection_id).seq

    def published(self, intersection_id: str) -> int:
        """How many SPaT payloads the controller has handed to MQTT."""
        return self._get(intersection_id).published

    async def wait_connected(self, intersection_id: str, timeout_s: float = 10.0) -> None:
        """Wait until the controller is connected (TimeoutError after ``timeout_s``)."""
        await asyncio.wait_for(self._get(intersection_id).connected.wait(), timeout_s)

    # ------------------------------------------------------------------ lifetime

    async def run(self) -> None:
        """Run until cancelled; then announce every controller offline and disconnect."""
        await self.start()
        try:
            await asyncio.get_running_loop().create_future()
        finally:
            await self.stop()

    async def start(self) -> None:
        """Start the scheduler and connect every controller (returns at once; see ``ready``)."""
        if self._started:
            return
        self._started = True
        log.info(
            "%s; running %d controllers against %s:%d (topics %s/<id>/...)",
            self.city.summary(),
            len(self._controllers),
            self.host,
            self.port,
            self.prefix,
        )
        self._stats_at = self.now_ms()
        self._scheduler = asyncio.create_task(self._schedule_loop(), name="simulator-scheduler")
        for c in self._controllers.values():
            c.task = asyncio.create_task(self._connection(c), name=f"simulator-{c.id}")
        if self.control_topic is not None:
            self._control_task = asyncio.create_task(
                self._control_connection(self.control_topic), name="simulator-control"
            )

    async def stop(self) -> None:
        """Stop publishing, announce offline (retained) unless told not to, disconnect."""
        if not self._started:
            return
        self._started = False
        tasks: list[asyncio.Task[None]] = []
        if self._scheduler is not None:
            self._scheduler.cancel()
            tasks.append(self._scheduler)
            self._scheduler = None
        for c in self._controllers.values():
            if c.task is not None:
                c.task.cancel()
                tasks.append(c.task)
                c.task = None
        if self._control_task is not None:
            self._control_task.cancel()
            tasks.append(self._control_task)
            self._control_task = None
        for task in self._publishing:
            task.cancel()
        tasks.extend(self._publishing)
        await asyncio.gather(*tasks, return_exceptions=True)
        self.ready.clear()
        log.info("simulator stopped")

    async def __aenter__(self) -> Simulator:
        """``async with Simulator(...) as sim:`` starts it and waits for ``ready``."""
        await self.start()
        await self.ready.wait()
        return self

    async def __aexit__(self, *exc: object) -> None:
        """Stop it."""
        await self.stop()

    # ------------------------------------------------------------------ connections

    def credentials_for(self, intersection_id: str) -> tuple[str | None, str | None]:
        """The (username, password) a controller logs in with (None, None: anonymous)."""
        password = _lookup(self._password_for, intersection_id)
        username = _lookup(self._username_for, intersection_id)
        if username is None and password is not None:
            username = intersection_id
        return username, password

    async def _connection(self, c: _Controller) -> None:
        """Keep one controller connected: connect, announce, wait for loss, back off, again."""
        backoff = self.reconnect_min_s
        while True:
            if c.dropped:
                await c.resume.wait()
            username, password = self.credentials_for(c.id)
            client = aiomqtt.Client(
                self.host,
                self.port,
                identifier=self.client_id(c.id),
                username=username,
                password=password,
                will=aiomqtt.Will(
                    self.topic(c.id, "status"), status_payload(False), qos=1, retain=True
                ),
                keepalive=self.keepalive_s,
                timeout=10,
                tls_context=self._tls_context,
                logger=logging.getLogger("simulator.mqtt"),
            )
            try:
                async with client:
                    await client.publish(
                        self.topic(c.id, "status"),
                        status_payload(True, self.now_ms()),
                        qos=1,
                        retain=True,
                    )
                    if c.dropped:  # dropped while connecting: die the same abrupt way
                        _abort(client)
                    else:
                        c.client = client
                        c.connects += 1
                        c.connected.set()
                        backoff = self.reconnect_min_s
                        self._failure_logged = False
                        self._event(c, "connected", f"as {self.client_id(c.id)}")
                        log.debug("%s connected as %s", c.id, self.client_id(c.id))
                        self._update_ready()
                        self._schedule(c, self.now_ms())
                    try:
                        async for _message in client.messages:
                            pass  # nothing is subscribed: this waits for the connection to end
                    except asyncio.CancelledError:
                        c.client = None
                        if self.announce_offline and not c.dropped:
                            await self._announce_offline(c, client)
                        raise
            except aiomqtt.MqttError as exc:
                if not c.dropped:
                    if self._failure_logged:
                        log.debug("%s: broker connection failed or lost: %s", c.id, exc)
                    else:
                        self._failure_logged = True
                        log.warning(
                            "%s: broker %s:%d connection failed or lost (%s); reconnecting "
                            "with backoff (further failures are logged at debug level)",
                            c.id,
                            self.host,
                            self.port,
                            exc,
                        )
            finally:
                was_up = c.client is client
                c.client = None
                c.connected.clear()
                if was_up:
                    self._event(c, "disconnected")
                self._update_ready()
            if c.dropped:
                continue
            delay = backoff * self._jitter.uniform(0.5, 1.0)
            backoff = min(backoff * 2, self.reconnect_max_s)
            await asyncio.sleep(delay)

    async def _announce_offline(self, c: _Controller, client: aiomqtt.Client) -> None:
        with contextlib.suppress(aiomqtt.MqttError, TimeoutError):
            await asyncio.wait_for(
                client.publish(
                    self.topic(c.id, "status"),
                    status_payload(False, self.now_ms()),
                    qos=1,
                    retain=True,
                ),
                2.0,
            )

    def _update_ready(self) -> None:
        wanted = [c for c in self._controllers.values() if not c.dropped]
        down = [c.id for c in wanted if c.client is None]
        if not down:
            if not self.ready.is_set():
                self.ready.set()
                if not self._all_up_logged:
                    log.info(
                        "all %d controllers connected to %s:%d", len(wanted), self.host, self.port
                    )
                    self._all_up_logged = True
            return
        if self.ready.is_set():
            self.ready.clear()
        if self._all_up_logged and len(down) == len(wanted) and self._started:
            log.warning(
                "all %d controllers lost the broker %s:%d; reconnecting with backoff",
                len(wanted),
                self.host,
                self.port,
            )
            self._all_up_logged = False

    # ------------------------------------------------------------------ scheduling

    def _schedule(self, c: _Controller, due_ms: int) -> None:
        c.token += 1
        self._counter += 1
        heapq.heappush(self._heap, (due_ms, self._counter, c.id, c.token))
        if self._wake is not None:
            _resolve(self._wake)

    async def _schedule_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            now = self.now_ms()
            while self._heap and self._heap[0][0] <= now:
                _due, _n, iid, token = heapq.heappop(self._heap)
                c = self._controllers[iid]
                if token == c.token:
                    self._tick(c, now)
                now = self.now_ms()
            self._log_stats(now)
            self._wake = loop.create_future()
            handle = None
            if self._heap:
                handle = loop.call_later((self._heap[0][0] - now) / 1000, _resolve, self._wake)
            try:
                await self._wake
            finally:
                self._wake = None
                if handle is not None:
                    handle.cancel()

    def _tick(self, c: _Controller, now: int) -> None:
        """Publish the controller's report for ``now`` and schedule its next one."""
        timings, change = c.plan.tick(now)
        if c.client is not None and not c.hold:
            groups = [as_g(timing) for timing in timings]
            payloads, c.seq = render(c.intersection, groups, now, c.seq, c.faults)
            for payload in payloads:
                self._send(c, c.client, self.topic(c.id, "spat"), payload)
        due = now + self.heartbeat_ms
        if change is not None and change < due:
            due = change
        self._schedule(c, due)

    def _send(
        self, c: _Controller, client: aiomqtt.Client, topic: str, payload: bytes, qos: int = 0
    ) -> None:
        c.published += 1
        self._stats_published += 1
        task = asyncio.create_task(self._publish(c, client, topic, payload, qos))
        self._publishing.add(task)
        task.add_done_callback(self._publishing.discard)

    async def _publish(
        self, c: _Controller, client: aiomqtt.Client, topic: str, payload: bytes, qos: int
    ) -> None:
        try:
            await client.publish(topic, payload, qos=qos)
        except aiomqtt.MqttError as exc:
            log.debug("%s: publish on %s failed: %s", c.id, topic, exc)

    def _log_stats(self, now: int) -> None:
        if now - self._stats_at < 60_000:
            return
        up = sum(c.client is not None for c in self._controllers.values())
        log.info(
            "%d SPaT messages in the last %.0f s; %d/%d controllers connected",
            self._stats_published,
            (now - self._stats_at) / 1000,
            up,
            len(self._controllers),
        )
        self._stats_at = now
        self._stats_published = 0

    # ------------------------------------------------------------------ faults

    def _get(self, intersection_id: str) -> _Controller:
        try:
            return self._controllers[intersection_id]
        except KeyError:
            raise KeyError(f"{intersection_id} is not run by this simulator") from None

    def _event(self, c: _Controller, kind: str, detail: str = "") -> None:
        self.truth.record(FaultEvent(self.now_ms(), c.id, kind, detail))

    def _republish(self, c: _Controller) -> None:
        if self._started:
            self._schedule(c, self.now_ms())

    def drop(self, intersection_id: str) -> None:
        """Cut the connection without DISCONNECT (the broker publishes the Will); stays down.

        The TCP socket is shut down under paho's feet, as a crash or a cable cut would; the
        controller stays away until :meth:`resume`.
        """
        c = self._get(intersection_id)
        c.dropped = True
        c.resume.clear()
        client, c.client = c.client, None
        self._event(c, "dropped")
        log.info("%s: connection dropped without DISCONNECT: the broker publishes its Will", c.id)
        if client is not None:
            _abort(client)
        self._update_ready()

    def resume(self, intersection_id: str) -> None:
        """Reconnect a dropped controller (it re-publishes its online status; seq goes on)."""
        c = self._get(intersection_id)
        if not c.dropped:
            return
        c.dropped = False
        c.resume.set()
        self._event(c, "resumed")
        log.info("%s: resuming (reconnects and announces online)", c.id)
        self._update_ready()

    def silence(self, intersection_id: str, on: bool = True) -> None:
        """Stay connected but publish nothing (``on=False`` speaks again at once)."""
        c = self._get(intersection_id)
        c.faults.silent = on
        self._event(c, "silence", "on" if on else "off")
        log.info("%s: %s", c.id, "silent while connected" if on else "speaking again")
        self._republish(c)

    def set_mode(self, intersection_id: str, mode: Mode | str) -> None:
        """Publish ``mode`` from now on (flash, dark, manual, preempt, fault; normal ends it)."""
        c = self._get(intersection_id)
        value = Mode(mode)
        if value not in WIRE_MODES:
            raise ValueError(f"mode {value.value!r} cannot be published")
        c.faults.mode = value
        self._event(c, "mode", value.value)
        log.info("%s: mode %s", c.id, value.value)
        self._republish(c)

    def skew(self, intersection_id: str, ms: int) -> None:
        """Add ``ms`` to every ``ts_ms`` from now on (0 ends the skew)."""
        c = self._get(intersection_id)
        c.faults.skew_ms = ms
        self._event(c, "skew", str(ms))
        log.info("%s: clock skewed by %+d ms", c.id, ms)
        self._republish(c)

    def duplicate(self, intersection_id: str, count: int = 1) -> None:
        """Publish the next ``count`` reports twice each (same ``seq``)."""
        c = self._get(intersection_id)
        c.faults.duplicate += count
        self._event(c, "duplicate", str(count))
        log.info("%s: duplicating the next %d report(s)", c.id, count)
        self._republish(c)

    def reorder(self, intersection_id: str) -> None:
        """Hold the next report back and publish it after the one that follows it."""
        c = self._get(intersection_id)
        c.faults.reorder = True
        self._event(c, "reorder")
        log.info("%s: reordering the next two reports", c.id)
        self._republish(c)

    def conflict(self, intersection_id: str, on: bool = True) -> None:
        """Report two conflicting groups green at once (``on=False`` ends it)."""
        c = self._get(intersection_id)
        c.faults.conflict = on
        self._event(c, "conflict", "on" if on else "off")
        log.info("%s: conflicting greens %s", c.id, "on" if on else "off")
        self._republish(c)

    def heal(self, intersection_id: str) -> None:
        """End every fault of the controller's reports (not a drop: see :meth:`resume`)."""
        c = self._get(intersection_id)
        c.faults.clear()
        self._event(c, "mode", Mode.NORMAL.value)
        self._event(c, "healed")
        log.info("%s: healthy again", c.id)
        self._republish(c)

    async def send_malformed(self, intersection_id: str, kind: str) -> bytes:
        """Publish one malformed payload (``faults.MALFORMED_KINDS``) on the SPaT topic."""
        c = self._get(intersection_id)
        if kind not in MALFORMED_KINDS:
            raise ValueError(
                f"unknown malformed kind {kind!r}; known: {', '.join(MALFORMED_KINDS)}"
            )
        now = self.now_ms()
        others = [iid for iid in self.city.plans if iid != c.id]
        payload = malformed(
            kind,
            c.intersection,
            c.plan.groups_at(now),
            now + c.faults.skew_ms,
            c.seq,
            other_id=others[0] if others else "XX999",
        )
        c.seq += 1
        self._event(c, "malformed", kind)
        log.info("%s: sending a malformed payload (%s, %d bytes)", c.id, kind, len(payload))
        await self.publish_raw(intersection_id, self.topic(c.id, "spat"), payload)
        return payload

    async def publish_raw(
        self,
        intersection_id: str,
        topic: str,
        payload: bytes,
        *,
        qos: int = 0,
        retain: bool = False,
    ) -> None:
        """Publish any bytes on any topic over this controller's connection (ACL tests)."""
        c = self._get(intersection_id)
        client = c.client
        if client is None:
            raise RuntimeError(f"{intersection_id} is not connected")
        c.published += 1
        await client.publish(topic, payload, qos=qos, retain=retain)

    async def restart(self, intersection_id: str) -> None:
        """Restart: re-publish the online status, then count ``seq`` from 0 again."""
        c = self._get(intersection_id)
        client = c.client
        if client is None:
            raise RuntimeError(f"{intersection_id} is not connected")
        c.hold = True
        c.seq = 0
        c.faults.held = None
        try:
            await client.publish(
                self.topic(c.id, "status"), status_payload(True, self.now_ms()), qos=1, retain=True
            )
        finally:
            c.hold = False
        self._event(c, "restart")
        log.info("%s: restarted (online status re-published, seq from 0)", c.id)
        self._republish(c)

    # ------------------------------------------------------------------ control channel

    @property
    def control_credentials(self) -> tuple[str | None, str | None]:
        """The (username, password) the control channel logs in with (None, None: anonymous)."""
        return self._control_username, self._control_password

    @property
    def control_client_id(self) -> str:
        """The MQTT client id of the control channel, ``sim-control-<random>``."""
        return self._control_client_id

    def _runs(self) -> str:
        ids = list(self._controllers)
        shown = ", ".join(ids[:5]) + (", ..." if len(ids) > 5 else "")
        return f"it runs {len(ids)}: {shown}"

    async def apply(self, command: Command) -> dict[str, object]:
        """Carry out one control command now; the acknowledgement (``ok`` false says why not).

        Never raises for a command that cannot be carried out (unknown id, a restart of a
        controller that is not connected...): that is an ``ok: false`` answer.
        """
        iid = command.id
        c = self._controllers.get(iid)
        if c is None:
            return ack_error(f"id: {iid!r} is not run by this simulator ({self._runs()})", command)
        if command.op in ("restart", "malformed") and c.client is None:
            why = "dropped: resume it first" if c.dropped else "reconnecting to the broker"
            return ack_error(
                f"{command.op} {iid}: the controller is not connected ({why})", command
            )
        try:
            match command.op:
                case "drop":
                    self.drop(iid)
                case "resume":
                    self.resume(iid)
                case "silence":
                    self.silence(iid, True)
                case "speak":
                    self.silence(iid, False)
                case "mode":
                    self.set_mode(iid, command.mode)
                case "skew":
                    self.skew(iid, command.ms)
                case "duplicate":
                    self.duplicate(iid, command.count)
                case "reorder":
                    self.reorder(iid)
                case "conflict":
                    self.conflict(iid, command.on)
                case "restart":
                    await self.restart(iid)
                case "heal":
                    self.heal(iid)
                case "malformed":
                    await self.send_malformed(iid, command.kind)
                case _:
                    return ack_error(f"op: {command.op!r} is not an operation", command)
        except (KeyError, ValueError, RuntimeError, aiomqtt.MqttError) as exc:
            reason = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
            return ack_error(f"{command.op} {iid}: {reason}", command)
        return ack_ok(command)

    async def _control_connection(self, topic: str) -> None:
        """Keep the control channel subscribed to ``topic``; answer every command on it."""
        answers = ack_topic(topic)
        backoff = self.reconnect_min_s
        warned = False
        while True:
            client = aiomqtt.Client(
                self.host,
                self.port,
                identifier=self._control_client_id,
                username=self._control_username,
                password=self._control_password,
                keepalive=self.keepalive_s,
                timeout=10,
                tls_context=self._tls_context,
                logger=logging.getLogger("simulator.mqtt"),
            )
            try:
                async with client:
                    await client.subscribe(topic, qos=1)
                    self.control_ready.set()
                    backoff = self.reconnect_min_s
                    warned = False
                    log.info(
                        "control channel: commands on %s, answers on %s (client id %s)",
                        topic,
                        answers,
                        self._control_client_id,
                    )
                    async for message in client.messages:
                        raw = message.payload
                        payload = bytes(raw) if isinstance(raw, bytes | bytearray) else b""
                        await self._serve_command(client, answers, payload)
            except aiomqtt.MqttError as exc:
                if warned:
                    log.debug("control channel: broker connection failed or lost: %s", exc)
                else:
                    warned = True
                    log.warning(
                        "control channel: broker %s:%d connection failed or lost (%s); "
                        "reconnecting with backoff (further failures are logged at debug level)",
                        self.host,
                        self.port,
                        exc,
                    )
            finally:
                self.control_ready.clear()
            delay = backoff * self._jitter.uniform(0.5, 1.0)
            backoff = min(backoff * 2, self.reconnect_max_s)
            await asyncio.sleep(delay)

    async def _serve_command(self, client: aiomqtt.Client, answers: str, payload: bytes) -> None:
        """Parse, apply (once per ``ref``) and answer one control payload; never raises."""
        command = parse_command(payload)
        if isinstance(command, CommandError):
            log.warning("control: refused %r: %s", payload[:200], command)
            ack = ack_error(command)
        elif command.ref is not None and command.ref in self._answered:
            log.debug("control: ref %s again: answered before, not carried out twice", command.ref)
            await self._publish_ack(client, answers, self._answered[command.ref])
            return
        else:
            log.info("control: %s", encode_command(command).decode())
            try:
                ack = await self.apply(command)
            except Exception as exc:  # a command must never take the simulator down
                log.exception("control: %s %s failed", command.op, command.id)
                ack = ack_error(f"{command.op} {command.id}: internal error: {exc!r}", command)
            if not ack["ok"]:
                log.warning("control: refused: %s", ack["error"])
        encoded = encode_ack(ack)
        ref = ack.get("ref")
        if isinstance(ref, str):
            self._answered[ref] = encoded
            while len(self._answered) > 1024:
                self._answered.popitem(last=False)
        await self._publish_ack(client, answers, encoded)

    async def _publish_ack(self, client: aiomqtt.Client, answers: str, encoded: bytes) -> None:
        try:
            await client.publish(answers, encoded, qos=1)
        except aiomqtt.MqttError as exc:
            log.debug("control: answer on %s not published: %s", answers, exc)
