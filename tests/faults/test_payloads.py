"""Scenario 7: malformed payloads over a real broker, and property-based fuzzing of the ingest.

Every bad payload is refused with the documented reason, changes nothing a client sees, and
costs bounded memory (the 10 MB one included). The fuzzing drives the whole ingest chain the
broker feeds (``MqttIngest.handle``: topic, wire parsing, the city with the engineers' rules,
the hub's encoding) with arbitrary and with mutated real payloads, and checks that nothing
raises inside (no ``internal_error``) and that no shown end is implausible.
"""

from __future__ import annotations

import json
import math

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from signal_gateway.core.registry import Registry, load_registry
from signal_gateway.gateway import Gateway
from signal_gateway.ingest.mqtt import wall_ms as gateway_clock
from signal_gateway.settings import load_settings
from simulator.faults import MALFORMED_KINDS
from simulator.plan import build_city_plan
from tests.conftest import REPO
from tests.faults.conftest import Figures
from tests.faults.support import FAULT_SETTINGS, Memory, gateway, judged_client, simulator
from tests.support.gateway import until, ws_client
from tests.support.mosquitto import MosquittoProcess

REASONS = {
    "invalid_json": "not_json",
    "not_utf8": "not_utf8",
    "empty": "not_json",
    "nan": "schema",
    "infinity": "schema",
    "negative_time": "schema",
    "huge_time": "absurd_time",
    "unknown_state": "schema",
    "unknown_group": "unknown_group",
    "wrong_id": "id_mismatch",
    "missing_field": "schema",
    "wrong_version": "schema",
    "deeply_nested": "not_json",
    "huge": "too_large",
}
"""What the gateway must call each of the simulator's malformed payloads."""

EXTRA = {
    b'{"v":1,"id":"YT001","seq":1,"ts_ms":1,"mode":"normal","groups":[]}': "absurd_time",
    b'{"v":1,"id":"YT001","seq":-1,"ts_ms":1,"mode":"normal","groups":[]}': "schema",
    b'{"v":1,"id":"YT001","seq":"7","ts_ms":1,"mode":"normal","groups":[]}': "schema",
    b"[" * 100_000: "too_large",
    b"\x00\x01\x02": "not_json",
}
"""Further bad SPaT payloads on YT001's topic: a 1970 clock, a negative or string seq..."""

BAD_STATUS = {b"\xff\xfe": "not_utf8", b'{"v":1,"online":"yes"}': "schema", b"": "not_json"}


@pytest.mark.broker
async def test_malformed_payloads_change_nothing(
    mosquitto: MosquittoProcess, registry: Registry, figures: Figures
) -> None:
    """Every malformed payload is refused with its reason, changes nothing, costs bounded memory."""
    target, other = "YT001", "YT002"
    async with (
        Memory() as memory,
        simulator(registry, mosquitto.port, [target, other], speed=4) as sim,
        gateway(mosquitto.url, registry) as gw,
        judged_client(gw, sim.truth) as judge,
    ):
        totals = gw.gateway.city.totals
        await judge.wait_timed([target, other])
        expected: dict[str, int] = {}
        for kind in MALFORMED_KINDS:
            await sim.send_malformed(target, kind)
            expected[REASONS[kind]] = expected.get(REASONS[kind], 0) + 1
        for payload, reason in EXTRA.items():
            await sim.publish_raw(target, f"signals/{target}/spat", payload)
            expected[reason] = expected.get(reason, 0) + 1
        for payload, reason in BAD_STATUS.items():
            await sim.publish_raw(target, f"signals/{target}/status", payload)
            expected[reason] = expected.get(reason, 0) + 1
        await until(lambda: all(totals[r] >= n for r, n in expected.items()), 10)
        assert judge.is_timed(target)
        assert judge.is_timed(other)
        await until(lambda: judge.checked >= 40, 10)
        async with httpx.AsyncClient() as http:
            assert (await http.get(gw.http + "/healthz")).status_code == 200
        async with ws_client(gw.ws):
            pass  # a new client still gets its hello
        internal = totals["internal_error"]
    judge.assert_clean(min_checked=40)
    assert internal == 0
    assert memory.growth_mb < 150, "the 10 MB payload must not stay or multiply"
    figures.record(
        "7 malformed payloads (14 kinds + 8 more, 10 MB)",
        detection_ms=0,
        recovery_ms=0,
        peak_rss_mb=memory.peak_mb,
        rss_growth_mb=memory.growth_mb,
        wrong_numbers=len(judge.wrong),
        numbers_checked=judge.checked,
        notes="each refused with its reason; the intersection kept its right numbers",
    )


# -- property-based fuzzing of the ingest chain (no broker) ---------------------------------------

REGISTRY = load_registry(REPO / "intersections.yaml")
IIDS = ["YT001", "YT002", "YT004"]
_clock_ms = gateway_clock()
PLAN = build_city_plan(list(REGISTRY), seed=7, epoch_ms=_clock_ms // 1000 * 1000)


SMALL = Registry([entry for entry in REGISTRY if entry.id in IIDS])


def fresh_gateway() -> Gateway:
    """A gateway that is never started: its ingest, city, rules and hub, driven by hand."""
    settings = load_settings({**FAULT_SETTINGS, "broker": "mqtt://127.0.0.1:1"}, environ={})
    return Gateway(settings, SMALL)


json_leaf = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12)
)
json_values = st.recursive(
    json_leaf,
    lambda inner: (
        st.lists(inner, min_size=1, max_size=4)
        | st.dictionaries(st.text(max_size=8), inner, min_size=1, max_size=4)
    ),
    max_leaves=20,
)
topics = st.sampled_from(
    ["signals/YT001/spat", "signals/YT002/status", "signals/YT999/spat", "signals/YT001/x",
     "signals//spat", "other/YT001/spat", "signals/YT001/spat/extra", "signals/+/spat"]
)  # fmt: skip


def check_views(gw: Gateway, now_ms: int) -> None:
    """Nothing raised inside, and every shown time is plausible (within the hour ahead)."""
    assert gw.city.totals["internal_error"] == 0
    gw.flush_once()
    for iid in IIDS:
        view = gw.city.view(iid)
        json.loads(view.encode())
        for group in view.groups:
            for value in (group.end_ms, group.min_end_ms, group.max_end_ms, group.likely_end_ms):
                if value is not None:
                    assert now_ms - 60_000 <= value <= now_ms + 3_600_000 + 60_000, view


@settings(deadline=None, max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(topics, st.binary(max_size=200) | json_values.map(
    lambda v: json.dumps(v, allow_nan=True).encode())), max_size=8))  # fmt: skip
def test_fuzz_ingest_with_arbitrary_messages(messages: list[tuple[str, bytes]]) -> None:
    """Arbitrary topics and payloads never raise inside the ingest chain."""
    gw = fresh_gateway()
    for topic, payload in messages:
        outcomes = gw.ingest.handle(topic, payload)
        assert outcomes
    check_views(gw, gateway_clock())


def _mutations() -> st.SearchStrategy[tuple[str, object]]:
    field = st.sampled_from(
        ["v", "id", "seq", "ts_ms", "mode", "groups", "sg", "state", "remaining_s",
         "min_remaining_s", "max_remaining_s", "confidence"]
    )  # fmt: skip
    return st.tuples(field, json_values)


@settings(deadline=None, max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(IIDS),
    st.integers(min_value=0, max_value=300_000),
    st.lists(_mutations(), max_size=3),
    st.integers(min_value=-3_000, max_value=3_000),
    st.booleans(),
)
def test_fuzz_ingest_with_mutated_reports(
    iid: str, at_ms: int, mutations: list[tuple[str, object]], skew_ms: int, twice: bool
) -> None:
    """Real reports with fields replaced by any JSON never raise nor show an absurd end."""
    gw = fresh_gateway()
    now = gateway_clock()
    plan = PLAN[iid]
    good = json.loads(plan.report(now - at_ms % 2000, 1))
    gw.ingest.handle(f"signals/{iid}/spat", json.dumps(good).encode())
    body = json.loads(plan.report(now + skew_ms, 2))
    for name, value in mutations:
        groups = body["groups"]
        if name in body:
            body[name] = value
        elif isinstance(groups, list) and groups and isinstance(groups[0], dict):
            groups[0][name] = value
    payload = json.dumps(body, allow_nan=True).encode()
    for _ in range(2 if twice else 1):
        gw.ingest.handle(f"signals/{iid}/spat", payload)
    check_views(gw, now)


@settings(deadline=None, max_examples=100)
@given(st.floats(min_value=0, max_value=1e6) | st.integers(min_value=0, max_value=2**60))
def test_fuzz_remaining_times_convert_exactly(seconds: float) -> None:
    """Any accepted remaining time becomes an end within a millisecond of ts + offset + it."""
    gw = fresh_gateway()
    now = gateway_clock()
    body = json.loads(PLAN["YT001"].report(now, 1))
    for group in body["groups"]:
        group.update(remaining_s=seconds, min_remaining_s=seconds, max_remaining_s=seconds)
    gw.ingest.handle("signals/YT001/spat", json.dumps(body).encode())
    view = gw.city.view("YT001")
    if not math.isfinite(seconds * 1000) or round(seconds * 1000) > 3_600_000:
        assert not view.countdowns_shown
        return
    offset = gw.city.state("YT001").sample
    assert offset is not None
    for group in view.groups:
        assert group.end_ms is not None
        assert abs(group.end_ms - (now + offset.offset_ms + seconds * 1000)) <= 1
