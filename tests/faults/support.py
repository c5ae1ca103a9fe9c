"""What every fault scenario shares: the judge of shown numbers, memory sampling, set-ups.

The judge reads a WebSocket client's frames and checks **every** non-null ``end_ms`` against
the truth: the simulator's ground truth (``simulator.controllers.Truth``) or what the test
itself published (:class:`ScriptTruth`). A number is right when the group really leaves the
state the view shows within ``TOLERANCE_MS`` of it. The judge also checks actuated ranges
(``min_end_ms <= truth <= max_end_ms``), counts jumps (an exact end that moves while its state
lasts), and keeps, per intersection, when it last went from numbers to none and back, which is
how the scenarios measure detection and recovery.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

import psutil
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from signal_gateway.core.model import SignalState
from signal_gateway.core.registry import Registry
from signal_gateway.core.views import IntersectionView
from simulator.controllers import Simulator
from tests.support.gateway import RunningGateway, next_frame, running_gateway, ws_client

TOLERANCE_MS = 150
"""An end shown to a driver may be off the real change by at most this much."""

LOOKBACK_MS = 1000
"""A report may describe a change that happened up to this long before it arrived."""

FAULT_SETTINGS: dict[str, Any] = {
    "event_db": "",  # no SQLite event log: the engineers' view is not under test here
    "mqtt_keepalive_s": 2,
    "reconnect_min_s": 0.2,
    "reconnect_max_s": 2.0,
}
"""Gateway settings of the suite: short keepalive and backoff so faults play out in seconds."""


def wall_ms() -> int:
    """The machine clock the simulator, the gateway and the tests share, Unix ms."""
    return time.time_ns() // 1_000_000


class TruthLike(Protocol):
    """What the judge needs to know about when groups really change."""

    def transitions(
        self, intersection_id: str, sg: int, from_ms: int, to_ms: int
    ) -> list[tuple[int, SignalState]]:
        """``(at_ms, new_state)`` for every change of group ``sg`` in [from_ms, to_ms)."""

    def state_at(self, intersection_id: str, sg: int, at_ms: int) -> SignalState:
        """The state of group ``sg`` at ``at_ms``."""


class ScriptTruth:
    """Ground truth a test writes down as it publishes: group ``sg`` is ``state`` until ``end``."""

    def __init__(self) -> None:
        self._episodes: dict[tuple[str, int], list[tuple[int, int, SignalState]]] = {}

    def declare(
        self, intersection_id: str, sg: int, state: SignalState, start_ms: int, end_ms: int
    ) -> None:
        """Group ``sg`` shows ``state`` over [start_ms, end_ms), then changes."""
        episodes = self._episodes.setdefault((intersection_id, sg), [])
        episodes.append((start_ms, end_ms, state))
        episodes.sort()

    def transitions(
        self, intersection_id: str, sg: int, from_ms: int, to_ms: int
    ) -> list[tuple[int, SignalState]]:
        """Declared ends in [from_ms, to_ms); the new state is unknown, reported as DARK."""
        return [
            (end, SignalState.DARK)
            for _, end, _ in self._episodes.get((intersection_id, sg), [])
            if from_ms <= end < to_ms
        ]

    def state_at(self, intersection_id: str, sg: int, at_ms: int) -> SignalState:
        """The declared state at ``at_ms`` (DARK outside every declared episode)."""
        for start, end, state in self._episodes.get((intersection_id, sg), []):
            if start <= at_ms < end:
                return state
        return SignalState.DARK


@dataclass
class Verdict:
    """One wrong thing a client was shown."""

    at_ms: int
    intersection_id: str
    sg: int
    what: str

    def __str__(self) -> str:
        return f"{self.intersection_id} sg {self.sg} at {self.at_ms}: {self.what}"


def timed(view: dict[str, Any]) -> bool:
    """Whether a view shows any time at all (an exact end or a range)."""
    return any(
        group[key] is not None
        for group in view["groups"]
        for key in ("end_ms", "min_end_ms", "max_end_ms", "likely_end_ms")
    )


def any_time(view: IntersectionView) -> bool:
    """``timed`` for a view read from the gateway itself."""
    return any(
        value is not None
        for group in view.groups
        for value in (group.end_ms, group.min_end_ms, group.max_end_ms, group.likely_end_ms)
    )


@dataclass
class Judge:
    """Judges every frame one WebSocket client receives."""

    truth: TruthLike | None
    tolerance_ms: int = TOLERANCE_MS
    frames: int = 0
    checked: int = 0
    ranges_checked: int = 0
    wrong: list[Verdict] = field(default_factory=list)
    jumps: list[Verdict] = field(default_factory=list)
    latest: dict[str, dict[str, Any]] = field(default_factory=dict)
    timed_since: dict[str, tuple[bool, int]] = field(default_factory=dict)
    errors: list[dict[str, Any]] = field(default_factory=list)
    closed: int | None = None
    deferred: bool = False  # keep raw frames and judge them in settle(): no CPU taken meanwhile
    _raw: list[tuple[str | bytes, int]] = field(default_factory=list)
    checked_ids: set[str] = field(default_factory=set)
    latencies: list[int] = field(default_factory=list)  # report received -> update received
    stamped_latencies: list[tuple[int, int]] = field(default_factory=list)  # (when, latency)
    shorter: set[tuple[str, int, int]] = field(default_factory=set)  # real end before likely
    longer: set[tuple[str, int, int]] = field(default_factory=set)  # real end after likely
    _shown: dict[tuple[str, int], tuple[str, int]] = field(default_factory=dict)
    _cond: asyncio.Condition = field(default_factory=asyncio.Condition)

    # -- reading -----------------------------------------------------------------------------

    async def read(self, ws: ClientConnection) -> None:
        """Judge frames until the connection closes."""
        try:
            async for raw in ws:
                if self.deferred:
                    self._raw.append((raw, wall_ms()))
                else:
                    await self.feed(json.loads(raw), wall_ms())
        except ConnectionClosed:
            pass
        finally:
            rcvd = ws.protocol.close_rcvd
            self.closed = rcvd.code if rcvd is not None else 1006
            async with self._cond:
                self._cond.notify_all()

    async def feed(self, frame: dict[str, Any], received_ms: int) -> None:
        """Judge one frame and wake whoever waits on a condition."""
        self.frames += 1
        if frame["type"] == "error":
            self.errors.append(frame)
        for view in frame.get("intersections", ()):
            self.judge_view(view, frame["server_time_ms"], received_ms)
            if frame["type"] == "update" and view["updated_ms"] is not None:
                self.latencies.append(received_ms - view["updated_ms"])
                self.stamped_latencies.append((received_ms, self.latencies[-1]))
        async with self._cond:
            self._cond.notify_all()

    @property
    def held_bytes(self) -> int:
        """Bytes of frames kept while ``deferred`` (in this process's RSS, not the gateway's)."""
        return sum(len(raw) for raw, _ in self._raw)

    async def settle(self) -> None:
        """Judge the frames kept while ``deferred``, in the order they came."""
        kept, self._raw = self._raw, []
        for raw, received_ms in kept:
            await self.feed(json.loads(raw), received_ms)

    def judge_view(self, view: dict[str, Any], server_ms: int, received_ms: int) -> None:
        """Check every time in one view against the truth."""
        iid = view["id"]
        self.latest[iid] = view
        now_timed = timed(view)
        if self.timed_since.get(iid, (None, 0))[0] is not now_timed:
            self.timed_since[iid] = (now_timed, received_ms)
        anchor = view["updated_ms"] if view["updated_ms"] is not None else server_ms
        for group in view["groups"]:
            self._judge_group(iid, group, anchor, received_ms)

    def _judge_group(self, iid: str, group: dict[str, Any], anchor: int, received_ms: int) -> None:
        sg, state, end = group["sg"], group["state"], group["end_ms"]
        low, high = group["min_end_ms"], group["max_end_ms"]
        key = (iid, sg)
        if end is not None and state is not None:
            previous = self._shown.get(key)
            if (
                previous is not None
                and previous[0] == state
                and received_ms < previous[1] - self.tolerance_ms
                and abs(previous[1] - end) > self.tolerance_ms
            ):
                self.jumps.append(
                    Verdict(received_ms, iid, sg, f"{state} end moved {previous[1]} -> {end}")
                )
            self._shown[key] = (state, end)
        if self.truth is None or state is None or (end is None and (low is None or high is None)):
            return
        real = self._real_end(iid, sg, SignalState(state), anchor)
        if end is not None:
            self.checked += 1
            self.checked_ids.add(iid)
            if real is None or abs(end - real) > self.tolerance_ms:
                off = "no such change" if real is None else f"off by {end - real:+d} ms"
                self.wrong.append(Verdict(received_ms, iid, sg, f"{state} end {end}: {off}"))
        elif low is not None and high is not None:
            self.ranges_checked += 1
            if real is None or not low - self.tolerance_ms <= real <= high + self.tolerance_ms:
                self.wrong.append(
                    Verdict(received_ms, iid, sg, f"{state} range [{low}, {high}] misses {real}")
                )
            likely = group["likely_end_ms"]
            if real is not None and likely is not None:
                if real < likely - self.tolerance_ms:
                    self.shorter.add((iid, sg, real))
                elif real > likely + self.tolerance_ms:
                    self.longer.add((iid, sg, real))

    def _real_end(self, iid: str, sg: int, state: SignalState, anchor: int) -> int | None:
        """When group ``sg`` really leaves ``state``: the first such change after the report."""
        assert self.truth is not None
        start = anchor - LOOKBACK_MS
        for at, _new in self.truth.transitions(iid, sg, start, start + 900_000):
            if self.truth.state_at(iid, sg, at - 1) is state:
                return at
        return None

    @property
    def cut_short(self) -> int:
        """Ranged phases that really ended before their likely end."""
        return len(self.shorter)

    @property
    def extended(self) -> int:
        """Ranged phases that really ended after their likely end."""
        return len(self.longer)

    # -- waiting -----------------------------------------------------------------------------

    async def wait(self, condition: Callable[[], bool], within_s: float) -> None:
        """Wait until ``condition`` holds after some frame (TimeoutError after ``within_s``)."""
        async with asyncio.timeout(within_s), self._cond:
            await self._cond.wait_for(condition)

    def is_timed(self, iid: str) -> bool:
        """Whether the latest view of ``iid`` shows times."""
        view = self.latest.get(iid)
        return view is not None and timed(view)

    async def wait_timed(self, ids: Iterable[str], within_s: float = 10.0) -> None:
        """Wait until every id shows times."""
        wanted = list(ids)
        await self.wait(lambda: all(self.is_timed(i) for i in wanted), within_s)

    async def unknown_after(self, iid: str, since_ms: int, within_s: float) -> int:
        """Wait until ``iid`` shows no time; return ms from ``since_ms`` (0 if it already did)."""
        await self.wait(lambda: not self.is_timed(iid), within_s)
        return max(0, self.timed_since[iid][1] - since_ms)

    async def timed_after(self, iid: str, since_ms: int, within_s: float) -> int:
        """Wait until ``iid`` shows times again; return ms from ``since_ms``."""
        await self.wait(lambda: self.is_timed(iid), within_s)
        return max(0, self.timed_since[iid][1] - since_ms)

    def assert_clean(self, min_checked: int = 1) -> None:
        """No wrong number and no jump was shown, and enough numbers were judged to mean it."""
        assert not self.wrong, f"{len(self.wrong)} wrong: " + "; ".join(map(str, self.wrong[:5]))
        assert not self.jumps, f"{len(self.jumps)} jumps: " + "; ".join(map(str, self.jumps[:5]))
        assert self.checked >= min_checked, f"only {self.checked} numbers judged"


@contextlib.asynccontextmanager
async def judged_client(
    gw: RunningGateway | str,
    truth: TruthLike | None,
    subscribe: dict[str, Any] | None = None,
    **connect: Any,
) -> AsyncIterator[Judge]:
    """A subscribed WebSocket client whose every frame is judged (snapshot included)."""
    url = gw if isinstance(gw, str) else gw.ws
    judge = Judge(truth)
    async with ws_client(url, **connect) as ws:
        await ws.send(json.dumps(subscribe or {"op": "subscribe", "all": True}))
        await judge.feed(await next_frame(ws, "snapshot"), wall_ms())
        task = asyncio.create_task(judge.read(ws))
        try:
            yield judge
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


@contextlib.asynccontextmanager
async def gateway(
    broker_url: str, registry: Registry, **overrides: Any
) -> AsyncIterator[RunningGateway]:
    """The real gateway with the suite's settings (overrides win)."""
    async with running_gateway(broker_url, registry, **{**FAULT_SETTINGS, **overrides}) as gw:
        yield gw


@contextlib.asynccontextmanager
async def simulator(
    registry: Registry, port: int, ids: list[str], **options: Any
) -> AsyncIterator[Simulator]:
    """Simulated controllers for ``ids``, all connected, quick to reconnect."""
    settings: dict[str, Any] = {
        "seed": 7,
        "reconnect_min_s": 0.2,
        "reconnect_max_s": 1.0,
        **options,
    }
    sim = Simulator(registry, "127.0.0.1", port, only=ids, **settings)
    task = asyncio.create_task(sim.run())
    try:
        async with asyncio.timeout(15):
            await sim.ready.wait()
        yield sim
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


class Memory:
    """Samples this process's RSS (gateway, simulator and clients all live here) every 50 ms."""

    def __init__(self) -> None:
        self._process = psutil.Process(os.getpid())
        self.baseline_mb = self.sample()
        self.peak_mb = self.baseline_mb
        self._task: asyncio.Task[None] | None = None

    def sample(self) -> float:
        """RSS now, MiB."""
        rss: int = self._process.memory_info().rss
        return rss / 2**20

    @property
    def growth_mb(self) -> float:
        """Peak over the baseline taken at the start."""
        return self.peak_mb - self.baseline_mb

    async def _run(self) -> None:
        while True:
            self.peak_mb = max(self.peak_mb, self.sample())
            await asyncio.sleep(0.05)  # a sampling period, not a synchronisation

    async def __aenter__(self) -> Memory:
        self.baseline_mb = self.peak_mb = self.sample()
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self.peak_mb = max(self.peak_mb, self.sample())
