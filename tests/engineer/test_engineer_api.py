"""Engineers' HTTP routes and WebSocket: bearer tokens, query validation, alerts, metrics."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from signal_gateway.api.engineer import EngineerRuntime, TokenBook, parse_time
from signal_gateway.core.city import Event
from signal_gateway.core.model import StatusReport
from signal_gateway.gateway import Gateway
from signal_gateway.settings import load_settings
from signal_gateway.testing import G, spat_payload, status_payload
from tests.engineer.support import registry
from tests.support.gateway import RunningGateway, running_gateway
from tests.support.mosquitto import MosquittoProcess

pytestmark = pytest.mark.broker

TOKEN = "s3cret-engineer-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@dataclass
class Api:
    """A running gateway and an HTTP client for it."""

    running: RunningGateway
    http: httpx.AsyncClient

    @property
    def gateway(self) -> Gateway:
        """The live gateway."""
        return self.running.gateway

    @property
    def runtime(self) -> EngineerRuntime:
        """The engineers' runtime of the app."""
        found: EngineerRuntime = self.running.app.api.state.engineer
        return found

    @property
    def ws_url(self) -> str:
        """The engineers' WebSocket URL."""
        return f"ws://127.0.0.1:{self.running.port}/ws/v1/engineer"

    def feed(self) -> None:
        """Hand ingest messages as if from the broker: YT001 conflicting greens, YT002 flash."""
        ingest = self.gateway.ingest
        now = self.gateway.clock()
        ingest.handle("signals/YT001/status", status_payload(True, now))
        ingest.handle(
            "signals/YT001/spat", spat_payload("YT001", 1, now, [G(2, "green"), G(4, "red")])
        )
        ingest.handle(
            "signals/YT001/spat", spat_payload("YT001", 2, now, [G(2, "green"), G(4, "green")])
        )
        ingest.handle(
            "signals/YT002/spat",
            spat_payload("YT002", 1, now, [G(2, "flashing_yellow")], mode="flash"),
        )


@contextlib.asynccontextmanager
async def serve(broker: MosquittoProcess, tmp_path: Path, **overrides: Any) -> AsyncIterator[Api]:
    """A gateway on the two-crossing registry with the token ``TOKEN`` (unless overridden)."""
    settings: dict[str, Any] = {
        "event_db": str(tmp_path / "events.sqlite3"),
        "engineer_tokens": TOKEN,
        **overrides,
    }
    async with (
        running_gateway(broker.url, registry(), **settings) as running,
        httpx.AsyncClient(base_url=running.http) as http,
    ):
        yield Api(running, http)


@pytest.fixture
async def api(mosquitto: MosquittoProcess, tmp_path: Path) -> AsyncIterator[Api]:
    """A running gateway with the token ``TOKEN``."""
    async with serve(mosquitto, tmp_path) as running:
        yield running


async def closed_by(ws: ClientConnection) -> tuple[int, str]:
    """Read until the server closes; its close code and reason."""
    try:
        while True:
            await ws.recv()
    except ConnectionClosed as closed:
        frame = closed.rcvd
    assert frame is not None
    return frame.code, frame.reason


async def test_no_token_is_401_with_a_clear_message(api: Api) -> None:
    """Without Authorization: 401, WWW-Authenticate: Bearer, and what to send."""
    response = await api.http.get("/api/v1/engineer/controllers")
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert response.json() == {
        "error": "unauthorized",
        "message": "engineer routes need the header 'Authorization: Bearer <token>'",
    }


async def test_wrong_token_is_401(api: Api) -> None:
    """A wrong token, another scheme or an empty token: 401 on every engineer route."""
    headers = ["Bearer wrong-token", f"Basic {TOKEN}", "Bearer", f"Bearer {TOKEN}x"]
    paths = [
        "/api/v1/engineer/controllers",
        "/api/v1/engineer/controllers/YT001",
        "/api/v1/engineer/controllers/YT001/timing",
        "/api/v1/engineer/events",
        "/api/v1/engineer/rules",
    ]
    for path in paths:
        for header in headers:
            response = await api.http.get(path, headers={"Authorization": header})
            assert response.status_code == 401, (path, header)
            assert response.json()["error"] == "unauthorized"


async def test_token_in_query_string_is_400(api: Api) -> None:
    """A token in the URL is refused with 400, even with a good header."""
    response = await api.http.get(f"/api/v1/engineer/controllers?token={TOKEN}", headers=AUTH)
    assert response.status_code == 400
    body = response.json()
    assert body["error"] == "token_in_query"
    assert "never accepted in a query string" in body["message"]
    other = await api.http.get(f"/api/v1/engineer/events?access_token={TOKEN}")
    assert other.status_code == 400


async def test_good_token_gets_one_row_per_controller(api: Api) -> None:
    """With the token: 200, a row per controller with status and counts at the top."""
    api.feed()
    response = await api.http.get("/api/v1/engineer/controllers", headers=AUTH)
    assert response.status_code == 200
    body = response.json()
    rows = {row["id"]: row for row in body["controllers"]}
    assert set(rows) == {"YT001", "YT002"}
    assert rows["YT001"]["status"] == "online"
    assert rows["YT001"]["rules"] == {"conflicting_greens": 1}
    assert rows["YT001"]["name_en"] == "Test crossing YT001"
    assert rows["YT002"]["status"] == "flash"
    assert body["counts"]["online"] == 1
    assert body["counts"]["flash"] == 1
    assert body["counts"]["faults"] == 1
    one = await api.http.get("/api/v1/engineer/controllers/YT002", headers=AUTH)
    assert one.json()["controller"]["mode"] == "flash"
    assert one.json()["view"]["mode"] == "flash"


async def test_events_are_logged_and_queried(api: Api) -> None:
    """Recorded events reach SQLite and come back filtered by intersection and kind."""
    api.feed()
    writer = api.runtime.writer
    assert writer is not None
    assert writer.flush(5.0)
    response = await api.http.get(
        "/api/v1/engineer/events", params={"intersection": "YT001", "kind": "rule:*"}, headers=AUTH
    )
    assert response.status_code == 200
    events = response.json()["events"]
    assert [e["kind"] for e in events] == ["rule:conflicting_greens"]
    assert events[0]["severity"] == "critical"
    assert "sg 2 (green) and sg 4 (green)" in events[0]["message"]


BAD_QUERIES = [
    ({"since": "yesterday"}, "since: 'yesterday' is neither ISO-8601"),
    ({"until": "2025-11-26T08:00:00"}, "has no UTC offset"),
    ({"since": "1764000000"}, "looks like Unix seconds"),
    ({"limit": "0"}, "limit: '0' is not a whole number from 1 to 10000"),
    ({"intersection": "YT999"}, "intersection: 'YT999' is not in the registry"),
    ({"kind": "rule;drop"}, "kind: 'rule;drop' is not an event kind"),
    ({"since": "1764000002000", "until": "1764000001000"}, "is after until"),
]


async def test_bad_event_queries_are_422(api: Api) -> None:
    """Each bad parameter gets a 422 whose message names it."""
    for params, message in BAD_QUERIES:
        response = await api.http.get("/api/v1/engineer/events", params=params, headers=AUTH)
        assert response.status_code == 422, params
        assert message in response.json()["message"], params


def test_time_parsing() -> None:
    """ISO-8601 with an offset or Z, and Unix ms, all mean the same instant."""
    assert parse_time("since", "2025-11-26T08:00:00+08:00") == 1_764_115_200_000
    assert parse_time("since", "2025-11-26T00:00:00Z") == 1_764_115_200_000
    assert parse_time("since", "1764115200000") == 1_764_115_200_000


async def test_timing_diagram_route(api: Api) -> None:
    """The timing route returns each group's segments; 404 for unknown ids, 422 bad minutes."""
    api.feed()
    response = await api.http.get("/api/v1/engineer/controllers/YT001/timing", headers=AUTH)
    assert response.status_code == 200
    groups = {group["sg"]: group for group in response.json()["groups"]}
    assert [s["state"] for s in groups[4]["segments"]] == ["red", "green"]
    assert groups[4]["movement"] == "straight"
    missing = await api.http.get("/api/v1/engineer/controllers/YT999/timing", headers=AUTH)
    assert missing.status_code == 404
    assert missing.json()["error"] == "not_found"
    bad = await api.http.get("/api/v1/engineer/controllers/YT001/timing?minutes=99", headers=AUTH)
    assert bad.status_code == 422


async def test_alerts_are_anonymous_and_list_offline_and_flash(api: Api) -> None:
    """/api/v1/alerts needs no token: YT002 flashing, and YT001 offline after its Will."""
    api.feed()
    gw = api.gateway
    gw.city.on_status(StatusReport("YT001", False, None), gw.clock())
    response = await api.http.get("/api/v1/alerts")
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == "*"
    alerts = {a["id"]: a for a in response.json()["alerts"]}
    assert alerts["YT001"]["condition"] == "offline"
    assert alerts["YT002"]["condition"] == "flash"
    assert alerts["YT002"]["lat"] == 37.5


async def test_metrics_in_prometheus_format(api: Api) -> None:
    """/metrics: controllers by status, rule violations, connections, flush durations."""
    api.feed()
    text = (await api.http.get("/metrics")).text
    assert 'signal_gateway_controllers{status="flash"} 1.0' in text
    assert 'signal_gateway_rule_violations_total{rule="conflicting_greens"} 1.0' in text
    assert 'signal_gateway_ws_connections{endpoint="public"} 0.0' in text
    assert 'signal_gateway_messages_total{result="accepted"} 3.0' in text
    assert 'signal_gateway_messages_total{result="status"} 1.0' in text
    assert "signal_gateway_flush_duration_seconds_count" in text
    assert "signal_gateway_frames_sent_total" in text


async def test_two_apps_do_not_share_metrics(mosquitto: MosquittoProcess, tmp_path: Path) -> None:
    """Each app has its own registry: no 'Duplicated timeseries' error, separate numbers."""
    async with (
        serve(mosquitto, tmp_path / "a") as first,
        serve(mosquitto, tmp_path / "b") as second,
    ):
        first.feed()
        assert (
            'signal_gateway_controllers{status="flash"} 1.0'
            in (await first.http.get("/metrics")).text
        )
        assert (
            'signal_gateway_controllers{status="flash"} 0.0'
            in (await second.http.get("/metrics")).text
        )


async def test_ws_auth_first_message_then_rows_and_events(api: Api) -> None:
    """Auth as the first message: hello, the full table, then live events."""
    async with connect(api.ws_url) as ws:
        await ws.send(json.dumps({"op": "auth", "token": TOKEN}))
        assert json.loads(await ws.recv())["type"] == "hello"
        table = json.loads(await ws.recv())
        assert table["type"] == "controllers"
        assert table["full"] is True
        assert len(table["rows"]) == 2
        api.gateway.record(Event(1, "YT002", "offline", "critical", "controller offline"))
        while (frame := json.loads(await ws.recv()))["type"] != "events":
            pass
        assert frame["events"][0]["kind"] == "offline"


async def test_ws_bad_first_message_closes_1008(api: Api) -> None:
    """A wrong token, or anything but auth first: close 1008 with the reason."""
    cases: list[tuple[object, str]] = [
        ({"op": "auth", "token": "nope"}, "invalid token"),
        ({"op": "subscribe", "all": True}, 'the first message must be {"op":"auth"'),
        ({"token": TOKEN}, 'the first message must be {"op":"auth"'),
        ("not json", 'the first message must be {"op":"auth"'),
    ]
    for first, reason in cases:
        async with connect(api.ws_url) as ws:
            await ws.send(first if isinstance(first, str) else json.dumps(first))
            code, why = await closed_by(ws)
        assert code == 1008, first
        assert why.startswith(reason), (first, why)


async def test_ws_auth_timeout_closes_1008(mosquitto: MosquittoProcess, tmp_path: Path) -> None:
    """Saying nothing after connecting: closed with 1008 once the auth timeout passes."""
    async with (
        serve(mosquitto, tmp_path, engineer_auth_timeout_s=0.2) as api,
        connect(api.ws_url) as ws,
    ):
        code, why = await closed_by(ws)
    assert code == 1008
    assert "no auth message within 0.2 s" in why


async def test_ws_token_in_query_closes_1008(api: Api) -> None:
    """A token in the WebSocket URL is refused before any message."""
    async with connect(f"{api.ws_url}?token={TOKEN}") as ws:
        code, why = await closed_by(ws)
    assert code == 1008
    assert "query string" in why


async def test_ws_revoked_token_file_closes_1008(
    mosquitto: MosquittoProcess, tmp_path: Path
) -> None:
    """Removing a token from the token file closes its sockets with 1008 and refuses HTTP."""
    token_file = tmp_path / "tokens"
    token_file.write_text("# engineers\nalpha-token\nbeta-token\n")
    overrides = {"engineer_tokens": "", "engineer_token_file": str(token_file)}
    async with serve(mosquitto, tmp_path, **overrides) as api:
        header = {"Authorization": "Bearer beta-token"}
        ok = await api.http.get("/api/v1/engineer/controllers", headers=header)
        assert ok.status_code == 200
        async with connect(api.ws_url) as ws:
            await ws.send(json.dumps({"op": "auth", "token": "beta-token"}))
            assert json.loads(await ws.recv())["type"] == "hello"
            token_file.write_text("alpha-token\n")
            assert await closed_by(ws) == (1008, "token revoked")
        refused = await api.http.get("/api/v1/engineer/controllers", headers=header)
        assert refused.status_code == 401


def test_settings_reload_revokes() -> None:
    """TokenBook.reload with new settings: the old token stops working at once."""
    book = TokenBook(["old"])
    assert book.valid("old")
    book.reload(load_settings({"engineer_tokens": "new"}, environ={}))
    assert not book.valid("old")
    assert book.valid("new")
    assert not book.valid("")


def test_token_file_comments_and_missing_file(tmp_path: Path) -> None:
    """Comments and blank lines are ignored; a missing file accepts nothing."""
    path = tmp_path / "tokens"
    path.write_text("# team A\n\n  tok-1  # Li\ntok-2\n")
    book = TokenBook(file=path)
    assert book.valid("tok-1")
    assert book.valid("tok-2")
    assert not book.valid("# team A")
    path.unlink()
    assert not book.valid("tok-1")


async def test_without_configured_tokens_a_run_token_is_made(
    mosquitto: MosquittoProcess, tmp_path: Path
) -> None:
    """No tokens configured: one random token for this run works; nothing else does."""
    async with serve(mosquitto, tmp_path, engineer_tokens="") as api:
        token = api.runtime.tokens.generated
        assert token is not None
        assert len(token) >= 24
        ok = await api.http.get(
            "/api/v1/engineer/controllers", headers={"Authorization": f"Bearer {token}"}
        )
        assert ok.status_code == 200
        assert (await api.http.get("/api/v1/engineer/controllers", headers=AUTH)).status_code == 401


async def test_public_api_stays_anonymous(api: Api) -> None:
    """The public registry route needs no token."""
    assert (await api.http.get("/api/v1/intersections")).status_code == 200


async def test_memory_only_event_log(mosquitto: MosquittoProcess, tmp_path: Path) -> None:
    """event_db empty: no file is written and events are served from memory."""
    async with serve(mosquitto, tmp_path, event_db="") as api:
        api.feed()
        assert api.runtime.writer is None
        response = await api.http.get(
            "/api/v1/engineer/events", params={"kind": "rule:*"}, headers=AUTH
        )
        assert [e["kind"] for e in response.json()["events"]] == ["rule:conflicting_greens"]
    assert os.listdir(tmp_path) == []


async def test_openapi_declares_the_bearer_scheme(api: Api) -> None:
    """/docs offers an Authorize box: the engineer routes declare HTTP bearer security."""
    spec = (await api.http.get("/openapi.json")).json()
    assert spec["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    assert spec["paths"]["/api/v1/engineer/controllers"]["get"]["security"] == [{"HTTPBearer": []}]
