"""Mosquitto → gateway → WebSocket client, with messages published by the real mosquitto_pub."""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
from typing import Any

import pytest

from signal_gateway.core.registry import Registry
from signal_gateway.testing import G, spat_payload, status_payload
from tests.support.gateway import next_frame, running_gateway, until, ws_client
from tests.support.mosquitto import MosquittoProcess

pytestmark = pytest.mark.broker


def now_ms() -> int:
    """Wall clock, Unix ms (the gateway's clock in these tests)."""
    return time.time_ns() // 1_000_000


async def publish(broker: MosquittoProcess, topic: str, payload: bytes, *flags: str) -> None:
    """Publish with the real mosquitto_pub client."""
    proc = await asyncio.create_subprocess_exec(
        "mosquitto_pub",
        "-h",
        "127.0.0.1",
        "-p",
        str(broker.port),
        "-t",
        topic,
        "-s",
        *flags,
        stdin=subprocess.PIPE,
    )
    await proc.communicate(payload)
    assert proc.returncode == 0


def group(frame: dict[str, Any], iid: str, sg: int) -> dict[str, Any]:
    """One group of one intersection in a snapshot/update frame."""
    view = next(v for v in frame["intersections"] if v["id"] == iid)
    found: dict[str, Any] = next(g for g in view["groups"] if g["sg"] == sg)
    return found


async def test_published_message_reaches_client_fast_with_right_end(
    mosquitto: MosquittoProcess, registry: Registry
) -> None:
    """A documented SPaT message from mosquitto_pub reaches a WS client within 100 ms, end right."""
    async with running_gateway(mosquitto.url, registry) as gw, ws_client(gw.ws) as ws:
        await ws.send(json.dumps({"op": "subscribe", "ids": ["YT001"]}))
        snapshot = await next_frame(ws, "snapshot")
        assert group(snapshot, "YT001", 2)["end_ms"] is None  # nothing known yet
        ts = now_ms()
        started = time.perf_counter()
        await publish(
            mosquitto, "signals/YT001/spat", spat_payload("YT001", 1, ts, [G(2, "green", 12.3)])
        )
        update = await next_frame(ws, "update")
        latency_ms = (time.perf_counter() - started) * 1000
        end = group(update, "YT001", 2)["end_ms"]
        assert latency_ms < 100, f"{latency_ms:.1f} ms"
        # The gateway clock and the test's are the same here: the end is ts + 12.3 s plus the
        # minimum transit delay it measured (a few ms on loopback).
        assert ts + 12_300 <= end < ts + 12_300 + 50


async def test_malformed_messages_are_counted_and_change_nothing(
    mosquitto: MosquittoProcess, registry: Registry
) -> None:
    """Bad payloads are refused by reason; the intersection's view stays as it was."""
    async with running_gateway(mosquitto.url, registry) as gw, ws_client(gw.ws) as ws:
        await ws.send(json.dumps({"op": "subscribe", "ids": ["YT001"]}))
        await next_frame(ws, "snapshot")
        ts = now_ms()
        await publish(
            mosquitto, "signals/YT001/spat", spat_payload("YT001", 1, ts, [G(2, "green", 20)])
        )
        good = await next_frame(ws, "update")
        bad = [
            b"{not json",
            b"\xff\xfe",
            b'{"v":1,"id":"YT001","seq":2,"ts_ms":1,"mode":"normal","groups":[{"sg":2,"state":"green","remaining_s":NaN}]}',
            spat_payload("YT002", 3, ts, [G(2, "red", 5)]),  # id differs from the topic's
            spat_payload("YT001", 4, ts, [G(99, "red", 5)]),  # no such group
            spat_payload("YT001", 5, ts, [G(2, "purple", 5)]),
            spat_payload("YT001", 6, ts, [G(2, "green", -1)]),
        ]
        for payload in bad:
            await publish(mosquitto, "signals/YT001/spat", payload)
        # A good message after them: once it shows up, every bad one before it was handled.
        await publish(
            mosquitto, "signals/YT001/spat", spat_payload("YT001", 7, ts, [G(2, "green", 20)])
        )
        city = gw.gateway.city
        await until(lambda: city.state("YT001").last_seq == 7)
        results = gw.gateway.ingest.stats.results
        assert results.get("not_json") == 1
        assert results.get("not_utf8") == 1
        assert results.get("schema") == 3
        assert results.get("id_mismatch") == 1
        assert results.get("unknown_group") == 1
        assert group(good, "YT001", 2)["end_ms"] == city.view("YT001").groups[1].end_ms


async def test_silent_controller_goes_unknown_within_stale_time(
    mosquitto: MosquittoProcess, registry: Registry
) -> None:
    """A controller that stops publishing loses its numbers within stale_after_s (+ one tick)."""
    async with (
        running_gateway(mosquitto.url, registry, stale_after_s=1.0) as gw,
        ws_client(gw.ws) as ws,
    ):
        await ws.send(json.dumps({"op": "subscribe", "ids": ["YT001"]}))
        await next_frame(ws, "snapshot")
        await publish(
            mosquitto, "signals/YT001/spat", spat_payload("YT001", 1, now_ms(), [G(2, "green", 30)])
        )
        live = await next_frame(ws, "update")
        assert group(live, "YT001", 2)["end_ms"] is not None
        received = time.perf_counter()
        stale = await next_frame(ws, "update", within_s=5)
        waited = time.perf_counter() - received
        view = stale["intersections"][0]
        assert view["stale"] is True
        assert all(g["end_ms"] is None and g["likely_end_ms"] is None for g in view["groups"])
        assert 1.0 <= waited < 1.0 + 0.35, f"{waited:.2f} s"


async def test_last_will_makes_intersection_offline_at_once(
    mosquitto: MosquittoProcess, registry: Registry
) -> None:
    """An offline status (what a Last Will publishes) blanks the numbers on the next flush."""
    async with running_gateway(mosquitto.url, registry) as gw, ws_client(gw.ws) as ws:
        await ws.send(json.dumps({"op": "subscribe", "ids": ["YT001"]}))
        await next_frame(ws, "snapshot")
        await publish(
            mosquitto, "signals/YT001/spat", spat_payload("YT001", 1, now_ms(), [G(2, "green", 30)])
        )
        await next_frame(ws, "update")
        await publish(mosquitto, "signals/YT001/status", status_payload(False), "-r")
        offline = await next_frame(ws, "update", within_s=1)
        view = offline["intersections"][0]
        assert view["online"] is False
        assert all(g["end_ms"] is None for g in view["groups"])


async def test_retained_spat_is_refused(mosquitto: MosquittoProcess, registry: Registry) -> None:
    """A retained SPaT (stale by definition) present at subscribe time never shows a number."""
    await publish(
        mosquitto,
        "signals/YT001/spat",
        spat_payload("YT001", 1, now_ms(), [G(2, "green", 30)]),
        "-r",
    )
    async with running_gateway(mosquitto.url, registry) as gw:
        await until(lambda: gw.gateway.ingest.stats.results.get("retained_spat") == 1)
        assert gw.gateway.city.view("YT001").countdowns_shown is False
