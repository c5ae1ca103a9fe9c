"""Scenarios 1, 2 and 5: the broker dies, hangs, or holds a stale retained message.

Bounds (docs/reliability.md): a dead broker shows no number at once (the gateway sees the
connection drop: ``DISCONNECT_DETECT_MS``); a hung one by the stale time (``STALE_DETECT_MS``;
meanwhile its unanswered probe stops the learning of offsets); numbers return within
``RECOVER_MS`` of the broker being back.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import AsyncIterator

import aiomqtt
import pytest

from signal_gateway.core.model import SignalState
from signal_gateway.core.registry import Registry
from signal_gateway.testing import G, spat_payload, status_payload
from tests.faults.conftest import Figures
from tests.faults.support import (
    FAULT_SETTINGS,
    Memory,
    ScriptTruth,
    gateway,
    judged_client,
    simulator,
    wall_ms,
)
from tests.support.gateway import until
from tests.support.mosquitto import MosquittoProcess

pytestmark = pytest.mark.broker

IDS = ["YT001", "YT002", "YT003", "YT004"]
DISCONNECT_DETECT_MS = 300  # the dropped TCP connection is noticed at once, plus a flush
STALE_DETECT_MS = 2500 + 100 + 300  # stale_after_s + a flush + slack
RECOVER_MS = 5000  # gateway and controllers reconnect (backoff <= 2 s), then a report


@contextlib.asynccontextmanager
async def publisher(port: int) -> AsyncIterator[aiomqtt.Client]:
    """A plain MQTT client for the test's own messages."""
    async with aiomqtt.Client("127.0.0.1", port, identifier="fault-test-publisher") as client:
        yield client


async def test_broker_killed_and_restarted(
    registry: Registry, figures: Figures, caplog: pytest.LogCaptureFixture
) -> None:
    """A killed broker blanks numbers at once; reconnects back off with jitter; numbers return."""
    caplog.set_level(logging.INFO, logger="signal_gateway.mqtt")
    with MosquittoProcess() as broker:
        async with (
            Memory() as memory,
            simulator(registry, broker.port, IDS, speed=4) as sim,
            gateway(broker.url, registry) as gw,
            judged_client(gw, sim.truth) as judge,
        ):
            await judge.wait_timed(IDS)
            await until(lambda: judge.checked >= 20, 10)
            killed = wall_ms()
            broker.stop()  # SIGKILL: no goodbye to anyone
            detection = max([await judge.unknown_after(i, killed, 3) for i in IDS])
            # down for a while: at least five refused attempts, spaced by the backoff
            await until(lambda: len(_backoffs(caplog.records)) >= 6, 15)
            assert not any(judge.is_timed(i) for i in IDS), "a number survived the broker"
            assert not gw.gateway.ready
            restarted = wall_ms()
            broker.start()
            recovery = max([await judge.timed_after(i, restarted, 10) for i in IDS])
            await until(lambda: judge.checked >= 40, 10)
    judge.assert_clean(min_checked=40)
    assert detection <= DISCONNECT_DETECT_MS
    assert recovery <= RECOVER_MS
    # Jittered exponential backoff (reconnect_min_s 0.2, max 2.0, factor uniform(0.5, 1)):
    # the k-th wait is in [0.5, 1] x min(0.2 * 2^k, 2.0) s, and the attempts are that far apart.
    low, high = FAULT_SETTINGS["reconnect_min_s"], FAULT_SETTINGS["reconnect_max_s"]
    backoffs = _backoffs(caplog.records)[:6]
    waits = [wait for _, wait in backoffs]
    for k, wait in enumerate(waits):
        nominal = min(low * 2**k, high)
        assert 0.5 * nominal - 0.05 <= wait <= nominal + 0.05, (k, waits)
    assert len(set(waits)) > 1
    gaps = [b[0] - a[0] for a, b in itertools.pairwise(backoffs)]
    for gap, wait in zip(gaps, waits, strict=False):
        assert wait - 0.06 <= gap <= wait + 0.5, (gaps, waits)
    figures.record(
        "1 broker killed and restarted",
        detection_ms=detection,
        recovery_ms=recovery,
        peak_rss_mb=memory.peak_mb,
        rss_growth_mb=memory.growth_mb,
        wrong_numbers=len(judge.wrong),
        numbers_checked=judge.checked,
        notes="reconnect waits " + ", ".join(f"{wait:.1f}" for wait in waits) + " s",
    )


def _backoffs(records: list[logging.LogRecord]) -> list[tuple[float, float]]:
    """(when, how long) of every "reconnecting in ..." the gateway logged."""
    return [
        (record.created, float(record.args[0]))
        for record in records
        if record.name == "signal_gateway.mqtt"
        and record.msg == "reconnecting in %.1f s"
        and isinstance(record.args, tuple)
        and isinstance(record.args[0], float)
    ]


async def test_broker_hung_then_resumed(
    mosquitto: MosquittoProcess, registry: Registry, figures: Figures
) -> None:
    """A hung broker blanks numbers by the stale time; keepalive drops it; its backlog is shed."""
    async with (
        Memory() as memory,
        simulator(registry, mosquitto.port, IDS, speed=4) as sim,
        # keepalive 10 s outlives a 6 s hang (the backlog arrives); keepalive 2 s does not
        gateway(mosquitto.url, registry, mqtt_keepalive_s=10) as patient,
        gateway(mosquitto.url, registry, mqtt_keepalive_s=2) as impatient,
        judged_client(patient, sim.truth) as patient_judge,
        judged_client(impatient, sim.truth) as impatient_judge,
    ):
        judges = (patient_judge, impatient_judge)
        for judge in judges:
            await judge.wait_timed(IDS)
        hung = wall_ms()
        mosquitto.pause()
        try:
            detections = [max([await j.unknown_after(i, hung, 4) for i in IDS]) for j in judges]
            lost = impatient.gateway.ingest.stats
            await until(lambda: not lost.connected, 8)
            keepalive_ms = wall_ms() - hung
            await asyncio.sleep(max(0.0, 6 - (wall_ms() - hung) / 1000))  # the hang lasts 6 s
        finally:
            mosquitto.resume()
        resumed = wall_ms()
        recoveries = [max([await j.timed_after(i, resumed, 12) for i in IDS]) for j in judges]
        await until(lambda: all(j.checked >= 30 for j in judges), 10)
        kept = patient.gateway.ingest.stats
        kept_disconnects = kept.disconnects
        too_old = kept.results.get("too_old", 0)
    for judge in judges:
        judge.assert_clean(min_checked=30)
    assert kept_disconnects == 0
    assert too_old > 0, "the backlog released on SIGCONT was not discarded as too old"
    assert max(detections) <= STALE_DETECT_MS
    assert max(recoveries) <= RECOVER_MS + 5000  # the reconnect waits out a CONNECT timeout
    for name, detection, recovery, judge, notes in (
        (
            "2a broker hung 6 s (connection kept)",
            detections[0],
            recoveries[0],
            patient_judge,
            f"{too_old} backlog reports dropped as too_old",
        ),
        (
            "2b broker hung 6 s (keepalive 2 s)",
            detections[1],
            recoveries[1],
            impatient_judge,
            f"keepalive dropped the link after {keepalive_ms} ms",
        ),
    ):
        figures.record(
            name,
            detection_ms=detection,
            recovery_ms=recovery,
            peak_rss_mb=memory.peak_mb,
            rss_growth_mb=memory.growth_mb,
            wrong_numbers=len(judge.wrong),
            numbers_checked=judge.checked,
            notes=notes,
        )


async def test_stale_retained_messages_at_subscribe(
    mosquitto: MosquittoProcess, registry: Registry, figures: Figures
) -> None:
    """Retained SPaT and a dead controller's retained online show nothing; a live one does."""
    now = wall_ms()
    spat = spat_payload("YT010", 5, now, [G(1, SignalState.GREEN, 30.0)])
    old_spat = spat_payload("YT012", 9, now - 3_600_000, [G(1, SignalState.RED, 20.0)])
    async with publisher(mosquitto.port) as client:
        await client.publish("signals/YT010/spat", spat, qos=1, retain=True)
        await client.publish("signals/YT012/spat", old_spat, qos=1, retain=True)
        await client.publish("signals/YT011/status", status_payload(True, now), qos=1, retain=True)
    truth = ScriptTruth()
    async with (
        Memory() as memory,
        gateway(mosquitto.url, registry) as gw,
        judged_client(gw, truth, {"op": "subscribe", "ids": ["YT010", "YT011", "YT012"]}) as judge,
    ):
        results = gw.gateway.ingest.stats.results
        await until(lambda: results.get("retained_spat", 0) >= 2 and "status" in results, 5)
        for iid in ("YT010", "YT011", "YT012"):
            assert not gw.gateway.city.view(iid).countdowns_shown
        assert gw.gateway.city.view("YT011").online  # online, yet never a number without SPaT
        assert judge.checked == 0
        started = wall_ms()
        async with simulator(registry, mosquitto.port, ["YT010"]) as sim:
            judge.truth = sim.truth
            recovery = await judge.timed_after("YT010", started, 10)
            await until(lambda: judge.checked >= 10, 10)
            shown = {iid for iid in judge.latest if judge.is_timed(iid)}
    judge.assert_clean(min_checked=10)
    assert shown == {"YT010"}
    figures.record(
        "5 stale retained messages at subscribe",
        detection_ms=0,
        recovery_ms=recovery,
        peak_rss_mb=memory.peak_mb,
        rss_growth_mb=memory.growth_mb,
        wrong_numbers=len(judge.wrong),
        numbers_checked=judge.checked,
        notes="retained SPaT refused (retained_spat); a retained online alone shows nothing",
    )
