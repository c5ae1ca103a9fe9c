"""Integration tests of the simulated controllers against a real Mosquitto started per test."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import aiomqtt
import pytest

from signal_gateway.core.model import Mode, Movement, Rejection, SignalState, SpatReport
from signal_gateway.core.registry import Registry
from signal_gateway.ingest.wire import parse_spat
from signal_gateway.testing import status_payload
from simulator.cli import add_arguments, build_simulator, run_simulator
from simulator.controllers import Simulator
from simulator.plan import Control, build_city_plan
from tests.conftest import REPO as ROOT
from tests.support.mosquitto import MosquittoProcess

pytestmark = pytest.mark.broker

TIMEOUT = 10.0
SPEED = 10.0  # a 3 s yellow lasts 300 ms: several changes per second per intersection
PUNCTUAL_MS = 50


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass(frozen=True, slots=True)
class Received:
    """One message as the test subscriber got it."""

    at_ms: int
    topic: str
    payload: bytes
    retain: bool

    @property
    def intersection_id(self) -> str:
        return self.topic.split("/")[1]

    @property
    def kind(self) -> str:
        return self.topic.split("/")[2]


class Recorder:
    """A subscriber that records every message with its receive time."""

    def __init__(self, port: int, topic: str = "signals/#") -> None:
        self.port = port
        self.topic = topic
        self.messages: list[Received] = []
        self._arrived = asyncio.Event()
        self._client = aiomqtt.Client("127.0.0.1", port, identifier=f"rec-{uuid.uuid4().hex}")
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Recorder:
        await self._client.__aenter__()
        await self._client.subscribe(self.topic, qos=1)
        self._task = asyncio.create_task(self._read())
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
            await self._task
        with contextlib.suppress(aiomqtt.MqttError):
            await self._client.__aexit__(None, None, None)

    async def _read(self) -> None:
        with contextlib.suppress(aiomqtt.MqttError):
            async for message in self._client.messages:
                payload = message.payload
                assert isinstance(payload, bytes | bytearray)
                self.messages.append(
                    Received(now_ms(), str(message.topic), bytes(payload), message.retain)
                )
                self._arrived.set()

    async def wait_for(
        self, predicate: Callable[[list[Received]], bool], limit_s: float = TIMEOUT
    ) -> None:
        """Wait until ``predicate(messages)`` holds (TimeoutError after ``limit_s``)."""
        async with asyncio.timeout(limit_s):
            while not predicate(self.messages):
                self._arrived.clear()
                await self._arrived.wait()

    def spat(self, intersection_id: str, since_ms: int = 0) -> list[Received]:
        return [
            m
            for m in self.messages
            if m.kind == "spat" and m.intersection_id == intersection_id and m.at_ms >= since_ms
        ]

    def from_seq(self, intersection_id: str, seq: int) -> list[Received]:
        """SPaT of a controller carrying ``seq`` or later (sent after the seq was read)."""
        return [m for m in self.spat(intersection_id) if _seq(m) >= seq]

    def status(self, intersection_id: str, since_ms: int = 0) -> list[Received]:
        return [
            m
            for m in self.messages
            if m.kind == "status" and m.intersection_id == intersection_id and m.at_ms >= since_ms
        ]


class LoopProbe:
    """Measures event-loop starvation, so a late message can be told from a slow simulator.

    A shared CI machine can starve the whole process (other jobs, GC, swap); while the loop itself
    wakes late nothing in it can be punctual. ``late_ms(at, sent)`` is how late a message sent at
    ``sent`` for an event at ``at`` is, once the time the loop was starved in between is deducted.
    """

    PERIOD_MS = 5

    def __init__(self) -> None:
        self.stalls: list[tuple[int, int]] = []
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> LoopProbe:
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    async def _run(self) -> None:
        while True:
            expected = now_ms() + self.PERIOD_MS
            await asyncio.sleep(self.PERIOD_MS / 1000)
            woke = now_ms()
            if woke > expected:
                self.stalls.append((expected, woke))

    def late_ms(self, at: int, sent: int) -> int:
        starved = sum(max(0, min(end, sent) - max(start, at)) for start, end in self.stalls)
        return sent - at - starved


@pytest.fixture
async def probe() -> AsyncIterator[LoopProbe]:
    """Event-loop starvation, measured for the whole test."""
    async with LoopProbe() as running:
        yield running


def _seq(message: Received) -> int:
    try:
        seq = json.loads(message.payload)["seq"]
    except (ValueError, KeyError, TypeError):
        return -1
    return seq if isinstance(seq, int) else -1


def report(message: Received) -> SpatReport:
    parsed = parse_spat(message.intersection_id, message.payload)
    assert isinstance(parsed, SpatReport), parsed
    return parsed


def pick_ids(registry: Registry) -> list[str]:
    """Two coordinated and two actuated intersections."""
    city = build_city_plan(registry, seed=0, epoch_ms=0)
    coordinated = [p.id for p in city if p.control is Control.COORDINATED][:2]
    actuated = [p.id for p in city if p.control is Control.ACTUATED][:2]
    return coordinated + actuated


@pytest.fixture
async def recorder(mosquitto: MosquittoProcess) -> AsyncIterator[Recorder]:
    """A subscriber to signals/#, connected before any controller."""
    async with Recorder(mosquitto.port) as rec:
        yield rec


@pytest.fixture
async def sim(
    mosquitto: MosquittoProcess, registry: Registry, recorder: Recorder
) -> AsyncIterator[Simulator]:
    """Four controllers at speed 10, all connected."""
    simulator = Simulator(
        registry, "127.0.0.1", mosquitto.port, seed=0, speed=SPEED, only=pick_ids(registry)
    )
    await simulator.start()
    try:
        await asyncio.wait_for(simulator.ready.wait(), TIMEOUT)
        yield simulator
    finally:
        await simulator.stop()


async def wait_until_ms(recorder: Recorder, when_ms: int) -> None:
    """Wait until some message received at or after ``when_ms`` (others' reports as a clock)."""
    await recorder.wait_for(lambda ms: bool(ms) and ms[-1].at_ms >= when_ms, TIMEOUT)


async def test_each_controller_has_its_own_connection_and_retained_online_status(
    sim: Simulator, mosquitto: MosquittoProcess
) -> None:
    """Every controller connects as sim-<id> and leaves a retained online status."""
    async with Recorder(mosquitto.port, "signals/+/status") as late:
        await late.wait_for(lambda ms: {m.intersection_id for m in ms} >= set(sim.ids))
        for iid in sim.ids:
            status = late.status(iid)[0]
            assert status.retain
            body = json.loads(status.payload)
            assert body["v"] == 1
            assert body["online"] is True
            assert isinstance(body["ts_ms"], int)
    log = mosquitto.log_path.read_text()
    for iid in sim.ids:
        assert f" as sim-{iid} " in log, iid


async def test_spat_is_valid_in_sequence_and_at_least_1_hz(
    sim: Simulator, recorder: Recorder
) -> None:
    """Each controller publishes valid SPaT with seq 0, 1, 2... and never 1 s apart."""
    await recorder.wait_for(lambda _ms: all(len(recorder.spat(i)) >= 5 for i in sim.ids))
    for iid in sim.ids:
        messages = recorder.spat(iid)
        reports = [report(m) for m in messages]
        assert [r.seq for r in reports] == list(range(len(reports)))
        assert all(r.mode is Mode.NORMAL for r in reports)
        gaps = [b.at_ms - a.at_ms for a, b in itertools.pairwise(messages)]
        assert max(gaps) < 1000, (iid, max(gaps))


async def test_reports_match_ground_truth_and_changes_are_punctual(
    sim: Simulator, recorder: Recorder, probe: LoopProbe
) -> None:
    """Each report states the true states and exact times; changes go out within 50 ms.

    Lateness is counted net of the time the event loop itself was starved (LoopProbe).
    """
    start = now_ms()
    await wait_until_ms(recorder, start + 4000)
    end = now_ms()
    checked = 0
    for iid in sim.ids:
        plan = sim.truth.plan(iid)
        reports = [(m, report(m)) for m in recorder.spat(iid, start)]
        for _message, r in reports:
            for reading in r.groups:
                assert reading.state is sim.truth.state_at(iid, reading.sg, r.ts_ms), reading
                nxt = sim.truth.next_transition(iid, reading.sg, r.ts_ms)
                assert nxt is not None
                assert reading.min_ms is not None
                assert reading.max_ms is not None
                if reading.min_ms == reading.max_ms:
                    assert reading.likely_ms == nxt[0] - r.ts_ms
                else:
                    assert reading.min_ms <= nxt[0] - r.ts_ms <= reading.max_ms
        for group in plan.intersection.groups:
            for at, state in sim.truth.transitions(iid, group.sg, start + 200, end - 500):
                message, first = next((m, r) for m, r in reports if r.ts_ms >= at)
                shown = next(g.state for g in first.groups if g.sg == group.sg)
                assert shown is state
                assert probe.late_ms(at, first.ts_ms) <= PUNCTUAL_MS, (iid, group.sg, at, first)
                assert probe.late_ms(at, message.at_ms) <= PUNCTUAL_MS, (iid, group.sg, at, message)
                checked += 1
    assert checked >= 20


async def test_drop_makes_the_broker_publish_the_will(sim: Simulator, recorder: Recorder) -> None:
    """drop() cuts the TCP connection without DISCONNECT: the broker publishes the Will."""
    iid = sim.ids[0]
    dropped_at = now_ms()
    seq = sim.seq(iid)
    sim.drop(iid)
    assert not sim.connected(iid)

    def offline() -> list[Received]:
        return [m for m in recorder.status(iid) if not json.loads(m.payload)["online"]]

    await recorder.wait_for(lambda _ms: bool(offline()))
    assert offline()[0].payload == status_payload(False)  # the Will: no ts_ms, unlike a goodbye
    assert sim.ready.is_set()  # dropped controllers are not expected to be connected
    await wait_until_ms(recorder, dropped_at + 1500)
    assert recorder.from_seq(iid, seq) == []
    sim.resume(iid)
    await recorder.wait_for(lambda _ms: len(recorder.from_seq(iid, seq)) >= 1)
    assert json.loads(recorder.status(iid)[-1].payload)["online"] is True


async def test_silence_stops_messages_while_connected(
    sim: Simulator, recorder: Recorder, probe: LoopProbe
) -> None:
    """silence() stops all SPaT while the connection stays up; speaking again is immediate."""
    iid = sim.ids[1]
    silenced_at = now_ms()
    seq = sim.seq(iid)
    sim.silence(iid)
    await wait_until_ms(recorder, silenced_at + 2000)
    assert recorder.from_seq(iid, seq) == []
    offline = [m for m in recorder.status(iid) if not json.loads(m.payload)["online"]]
    assert offline == []  # no Will: still connected
    assert sim.connected(iid)
    spoke_at = now_ms()
    sim.silence(iid, False)
    await recorder.wait_for(lambda _ms: bool(recorder.from_seq(iid, seq)))
    assert probe.late_ms(spoke_at, recorder.from_seq(iid, seq)[0].at_ms) <= PUNCTUAL_MS


async def test_mode_change_is_published_at_once(
    sim: Simulator, recorder: Recorder, probe: LoopProbe
) -> None:
    """set_mode(flash) is published within 50 ms: vehicles flashing yellow, no times."""
    iid = sim.ids[2]
    changed_at = now_ms()
    seq = sim.seq(iid)
    sim.set_mode(iid, "flash")
    await recorder.wait_for(lambda _ms: bool(recorder.from_seq(iid, seq)))
    first = recorder.from_seq(iid, seq)[0]
    assert probe.late_ms(changed_at, first.at_ms) <= PUNCTUAL_MS
    flash = report(first)
    assert flash.mode is Mode.FLASH
    intersection = sim.truth.plan(iid).intersection
    for group in flash.groups:
        registry_group = intersection.group(group.sg)
        assert registry_group is not None
        ped = registry_group.movement is Movement.PEDESTRIAN
        assert group.state is (SignalState.DARK if ped else SignalState.FLASHING_YELLOW)
        assert group.likely_ms is None
    assert sim.truth.mode_at(iid, now_ms()) is Mode.FLASH
    seq = sim.seq(iid)
    sim.set_mode(iid, Mode.NORMAL)
    await recorder.wait_for(lambda _ms: bool(recorder.from_seq(iid, seq)))
    assert report(recorder.from_seq(iid, seq)[0]).mode is Mode.NORMAL


async def test_restart_announces_online_then_seq_starts_over(
    sim: Simulator, recorder: Recorder
) -> None:
    """restart(): a fresh online status, then SPaT counting seq from 0 again."""
    iid = sim.ids[3]
    await recorder.wait_for(lambda _ms: len(recorder.spat(iid)) >= 3)
    at = now_ms()
    await sim.restart(iid)

    def announced(messages: list[Received]) -> int | None:
        for index, m in enumerate(messages):
            if m.intersection_id == iid and m.kind == "status":
                body = json.loads(m.payload)
                if body["online"] and body["ts_ms"] >= at:
                    return index
        return None

    def seq_after_announce(messages: list[Received]) -> int | None:
        index = announced(messages)
        if index is None:
            return None
        following = [m for m in messages[index:] if m.intersection_id == iid and m.kind == "spat"]
        return report(following[0]).seq if following else None

    await recorder.wait_for(lambda ms: seq_after_announce(ms) is not None)
    assert seq_after_announce(recorder.messages) == 0


async def test_duplicate_and_reorder_reach_the_wire(sim: Simulator, recorder: Recorder) -> None:
    """duplicate() sends one seq twice; reorder() sends seq n+1 before seq n."""
    iid = sim.ids[0]
    seq = sim.seq(iid)
    sim.duplicate(iid)
    await recorder.wait_for(lambda _ms: len(recorder.from_seq(iid, seq)) >= 3)
    first, second, third = recorder.from_seq(iid, seq)[:3]
    assert first.payload == second.payload
    assert _seq(third) == seq + 1
    seq = sim.seq(iid)
    sim.reorder(iid)
    await recorder.wait_for(lambda _ms: len(recorder.from_seq(iid, seq)) >= 3)
    assert [_seq(m) for m in recorder.from_seq(iid, seq)[:3]] == [seq + 1, seq, seq + 2]


async def test_skew_and_conflict_reach_the_wire(
    sim: Simulator, recorder: Recorder, probe: LoopProbe
) -> None:
    """skew() shifts ts_ms by the skew; conflict() reports a conflicting pair green."""
    iid = sim.ids[1]
    seq = sim.seq(iid)
    sim.skew(iid, -5000)
    sim.conflict(iid)
    await recorder.wait_for(lambda _ms: bool(recorder.from_seq(iid, seq)))
    message = recorder.from_seq(iid, seq)[0]
    skewed = report(message)
    assert skewed.ts_ms - message.at_ms <= -5000
    assert probe.late_ms(skewed.ts_ms + 5000, message.at_ms) <= PUNCTUAL_MS
    green = {g.sg for g in skewed.groups if g.state is SignalState.GREEN}
    conflicts = sim.truth.plan(iid).intersection.conflicts
    assert any(frozenset((a, b)) in conflicts for a in green for b in green if a != b)


async def test_malformed_payload_is_published(sim: Simulator, recorder: Recorder) -> None:
    """send_malformed() puts the bad payload on the controller's SPaT topic."""
    iid = sim.ids[2]
    payload = await sim.send_malformed(iid, "nan")
    await recorder.wait_for(lambda ms: any(m.payload == payload for m in ms))
    assert isinstance(parse_spat(iid, payload), Rejection)


async def test_controllers_reconnect_after_the_broker_restarts(
    sim: Simulator, mosquitto: MosquittoProcess
) -> None:
    """When the broker dies and comes back, every controller reconnects and says online."""
    mosquitto.restart()  # no persistence: the new broker holds no retained status at all
    async with Recorder(mosquitto.port, "signals/+/status") as late:
        await late.wait_for(lambda ms: {m.intersection_id for m in ms} >= set(sim.ids))
        assert all(json.loads(m.payload)["online"] is True for m in late.messages)
    await asyncio.wait_for(sim.ready.wait(), TIMEOUT)


@pytest.fixture
def password_broker(tmp_path: Path) -> Iterator[MosquittoProcess]:
    """A Mosquitto that admits only YT001/pw-YT001 and YT002/pw-YT002."""
    passwords = tmp_path / "passwd"
    for index, iid in enumerate(["YT001", "YT002"]):
        create = ["-c"] if index == 0 else []
        command = ["mosquitto_passwd", "-b", *create, str(passwords), iid, f"pw-{iid}"]
        subprocess.run(command, check=True, capture_output=True)
    with MosquittoProcess(f"allow_anonymous false\npassword_file {passwords}\n") as broker:
        yield broker


async def test_controllers_log_in_with_their_id_when_credentials_are_set(
    registry: Registry, password_broker: MosquittoProcess
) -> None:
    """With password_for, each controller's username is its id; a wrong password never connects."""
    ids = ["YT001", "YT002"]
    port = password_broker.port
    good = Simulator(registry, "127.0.0.1", port, only=ids, password_for=lambda i: f"pw-{i}")
    assert good.credentials_for("YT001") == ("YT001", "pw-YT001")
    async with good:
        assert all(good.connected(iid) for iid in ids)
    for passwords in ({}, {"YT001": "nope"}):
        bad = Simulator(registry, "127.0.0.1", port, only=ids[:1], password_for=passwords)
        await bad.start()
        try:
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(bad.ready.wait(), 1.0)
        finally:
            await bad.stop()


def parse_cli(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(argv)


def test_cli_flags_build_the_simulator() -> None:
    """--broker with user:pass, --only, --seed, --speed, --prefix reach the Simulator."""
    args = parse_cli(
        [
            "--broker",
            "mqtt://sim:secret@broker.example:1999",
            "--only",
            "YT003, YT001",
            "--seed",
            "4",
            "--speed",
            "2.5",
            "--prefix",
            "city/signals",
            "--intersections",
            str(ROOT / "intersections.yaml"),
        ]
    )
    sim = build_simulator(args)
    assert (sim.host, sim.port) == ("broker.example", 1999)
    assert sim.ids == ("YT003", "YT001")
    assert (sim.seed, sim.speed) == (4, 2.5)
    assert sim.topic("YT001", "spat") == "city/signals/YT001/spat"
    assert sim.credentials_for("YT003") == ("sim", "secret")


async def test_run_simulator_publishes_until_cancelled_then_says_offline(
    mosquitto: MosquittoProcess, recorder: Recorder
) -> None:
    """run_simulator() serves only the --only ids; cancelling it leaves them retained offline."""
    args = parse_cli(
        [
            *("--broker", mosquitto.url, "--only", "YT001,YT002", "--speed", "5"),
            *("--intersections", str(ROOT / "intersections.yaml")),
        ]
    )
    task = asyncio.create_task(run_simulator(args))
    try:
        await recorder.wait_for(lambda _ms: all(recorder.spat(i) for i in ("YT001", "YT002")))
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert {m.intersection_id for m in recorder.messages} == {"YT001", "YT002"}
    async with Recorder(mosquitto.port, "signals/+/status") as late:
        await late.wait_for(lambda ms: len(ms) == 2)
        for message in late.messages:
            body = json.loads(message.payload)
            assert body["online"] is False
            assert "ts_ms" in body  # a clean goodbye, not the Will


async def test_run_simulator_exits_2_on_a_bad_registry(tmp_path: Path) -> None:
    """A registry that does not load ends run_simulator() with exit status 2."""
    args = parse_cli(["--intersections", str(tmp_path / "missing.yaml")])
    with pytest.raises(SystemExit) as exit_info:
        await run_simulator(args)
    assert exit_info.value.code == 2
