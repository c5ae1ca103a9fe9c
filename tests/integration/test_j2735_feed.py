"""Decoded J2735 SPaT (ODE JSON) in over MQTT, and the J2735-like view out over HTTP."""

from __future__ import annotations

import datetime as dt
import json
import time
from pathlib import Path
from typing import Any

import aiomqtt
import httpx
import pytest

from signal_gateway.core.registry import Registry
from tests.support.gateway import running_gateway, until
from tests.support.mosquitto import MosquittoProcess

pytestmark = pytest.mark.broker

SAMPLE = (
    Path(__file__).resolve().parents[3] / "shared" / "data" / "j2735" / "ode-expected-spat.json"
)


def ode_record(now_ms: int, red_for_ms: int) -> dict[str, Any]:
    """The real ODE record re-dated to now: group 4 red for ``red_for_ms``, the others 5 s later."""
    if not SAMPLE.exists():
        pytest.skip(f"shared J2735 sample not found at {SAMPLE}")
    record: dict[str, Any] = json.loads(SAMPLE.read_text())
    received = dt.datetime.fromtimestamp(now_ms / 1000, dt.UTC)
    record["metadata"]["odeReceivedAt"] = received.isoformat(timespec="milliseconds").replace(
        "+00:00", "Z"
    )
    hour_start_ms = now_ms - now_ms % 3_600_000
    mark = ((now_ms + red_for_ms) - hour_start_ms) // 100  # may pass 36000: the next hour
    state = record["payload"]["data"]["intersectionStateList"]["intersectionStatelist"][0]
    for movement in state["states"]["movementList"]:
        timing = movement["state_time_speed"]["movementEventList"][0]["timing"]
        own = mark if movement["signalGroup"] == 4 else mark + 50
        timing["minEndTime"] = timing["maxEndTime"] = own % 36000
    return record


async def test_j2735_feed_reaches_the_view_and_the_spat_route(
    mosquitto: MosquittoProcess, registry: Registry
) -> None:
    """An ODE record on the J2735 topic becomes YT001's view; /spat gives it back in J2735 terms."""
    async with running_gateway(mosquitto.url, registry, j2735_topic="ode/spat") as gw:
        async with aiomqtt.Client("127.0.0.1", mosquitto.port) as client:
            # Dated once connected: the record's reference time (odeReceivedAt) is its clock,
            # and a slow connect must not count as delay in the gateway's offset.
            now = time.time_ns() // 1_000_000
            record = ode_record(now, red_for_ms=20_000)
            await client.publish("ode/spat", json.dumps(record).encode())
        city = gw.gateway.city
        await until(lambda: city.view("YT001").updated_ms is not None)
        group4 = next(g for g in city.view("YT001").groups if g.sg == 4)
        assert group4.state == "red"
        assert group4.end_ms is not None
        expected = (now + 20_000) // 100 * 100  # the TimeMark's tenth of a second
        assert abs(group4.end_ms - expected) <= 150
        async with httpx.AsyncClient() as http:
            spat = (await http.get(f"{gw.http}/api/v1/intersections/YT001/spat")).json()
            missing = await http.get(f"{gw.http}/api/v1/intersections/YT999/spat")
        assert spat["intersectionId"] == 12111
        state4 = next(s for s in spat["states"] if s["signalGroup"] == 4)
        assert state4["eventState"] == "stop-And-Remain"
        assert state4["timing"]["minEndTime"] is not None
        assert missing.status_code == 404


async def test_j2735_garbage_is_counted(mosquitto: MosquittoProcess, registry: Registry) -> None:
    """A non-JSON payload on the J2735 topic is refused and counted, the loop goes on."""
    async with running_gateway(mosquitto.url, registry, j2735_topic="ode/#") as gw:
        async with aiomqtt.Client("127.0.0.1", mosquitto.port) as client:
            await client.publish("ode/spat", b"\x00not json")
        results = gw.gateway.ingest.stats.results
        await until(lambda: sum(v for k, v in results.items() if k != "status") >= 1)
        assert results.get("not_json", 0) + results.get("not_utf8", 0) == 1
        assert gw.gateway.ingest.stats.connected
