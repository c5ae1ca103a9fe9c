"""The persistent event log: one SQLite file, a versioned schema, queries and retention.

Owns the file format (``PRAGMA user_version`` plus an ordered list of migrations, each run once
in a transaction), inserting batches, the queries engineers run (by intersection, kind, time
range, newest first) and pruning to the retention limits. Synchronous and single-connection:
an :class:`EventStore` belongs to one thread at a time (the writer's); readers open their own
short-lived connections with :func:`query_events`. It must not be called from the event loop
thread, where it would block ingest (``events.writer`` and ``asyncio.to_thread`` see to that).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from signal_gateway.core.city import Event

MIGRATIONS: tuple[str, ...] = (
    # 1: the event table and its three access paths.
    """
    CREATE TABLE events (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        at_ms INTEGER NOT NULL,
        intersection_id TEXT NOT NULL,
        kind TEXT NOT NULL,
        severity TEXT NOT NULL,
        message TEXT NOT NULL
    );
    CREATE INDEX events_by_intersection ON events (intersection_id, at_ms);
    CREATE INDEX events_by_kind ON events (kind, at_ms);
    CREATE INDEX events_by_time ON events (at_ms);
    """,
)
"""Schema migrations; migration ``n`` (1-based) brings ``user_version`` from n-1 to n."""

SCHEMA_VERSION = len(MIGRATIONS)
"""The schema version this code writes and reads."""

MAX_LIMIT = 10_000
"""The most events one query returns."""

DAY_MS = 86_400_000


class EventStoreError(RuntimeError):
    """The event file cannot be used (newer schema, not a database...); the message says why."""


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """An event as the log keeps it, with its row id."""

    id: int
    at_ms: int
    intersection_id: str
    kind: str
    severity: str
    message: str

    def as_dict(self) -> dict[str, object]:
        """JSON for the events endpoint."""
        return {
            "id": self.id,
            "at_ms": self.at_ms,
            "intersection": self.intersection_id,
            "kind": self.kind,
            "severity": self.severity,
            "message": self.message,
        }


@dataclass(frozen=True, slots=True)
class EventQuery:
    """Which events to return: all filters optional; ``kinds`` ending in ``*`` match a prefix."""

    intersection_id: str | None = None
    kinds: tuple[str, ...] = ()
    since_ms: int | None = None  # inclusive
    until_ms: int | None = None  # exclusive
    limit: int = 100

    def sql(self) -> tuple[str, list[object]]:
        """The SELECT and its parameters; newest first."""
        where: list[str] = []
        params: list[object] = []
        if self.intersection_id is not None:
            where.append("intersection_id = ?")
            params.append(self.intersection_id)
        if self.kinds:
            alternatives: list[str] = []
            for kind in self.kinds:
                if kind.endswith("*"):
                    alternatives.append("kind GLOB ?")
                    params.append(_glob_escape(kind[:-1]) + "*")
                else:
                    alternatives.append("kind = ?")
                    params.append(kind)
            where.append("(" + " OR ".join(alternatives) + ")")
        if self.since_ms is not None:
            where.append("at_ms >= ?")
            params.append(self.since_ms)
        if self.until_ms is not None:
            where.append("at_ms < ?")
            params.append(self.until_ms)
        clause = (" WHERE " + " AND ".join(where)) if where else ""
        params.append(max(1, min(self.limit, MAX_LIMIT)))
        return (
            "SELECT id, at_ms, intersection_id, kind, severity, message FROM events"
            f"{clause} ORDER BY at_ms DESC, id DESC LIMIT ?",
            params,
        )


def _glob_escape(text: str) -> str:
    return "".join(f"[{c}]" if c in "*?[" else c for c in text)


def _connect(path: Path, *, read_only: bool = False) -> sqlite3.Connection:
    if read_only:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5.0)
    else:
        conn = sqlite3.connect(path, timeout=5.0, check_same_thread=False, isolation_level=None)
    conn.execute("PRAGMA busy_timeout = 5000")
    return conn


class EventStore:
    """One read-write connection to the event file; create it with :meth:`open`."""

    def __init__(self, path: Path, conn: sqlite3.Connection) -> None:
        self.path = path
        self._conn = conn

    @classmethod
    def open(cls, path: str | Path) -> EventStore:
        """Open (creating the file and its folder on first use) and migrate to the schema."""
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            conn = _connect(target)
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
            _migrate(conn, target)
        except sqlite3.DatabaseError as exc:
            raise EventStoreError(f"event log {target}: {exc}") from exc
        return cls(target, conn)

    @property
    def schema_version(self) -> int:
        """The file's ``PRAGMA user_version``."""
        version: int = self._conn.execute("PRAGMA user_version").fetchone()[0]
        return version

    def insert_many(self, events: Iterable[Event]) -> int:
        """Write events in one transaction; returns how many."""
        rows = [(e.at_ms, e.intersection_id, e.kind, e.severity, e.message) for e in events]
        if not rows:
            return 0
        with _transaction(self._conn):
            self._conn.executemany(
                "INSERT INTO events (at_ms, intersection_id, kind, severity, message)"
                " VALUES (?, ?, ?, ?, ?)",
                rows,
            )
        return len(rows)

    def query(self, query: EventQuery) -> list[StoredEvent]:
        """Events matching ``query``, newest first."""
        return _run(self._conn, query)

    def count(self) -> int:
        """How many events the file holds."""
        total: int = self._conn.execute("SELECT count(*) FROM events").fetchone()[0]
        return total

    def prune(self, now_ms: int, *, max_days: float | None, max_rows: int | None) -> int:
        """Delete events older than ``max_days`` and beyond the newest ``max_rows``."""
        deleted = 0
        with _transaction(self._conn):
            if max_days is not None and max_days > 0:
                cursor = self._conn.execute(
                    "DELETE FROM events WHERE at_ms < ?", (now_ms - int(max_days * DAY_MS),)
                )
                deleted += cursor.rowcount
            if max_rows is not None and max_rows > 0:
                cursor = self._conn.execute(
                    "DELETE FROM events WHERE id <= ("
                    "SELECT id FROM events ORDER BY id DESC LIMIT 1 OFFSET ?)",
                    (max_rows,),
                )
                deleted += cursor.rowcount
        return deleted

    def close(self) -> None:
        """Close the connection."""
        self._conn.close()


def query_events(path: str | Path, query: EventQuery) -> list[StoredEvent]:
    """Run one query on a connection of its own (for ``asyncio.to_thread``); [] before creation."""
    target = Path(path)
    if not target.exists():
        return []
    conn = _connect(target, read_only=True)
    try:
        return _run(conn, query)
    finally:
        conn.close()


def _run(conn: sqlite3.Connection, query: EventQuery) -> list[StoredEvent]:
    sql, params = query.sql()
    return [StoredEvent(*row) for row in conn.execute(sql, params)]


class _transaction:
    """BEGIN IMMEDIATE ... COMMIT, or ROLLBACK on error (the connection is in autocommit)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def __enter__(self) -> None:
        self._conn.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        self._conn.execute("COMMIT" if exc_type is None else "ROLLBACK")


def _migrate(conn: sqlite3.Connection, path: Path, migrations: Sequence[str] = MIGRATIONS) -> None:
    version: int = conn.execute("PRAGMA user_version").fetchone()[0]
    if version > len(migrations):
        raise EventStoreError(
            f"event log {path}: schema version {version} is newer than this gateway's "
            f"{len(migrations)}; use a newer gateway or another SIGNAL_GATEWAY_EVENT_DB"
        )
    for number in range(version + 1, len(migrations) + 1):
        with _transaction(conn):
            for statement in migrations[number - 1].split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {number}")
