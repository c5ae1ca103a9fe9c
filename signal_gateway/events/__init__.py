"""The engineers' event log: SQLite persistence (``store``) behind a non-blocking ``writer``.

Owns every byte written to the event file. Nothing here runs on the event loop: the writer has
its own thread and readers go through ``asyncio.to_thread``. It must not import the web layer.
"""

from signal_gateway.events.store import (
    SCHEMA_VERSION,
    EventQuery,
    EventStore,
    EventStoreError,
    StoredEvent,
    query_events,
)
from signal_gateway.events.writer import EventSink, EventWriter, WriterStats

__all__ = [
    "SCHEMA_VERSION",
    "EventQuery",
    "EventSink",
    "EventStore",
    "EventStoreError",
    "EventWriter",
    "StoredEvent",
    "WriterStats",
    "query_events",
]
