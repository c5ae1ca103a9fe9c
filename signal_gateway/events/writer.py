"""The event writer: a bounded queue in front of the event log, drained by one thread.

Owns the hand-off from the event loop to SQLite. :meth:`EventWriter.submit` never blocks and
never raises: it puts the event in a bounded queue, or drops and counts it when the queue is
full (a disk that stalls must never stall ingest). One daemon thread takes batches from the
queue, writes each batch in one transaction with its own connection, prunes to the retention
limits now and then, and survives write errors (counted, logged once per interval). It must
not touch the city or anything on the event loop.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from signal_gateway.core.city import Event

log = logging.getLogger("signal_gateway.events")


class EventSink(Protocol):
    """Where the writer puts batches (the SQLite store, or a typed fake in tests)."""

    def insert_many(self, events: Sequence[Event]) -> int:
        """Write the events; may block (it runs on the writer thread)."""

    def prune(self, now_ms: int, *, max_days: float | None, max_rows: int | None) -> int:
        """Apply the retention limits; returns how many rows went."""

    def close(self) -> None:
        """Release the file."""


@dataclass
class WriterStats:
    """Counters for /metrics and the engineers' view."""

    submitted: int = 0
    written: int = 0
    dropped: int = 0
    batches: int = 0
    errors: int = 0
    pruned: int = 0
    last_error: str = ""


_STOP = object()


class EventWriter:
    """Bounded queue + writer thread in front of an :class:`EventSink`."""

    def __init__(
        self,
        sink: EventSink,
        *,
        queue_size: int = 10_000,
        batch_size: int = 500,
        max_days: float | None = 30.0,
        max_rows: int | None = 1_000_000,
        prune_every_s: float = 60.0,
        clock: Callable[[], int] = lambda: time.time_ns() // 1_000_000,
    ) -> None:
        self._sink = sink
        self._queue: queue.Queue[object] = queue.Queue(maxsize=queue_size)
        self._batch_size = batch_size
        self._max_days = max_days
        self._max_rows = max_rows
        self._prune_every_s = prune_every_s
        self._clock = clock
        self._thread: threading.Thread | None = None
        self._done = threading.Condition()
        self._finished = 0  # events taken off the queue and dealt with (written or failed)
        self._last_log = -1e9
        self.stats = WriterStats()

    @property
    def queued(self) -> int:
        """Events waiting to be written."""
        return self._queue.qsize()

    def start(self) -> None:
        """Start the writer thread (prunes once first)."""
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="event-writer", daemon=True)
        self._thread.start()

    def submit(self, event: Event) -> bool:
        """Queue one event without waiting; False (and counted) if the queue is full."""
        try:
            self._queue.put_nowait(event)
        except queue.Full:
            self.stats.dropped += 1
            return False
        self.stats.submitted += 1
        return True

    def flush(self, timeout_s: float = 5.0) -> bool:
        """Wait until everything submitted so far is written (tests, shutdown); False on timeout."""
        target = self.stats.submitted
        deadline = time.monotonic() + timeout_s
        with self._done:
            while self._finished < target:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not self._done.wait(remaining):
                    return self._finished >= target
        return True

    def stop(self, timeout_s: float = 5.0) -> None:
        """Write what is queued, stop the thread and close the sink."""
        thread = self._thread
        if thread is None:
            self._sink.close()
            return
        try:
            self._queue.put(_STOP, timeout=timeout_s)
        except queue.Full:
            log.warning("event writer: queue still full at shutdown; stopping anyway")
        thread.join(timeout_s)
        if thread.is_alive():
            log.warning("event writer did not finish within %.1f s", timeout_s)
            return
        self._thread = None
        self._sink.close()

    def _run(self) -> None:
        self._prune()
        next_prune = time.monotonic() + self._prune_every_s
        while True:
            item = self._queue.get()
            stop = item is _STOP
            batch: list[Event] = [] if stop else [item]  # type: ignore[list-item]
            while not stop and len(batch) < self._batch_size:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is _STOP:
                    stop = True
                else:
                    batch.append(more)  # type: ignore[arg-type]
            if batch:
                self._write(batch)
            if stop:
                return
            if time.monotonic() >= next_prune:
                self._prune()
                next_prune = time.monotonic() + self._prune_every_s

    def _write(self, batch: list[Event]) -> None:
        try:
            self.stats.written += self._sink.insert_many(batch)
            self.stats.batches += 1
        except Exception as exc:  # a full disk or a locked file must not kill the writer
            self._error(f"writing {len(batch)} events failed: {exc}")
        finally:
            with self._done:
                self._finished += len(batch)
                self._done.notify_all()

    def _prune(self) -> None:
        if self._max_days is None and self._max_rows is None:
            return
        try:
            self.stats.pruned += self._sink.prune(
                self._clock(), max_days=self._max_days, max_rows=self._max_rows
            )
        except Exception as exc:
            self._error(f"pruning failed: {exc}")

    def _error(self, message: str) -> None:
        self.stats.errors += 1
        self.stats.last_error = message
        now = time.monotonic()
        if now - self._last_log >= 10.0:
            self._last_log = now
            log.warning("event log: %s (%d errors so far)", message, self.stats.errors)
