"""Property-based fuzzing of WebSocket client messages against a live gateway (scenario 7/14).

The gateway (real uvicorn, real Mosquitto) runs in a thread with its own event loop for the
whole module, and Hypothesis drives it through the synchronous websockets client: every
message gets a documented answer (``snapshot``, ``time`` or an ``error`` with a documented
code) or a documented close (1007, 1008, 1009), and the gateway keeps serving.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from signal_gateway.core.registry import Registry
from tests.faults.support import gateway
from tests.support.mosquitto import MosquittoProcess

pytestmark = pytest.mark.broker

ERROR_CODES = {"bad_json", "bad_op", "unknown_op", "bad_field", "unknown_id", "rate_limited"}
CLOSE_CODES = {1007, 1008, 1009}
PROBE = json.dumps({"op": "time", "t0": 12345})


class GatewayThread:
    """The real gateway in a thread of its own, for synchronous tests."""

    def __init__(self, broker_url: str, registry: Registry, **overrides: Any) -> None:
        self.broker_url = broker_url
        self.registry = registry
        self.overrides = overrides
        self.url = ""
        self.error: BaseException | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="gateway", daemon=True)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None

    def _run(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        try:
            async with gateway(self.broker_url, self.registry, **self.overrides) as gw:
                self.url = gw.ws
                self._ready.set()
                await self._stop.wait()
        except BaseException as exc:
            self.error = exc
            self._ready.set()

    def __enter__(self) -> GatewayThread:
        self._thread.start()
        assert self._ready.wait(30), "gateway thread did not start"
        if self.error is not None:
            raise self.error
        return self

    def __exit__(self, *exc: object) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)


@pytest.fixture(scope="module")
def live(registry: Registry) -> Iterator[GatewayThread]:
    """One gateway for the module, no op rate limit (scenario 14 tests it)."""
    with (
        MosquittoProcess() as broker,
        GatewayThread(broker.url, registry, ws_ops_per_s=1e6, ws_ops_burst=1_000_000) as live,
    ):
        yield live


@contextlib.contextmanager
def hello(url: str) -> Iterator[ClientConnection]:
    """A connected client past its hello, closed when the block ends."""
    with connect(url, max_size=None, open_timeout=5) as ws:
        assert json.loads(ws.recv(timeout=5))["type"] == "hello"
        yield ws


def answers(ws: ClientConnection, message: str | bytes) -> tuple[list[dict[str, Any]], int | None]:
    """Send ``message`` and a time probe; the frames up to the probe's answer, or the close code."""
    frames: list[dict[str, Any]] = []
    with contextlib.suppress(ConnectionClosed):  # the server may close at the first one
        ws.send(message)
        ws.send(PROBE)
    try:
        while True:
            frame = json.loads(ws.recv(timeout=5))
            frames.append(frame)
            if frame["type"] == "time" and frame["t0"] == 12345:
                return frames, None
    except ConnectionClosed as exc:
        return frames, exc.rcvd.code if exc.rcvd is not None else None


def documented(frame: dict[str, Any]) -> bool:
    """A frame the protocol describes."""
    if frame["type"] == "error":
        return frame["code"] in ERROR_CODES and isinstance(frame["message"], str)
    return frame["type"] in ("snapshot", "time") and isinstance(frame["server_time_ms"], int)


json_leaf = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=10)
    | st.sampled_from(["YT001", "YT235", "YT999", ""])
)
json_values = st.recursive(
    json_leaf,
    lambda inner: (
        st.lists(inner, min_size=1, max_size=5)
        | st.dictionaries(st.text(max_size=6), inner, min_size=1, max_size=4)
    ),
    max_leaves=25,
)
op_shaped = st.fixed_dictionaries(
    {"op": st.sampled_from(["subscribe", "time", "unsubscribe", "", "SUBSCRIBE"]) | json_leaf},
    optional={
        "ids": st.lists(st.sampled_from(["YT001", "YT002", "YT235", "YT000", "x"]), max_size=6)
        | json_values,
        "bbox": st.lists(st.floats(min_value=-200, max_value=200), min_size=3, max_size=5)
        | json_values,
        "all": st.booleans() | json_values,
        "t0": st.floats() | json_values,
    },
).map(json.dumps)
messages = (
    op_shaped
    | st.text(max_size=300)
    | json_values.map(json.dumps)
    | st.binary(max_size=300)
    | st.integers(min_value=3900, max_value=9000).map(lambda n: "x" * n)  # around the 4 KiB limit
)  # fmt: skip


@settings(
    deadline=None, max_examples=200, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(messages)  # fmt: skip
def test_fuzz_one_client_message(live: GatewayThread, message: str | bytes) -> None:
    """Any one message gets documented answers, or a documented close; the gateway stays up."""
    with hello(live.url) as ws:
        frames, closed = answers(ws, message)
    assert all(documented(frame) for frame in frames), frames
    if closed is not None:
        assert closed in CLOSE_CODES, closed
        size = len(message.encode() if isinstance(message, str) else message)
        assert closed != 1009 or size > 4096
    else:
        assert len(message) <= 4096 or isinstance(message, bytes)
    with hello(live.url):
        pass


@settings(
    deadline=None, max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(op_shaped | st.text(max_size=50), min_size=1, max_size=14))  # fmt: skip
def test_fuzz_message_sequences(live: GatewayThread, sequence: list[str]) -> None:
    """On one connection, the tenth error closes with 1008 and not one before."""
    errors = 0
    with hello(live.url) as ws:
        for message in sequence:
            frames, closed = answers(ws, message)
            assert all(documented(frame) for frame in frames), frames
            errors += sum(frame["type"] == "error" for frame in frames)
            if closed is not None:
                assert closed == 1008, closed
                assert errors >= 10, errors
                return
            assert errors < 10
