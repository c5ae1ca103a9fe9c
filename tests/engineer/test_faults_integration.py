"""Real Mosquitto + gateway + simulated controllers with injected faults, seen by an engineer.

Drives the simulator's fault injection (drop, silence, flash, skew both ways, duplicates,
conflicting greens), watches the engineers' WebSocket for each fault, measures how long it took
to show, checks the HTTP rows, then restarts the gateway on the same SQLite file and finds the
events still there. Figures: run with ``-s`` to see the detection delays (docs/engineer.md).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect

from signal_gateway.core.registry import Registry
from simulator.controllers import Simulator
from tests.support.gateway import running_gateway
from tests.support.mosquitto import MosquittoProcess

pytestmark = pytest.mark.broker

TOKEN = "integration-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
IDS = [f"YT00{i}" for i in range(1, 9)]

Row = dict[str, Any]
Frame = dict[str, Any]


@dataclass
class Watch:
    """One fault to see on the engineers' feed: a test of each frame, and when it held."""

    name: str
    seen: Callable[[Frame], bool]
    started: float = 0.0
    delay_s: float | None = None


@dataclass
class EngineerView:
    """An authenticated engineers' WebSocket that checks every frame against the watches."""

    ws: ClientConnection
    rows: dict[str, Row] = field(default_factory=dict)
    events: list[Frame] = field(default_factory=list)
    watches: list[Watch] = field(default_factory=list)
    changed: asyncio.Condition = field(default_factory=asyncio.Condition)

    async def until(self, predicate: Callable[[], bool], within_s: float) -> None:
        """Wait (woken by each frame, no polling) until ``predicate`` holds."""
        async with asyncio.timeout(within_s), self.changed:
            await self.changed.wait_for(predicate)

    async def pump(self) -> None:
        """Read frames forever, keeping the latest row per controller and every event."""
        async for raw in self.ws:
            frame: Frame = json.loads(raw)
            arrived = time.monotonic()
            if frame["type"] == "controllers":
                for row in frame["rows"]:
                    self.rows[row["id"]] = row
            elif frame["type"] == "events":
                self.events.extend(frame["events"])
            for watch in self.watches:
                if watch.delay_s is None and watch.started and watch.seen(frame):
                    watch.delay_s = arrived - watch.started
            async with self.changed:
                self.changed.notify_all()


def row_has(iid: str, **wanted: Any) -> Callable[[Frame], bool]:
    """A frame test: a controllers frame whose row for ``iid`` has these values."""

    def test(frame: Frame) -> bool:
        if frame["type"] != "controllers":
            return False
        return any(
            row["id"] == iid and all(row.get(k) == v for k, v in wanted.items())
            for row in frame["rows"]
        )

    return test


def row_where(iid: str, check: Callable[[Row], bool]) -> Callable[[Frame], bool]:
    """A frame test: the row for ``iid`` passes ``check``."""

    def test(frame: Frame) -> bool:
        if frame["type"] != "controllers":
            return False
        return any(row["id"] == iid and check(row) for row in frame["rows"])

    return test


def event_of(iid: str, kind: str) -> Callable[[Frame], bool]:
    """A frame test: an events frame with an event of ``kind`` for ``iid``."""

    def test(frame: Frame) -> bool:
        if frame["type"] != "events":
            return False
        return any(e["intersection"] == iid and e["kind"] == kind for e in frame["events"])

    return test


async def test_faults_are_seen_within_seconds_and_survive_a_restart(
    mosquitto: MosquittoProcess, registry: Registry, tmp_path: Path
) -> None:
    """Drop, silence, flash, skew, duplicates, conflicts: each shows up, and its events persist."""
    db = tmp_path / "var" / "events.sqlite3"
    settings: dict[str, Any] = {"event_db": str(db), "engineer_tokens": TOKEN}
    async with (
        running_gateway(mosquitto.url, registry, **settings) as gw,
        Simulator(registry, "127.0.0.1", mosquitto.port, only=IDS, seed=7) as sim,
        connect(f"ws://127.0.0.1:{gw.port}/ws/v1/engineer") as ws,
    ):
        await ws.send(json.dumps({"op": "auth", "token": TOKEN}))
        view = EngineerView(ws)
        pump = asyncio.create_task(view.pump())
        try:
            await view.until(
                lambda: all(view.rows.get(i, {}).get("status") == "online" for i in IDS), 10
            )
            view.watches = [
                Watch("drop (Last Will)", row_has("YT001", status="offline")),
                Watch("silence (stale)", row_has("YT002", status="stale")),
                Watch("flash mode", row_has("YT003", status="flash")),
                Watch("skew, clock 5 s ahead", event_of("YT004", "skew")),
                Watch("skew, clock 5 s behind", event_of("YT007", "skew")),
                Watch("conflicting greens", event_of("YT005", "rule:conflicting_greens")),
                Watch("duplicates", row_where("YT006", lambda r: r["duplicates"] >= 1)),
                Watch("fault mode", row_has("YT008", status="fault")),
            ]
            faults: list[Callable[[], None]] = [
                lambda: sim.drop("YT001"),
                lambda: sim.silence("YT002"),
                lambda: sim.set_mode("YT003", "flash"),
                lambda: sim.skew("YT004", 5000),
                lambda: sim.skew("YT007", -5000),
                lambda: sim.conflict("YT005"),
                lambda: sim.duplicate("YT006", 3),
                lambda: sim.set_mode("YT008", "fault"),
            ]
            for watch, inject in zip(view.watches, faults, strict=True):
                watch.started = time.monotonic()
                inject()
            await view.until(lambda: all(w.delay_s is not None for w in view.watches), 15)
        finally:
            pump.cancel()
        delays = {w.name: w.delay_s for w in view.watches}
        print("\ndetection delays (s):", json.dumps(delays, indent=1))
        for watch in view.watches:
            assert watch.delay_s is not None
            limit = 4.0 if watch.name.startswith(("silence", "skew, clock 5 s behind")) else 3.0
            assert watch.delay_s < limit, (watch.name, watch.delay_s)

        async with httpx.AsyncClient(base_url=gw.http, headers=AUTH) as http:
            body = (await http.get("/api/v1/engineer/controllers")).json()
            rows = {row["id"]: row for row in body["controllers"]}
            assert rows["YT001"]["status"] == "offline"
            assert rows["YT003"]["mode"] == "flash"
            assert rows["YT004"]["skewed"] is True
            assert rows["YT005"]["faulty"] is True
            assert rows["YT006"]["duplicates"] >= 1
            assert rows["YT009"]["status"] == "offline"  # never heard from
            assert body["counts"]["flash"] == 1
            alerts = (await http.get("/api/v1/alerts")).json()["alerts"]
            assert {"YT001", "YT003"} <= {a["id"] for a in alerts}

    # The gateway is gone; a new one on the same file still has the events.
    async with (
        running_gateway(mosquitto.url, registry, **settings) as again,
        httpx.AsyncClient(base_url=again.http, headers=AUTH) as http,
    ):
        found = (await http.get("/api/v1/engineer/events", params={"limit": "1000"})).json()
        kinds = {(e["intersection"], e["kind"]) for e in found["events"]}
        for expected in [
            ("YT001", "offline"),
            ("YT002", "stale"),
            ("YT003", "mode"),
            ("YT004", "skew"),
            ("YT005", "rule:conflicting_greens"),
            ("YT008", "mode"),
        ]:
            assert expected in kinds, expected
        rules = await http.get(
            "/api/v1/engineer/events", params={"intersection": "YT005", "kind": "rule:*"}
        )
        assert rules.json()["events"][0]["severity"] == "critical"
