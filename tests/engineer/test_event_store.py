"""The SQLite event log and its writer: schema, persistence, queries, retention, never blocking."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from signal_gateway.core.city import Event
from signal_gateway.events import (
    SCHEMA_VERSION,
    EventQuery,
    EventStore,
    EventStoreError,
    EventWriter,
    query_events,
)

T0 = 1_764_000_000_000
DAY = 86_400_000


def ev(at_ms: int, iid: str = "YT001", kind: str = "offline", message: str = "m") -> Event:
    """An event."""
    return Event(at_ms, iid, kind, "warning", message)


def test_created_on_first_open_with_its_folder(tmp_path: Path) -> None:
    """A missing folder and file are created, at the current schema version."""
    path = tmp_path / "var" / "deep" / "events.sqlite3"
    store = EventStore.open(path)
    assert path.exists()
    assert store.schema_version == SCHEMA_VERSION == 1
    store.close()


def test_events_survive_reopening(tmp_path: Path) -> None:
    """What one store wrote, the next one (a restarted gateway) reads."""
    path = tmp_path / "events.sqlite3"
    store = EventStore.open(path)
    store.insert_many([ev(T0, message="first"), ev(T0 + 1, message="second")])
    store.close()
    again = EventStore.open(path)
    assert [e.message for e in again.query(EventQuery())] == ["second", "first"]
    again.close()


def test_a_newer_schema_is_refused_clearly(tmp_path: Path) -> None:
    """A file from a newer gateway is not touched: the error names both versions."""
    path = tmp_path / "events.sqlite3"
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA user_version = 99")
    conn.close()
    with pytest.raises(EventStoreError, match="schema version 99 is newer than this gateway's 1"):
        EventStore.open(path)


def test_not_a_database_is_refused_clearly(tmp_path: Path) -> None:
    """A file that is not SQLite gives an error naming the file."""
    path = tmp_path / "events.sqlite3"
    path.write_bytes(b"this is not a database, just some text that is long enough" * 20)
    with pytest.raises(EventStoreError, match=str(path)):
        EventStore.open(path)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[EventStore]:
    """An empty event log, closed after the test."""
    opened = EventStore.open(tmp_path / "events.sqlite3")
    yield opened
    opened.close()


def _fill(store: EventStore) -> EventStore:
    store.insert_many(
        [
            ev(T0, "YT001", "offline"),
            ev(T0 + 1000, "YT002", "rule:conflicting_greens"),
            ev(T0 + 2000, "YT001", "rule:short_yellow"),
            ev(T0 + 3000, "YT001", "online"),
            ev(T0 + 4000, "YT003", "mode"),
        ]
    )
    return store


def test_query_by_intersection(store: EventStore, tmp_path: Path) -> None:
    """Only the intersection's events, newest first."""
    _fill(store)
    found = store.query(EventQuery(intersection_id="YT001"))
    assert [e.kind for e in found] == ["online", "rule:short_yellow", "offline"]


def test_query_by_kinds_and_prefix(store: EventStore, tmp_path: Path) -> None:
    """Several kinds, and ``rule:*`` for every rule."""
    _fill(store)
    assert [e.kind for e in store.query(EventQuery(kinds=("offline", "mode")))] == [
        "mode",
        "offline",
    ]
    assert [e.intersection_id for e in store.query(EventQuery(kinds=("rule:*",)))] == [
        "YT001",
        "YT002",
    ]


def test_query_by_time_range_and_limit(store: EventStore, tmp_path: Path) -> None:
    """since is inclusive, until exclusive; limit keeps the newest."""
    _fill(store)
    found = store.query(EventQuery(since_ms=T0 + 1000, until_ms=T0 + 4000))
    assert [e.at_ms for e in found] == [T0 + 3000, T0 + 2000, T0 + 1000]
    assert [e.at_ms for e in store.query(EventQuery(limit=2))] == [T0 + 4000, T0 + 3000]


def test_reader_on_its_own_connection(store: EventStore, tmp_path: Path) -> None:
    """query_events reads through a separate read-only connection; [] before the file exists."""
    _fill(store)
    assert len(query_events(store.path, EventQuery(limit=10))) == 5
    assert query_events(tmp_path / "missing.sqlite3", EventQuery()) == []


def test_retention_by_age(store: EventStore) -> None:
    """Events older than the retention days are deleted."""
    store.insert_many([ev(T0 - 40 * DAY), ev(T0 - 29 * DAY), ev(T0)])
    assert store.prune(T0, max_days=30, max_rows=None) == 1
    assert store.count() == 2


def test_retention_by_rows(store: EventStore) -> None:
    """Only the newest max_rows stay."""
    store.insert_many([ev(T0 + i, message=str(i)) for i in range(10)])
    assert store.prune(T0 + 10, max_days=None, max_rows=3) == 7
    assert [e.message for e in store.query(EventQuery())] == ["9", "8", "7"]


def test_writer_persists_in_the_background(tmp_path: Path) -> None:
    """Submitted events are in the file after flush; the writer prunes on start."""
    path = tmp_path / "e.sqlite3"
    seed = EventStore.open(path)
    seed.insert_many([ev(T0 - 100 * DAY, message="ancient")])
    seed.close()
    writer = EventWriter(EventStore.open(path), max_days=30, clock=lambda: T0)
    writer.start()
    for i in range(20):
        assert writer.submit(ev(T0 + i, message=str(i)))
    assert writer.flush(5.0)
    writer.stop()
    messages = [e.message for e in query_events(path, EventQuery(limit=100))]
    assert messages == [str(i) for i in reversed(range(20))]
    assert writer.stats.written == 20
    assert writer.stats.pruned == 1


class BlockedStore:
    """A store whose writes wait until released: a disk that stalls."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()
        self.written: list[Event] = []

    def insert_many(self, events: Sequence[Event]) -> int:
        """Block until released, then keep the events."""
        self.entered.set()
        assert self.release.wait(10.0)
        self.written.extend(events)
        return len(events)

    def prune(self, now_ms: int, *, max_days: float | None, max_rows: int | None) -> int:
        """Nothing to prune."""
        return 0

    def close(self) -> None:
        """Nothing to close."""


def test_full_queue_drops_and_counts_without_blocking() -> None:
    """With the disk stalled and the queue full, submit returns False at once and counts."""
    store = BlockedStore()
    writer = EventWriter(store, queue_size=3, max_days=None, max_rows=None)
    writer.start()
    assert writer.submit(ev(T0))
    assert store.entered.wait(5.0)  # the writer holds event 0 and is stuck in the disk
    assert all(writer.submit(ev(T0 + i)) for i in (1, 2, 3))
    started = time.perf_counter()
    accepted = [writer.submit(ev(T0 + i)) for i in range(4, 104)]
    elapsed = time.perf_counter() - started
    assert accepted == [False] * 100
    assert writer.stats.dropped == 100
    assert elapsed < 0.05  # 100 refused submits: no waiting on the stalled disk
    store.release.set()
    assert writer.flush(5.0)
    writer.stop()
    assert [e.at_ms for e in store.written] == [T0, T0 + 1, T0 + 2, T0 + 3]


class FailingStore(BlockedStore):
    """A store whose first write fails (a locked file), later ones work."""

    def __init__(self) -> None:
        super().__init__()
        self.release.set()
        self.calls = 0

    def insert_many(self, events: Sequence[Event]) -> int:
        """Fail once, then write."""
        self.calls += 1
        if self.calls == 1:
            raise sqlite3.OperationalError("database is locked")
        return super().insert_many(events)


def test_writer_survives_a_failed_write() -> None:
    """A failed batch is counted and logged; the writer keeps writing later events."""
    store = FailingStore()
    writer = EventWriter(store, max_days=None, max_rows=None)
    writer.start()
    writer.submit(ev(T0))
    assert writer.flush(5.0)
    writer.submit(ev(T0 + 1))
    assert writer.flush(5.0)
    writer.stop()
    assert writer.stats.errors == 1
    assert "database is locked" in writer.stats.last_error
    assert [e.at_ms for e in store.written] == [T0 + 1]
