"""The fan-out hub: who subscribed to what, and one flush that sends every client its updates.

Owns the connected clients, their subscriptions and their latest-state-wins backlog. Each view
is encoded once (and re-encoded only when it changes); each distinct frame is built once per
flush and the same bytes go to every client that needs them. A client whose send buffer is
full is skipped, not waited for: the ids it missed are remembered (a set, never a queue), and
it gets their newest views as soon as it drains. A client over the hard byte bound, or stuck
for longer than the stall timeout, is evicted.

Synchronous and clock-free: the asyncio flush loop (``fanout.loop``) calls :meth:`Hub.flush`
with the ids the city reports changed and ``now_ms``. Sinks are non-blocking writers.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Protocol

from signal_gateway.core.views import IntersectionView, frame

CLOSE_TOO_SLOW = 1013  # RFC 6455 "Try Again Later": the client may reconnect after backoff


class Sink(Protocol):
    """A non-blocking writer of WebSocket text frames to one client."""

    def ready(self) -> bool:
        """Whether a frame may be written now without piling up in the send buffer."""

    def send(self, frame: bytes) -> None:
        """Write one text frame (UTF-8 JSON) without waiting."""

    def buffered_bytes(self) -> int:
        """Bytes written but not yet taken by the network."""

    def close(self, code: int, reason: str) -> None:
        """Close the connection with a WebSocket close code."""


@dataclass(frozen=True, slots=True)
class Subscription:
    """What a client asked for: every intersection (``ids is None``) or a set of ids."""

    ids: frozenset[str] | None

    @property
    def everything(self) -> bool:
        """Whether the client follows the whole city."""
        return self.ids is None


NOTHING = Subscription(frozenset())
EVERYTHING = Subscription(None)


@dataclass(frozen=True, slots=True)
class HubConfig:
    """Per-client limits of the fan-out."""

    max_buffered_bytes: int = 1024 * 1024
    stall_timeout_ms: int = 30_000


@dataclass(eq=False, slots=True)
class Client:
    """One connected WebSocket client."""

    number: int
    sink: Sink
    peer: str
    subscription: Subscription = NOTHING
    backlog: set[str] = field(default_factory=set)
    stalled_since_ms: int | None = None
    frames_sent: int = 0
    bytes_sent: int = 0


@dataclass(frozen=True, slots=True)
class FlushReport:
    """What one flush did, for metrics."""

    clients_sent: int
    frames_built: int
    bytes_sent: int
    skipped_slow: int
    evicted: tuple[Client, ...]


class Hub:
    """Connected clients and the one flush that serves them all."""

    def __init__(
        self,
        view_of: Callable[[str], IntersectionView],
        all_ids: Iterable[str],
        config: HubConfig | None = None,
    ) -> None:
        self._view_of = view_of
        self._all_ids = tuple(all_ids)
        self.config = config or HubConfig()
        self.clients: dict[int, Client] = {}
        self._numbers = itertools.count(1)
        self._encoded: dict[str, tuple[IntersectionView, bytes]] = {}

    def __len__(self) -> int:
        return len(self.clients)

    def add(self, sink: Sink, peer: str = "") -> Client:
        """Register a connected client; it receives nothing until it subscribes."""
        client = Client(next(self._numbers), sink, peer)
        self.clients[client.number] = client
        return client

    def remove(self, client: Client) -> None:
        """Forget a client (idempotent)."""
        self.clients.pop(client.number, None)

    def encoded(self, intersection_id: str) -> bytes:
        """The view's JSON, encoded once per version of the view."""
        view = self._view_of(intersection_id)
        cached = self._encoded.get(intersection_id)
        if cached is not None and cached[0] is view:
            return cached[1]
        data = view.encode()
        self._encoded[intersection_id] = (view, data)
        return data

    def snapshot(self, subscription: Subscription, now_ms: int) -> bytes:
        """A snapshot frame of everything ``subscription`` covers."""
        ids = self._all_ids if subscription.ids is None else self._ordered(subscription.ids)
        return frame("snapshot", now_ms, [self.encoded(i) for i in ids])

    def subscribe(self, client: Client, subscription: Subscription, now_ms: int) -> bytes:
        """Replace the client's subscription and send it a snapshot; returns the frame sent."""
        client.subscription = subscription
        client.backlog.clear()
        client.stalled_since_ms = None  # the snapshot covers all it missed; the stall is over
        data = self.snapshot(subscription, now_ms)
        self._send(client, data)
        return data

    def flush(self, changed: set[str], now_ms: int) -> FlushReport:
        """Send each client an update with the newest views of what changed in its subscription."""
        frames: dict[frozenset[str] | None, bytes] = {}
        built = sent = skipped = sent_bytes = 0
        evicted: list[Client] = []
        everything_frame: bytes | None = None
        for client in list(self.clients.values()):
            if client.sink.buffered_bytes() > self.config.max_buffered_bytes:
                # Checked for every client, not only those with something to send: snapshots,
                # replies and pongs are written outside the flush, and a client that keeps
                # asking for them without reading may have a quiet subscription.
                self._evict(client, "send buffer over limit", evicted)
                skipped += 1
                continue
            sub = client.subscription.ids
            if not client.backlog:
                if not changed:
                    continue
                if sub is None:
                    if not client.sink.ready():
                        skipped += self._stall(client, set(changed), now_ms, evicted)
                        continue
                    if everything_frame is None:
                        everything_frame = self._update(changed, now_ms)
                        built += 1
                    self._send(client, everything_frame)
                    sent += 1
                    sent_bytes += len(everything_frame)
                    continue
            wanted = (changed | client.backlog) if sub is None else (changed | client.backlog) & sub
            if not wanted:
                continue
            if not client.sink.ready():
                skipped += self._stall(client, wanted, now_ms, evicted)
                continue
            key = frozenset(wanted)
            data = frames.get(key)
            if data is None:
                data = frames[key] = self._update(wanted, now_ms)
                built += 1
            client.backlog.clear()
            client.stalled_since_ms = None
            self._send(client, data)
            sent += 1
            sent_bytes += len(data)
        return FlushReport(sent, built, sent_bytes, skipped, tuple(evicted))

    def _stall(self, client: Client, missed: set[str], now_ms: int, evicted: list[Client]) -> int:
        """Remember what a slow client missed; evict it when over the byte or time bound."""
        client.backlog |= missed
        if client.stalled_since_ms is None:
            client.stalled_since_ms = now_ms
        over_bytes = client.sink.buffered_bytes() > self.config.max_buffered_bytes
        over_time = now_ms - client.stalled_since_ms > self.config.stall_timeout_ms
        if over_bytes or over_time:
            self._evict(client, "send buffer over limit" if over_bytes else "not reading", evicted)
        return 1

    def _evict(self, client: Client, why: str, evicted: list[Client]) -> None:
        client.sink.close(CLOSE_TOO_SLOW, why)
        self.remove(client)
        evicted.append(client)

    def _update(self, ids: Iterable[str], now_ms: int) -> bytes:
        return frame("update", now_ms, [self.encoded(i) for i in self._ordered(ids)])

    def _ordered(self, ids: Iterable[str]) -> list[str]:
        return sorted(ids)

    def _send(self, client: Client, data: bytes) -> None:
        client.sink.send(data)
        client.frames_sent += 1
        client.bytes_sent += len(data)
