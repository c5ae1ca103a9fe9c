"""The event-log writer role: exactly one replica writes the engineers' event log."""

from __future__ import annotations

from pathlib import Path

import pytest

from signal_gateway.core.registry import Registry
from tests.support.gateway import running_gateway
from tests.support.mosquitto import MosquittoProcess

pytestmark = pytest.mark.broker


@pytest.mark.parametrize("writer", [True, False])
async def test_only_the_writer_replica_opens_the_event_log(
    mosquitto: MosquittoProcess, registry: Registry, tmp_path: Path, writer: bool
) -> None:
    """A replica with event_log_writer=false never creates or writes the SQLite file."""
    db = tmp_path / "events.sqlite3"
    async with running_gateway(
        mosquitto.url, registry, event_db=str(db), event_log_writer=writer
    ) as gw:
        assert gw.gateway.ready
    assert db.exists() is writer
