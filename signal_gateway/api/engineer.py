"""The engineers' view: bearer-token access, their HTTP routes, their WebSocket, the open alerts.

Owns, for issue 4: the token book (``SIGNAL_GATEWAY_ENGINEER_TOKENS`` and the token file,
compared in constant time, never taken from a query string), the routes under
``/api/v1/engineer/`` (controller rows, events, timing diagrams, rule catalogue), the anonymous
``/api/v1/alerts`` feed for navigation apps, the ``/ws/v1/engineer`` handler (raw ASGI: the
token is the first message), the feed that pushes controller rows and live events to it, and
:class:`EngineerRuntime`, which the app's lifespan starts and stops (event writer, push task).
It reads the gateway's city, monitor and events; it must not change what the city decides or
touch the public WebSocket's clients.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import re
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Request, Security
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPBearer

from signal_gateway.api.metrics import metrics_registry, render_metrics
from signal_gateway.api.public_ws import Receive, Scope, Send
from signal_gateway.core.city import Event
from signal_gateway.core.health import STATUS_ORDER, ControllerHealth, Status, count_statuses
from signal_gateway.core.model import Intersection
from signal_gateway.core.rules import RULES
from signal_gateway.events import EventQuery, EventStore, EventWriter, StoredEvent, query_events
from signal_gateway.events.store import MAX_LIMIT
from signal_gateway.fanout.hub import Sink
from signal_gateway.fanout.sinks import make_sink
from signal_gateway.gateway import Gateway
from signal_gateway.settings import Settings

log = logging.getLogger("signal_gateway.engineer")

CLOSE_POLICY = 1008
CLOSE_GOING_AWAY = 1001
CLOSE_TOO_SLOW = 1013
ERRORS_BEFORE_CLOSE = 10
MAX_BUFFERED_BYTES = 4 * 1024 * 1024
COALESCE_S = 0.05  # after a push, wait this long so a burst of events goes out as one frame

TOKEN_QUERY_NAMES = frozenset(
    {
        "token",
        "access_token",
        "bearer",
        "bearer_token",
        "auth",
        "authorization",
        "api_key",
        "apikey",
    }
)
"""Query parameters that look like a credential: refused with 400, never looked at."""

ALERT_CONDITIONS = {
    Status.OFFLINE: "offline",
    Status.STALE: "offline",
    Status.FLASH: "flash",
    Status.FAULT: "flash",  # failure flash (J2735 failureFlash): the lamps flash
    Status.DARK: "dark",
}
"""Statuses the open alert feed reports, and the condition it reports them as."""


# -- tokens ------------------------------------------------------------------------------------


def _split_tokens(text: str) -> list[str]:
    return [token.strip() for token in text.split(",") if token.strip()]


def read_token_file(path: Path) -> list[str]:
    """One token per line; blank lines and ``#`` comments ignored."""
    tokens: list[str] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            tokens.append(line)
    return tokens


class TokenBook:
    """The engineer tokens in force; the token file is re-read whenever it changes."""

    def __init__(self, tokens: Iterable[str] = (), file: str | Path | None = None) -> None:
        self._static = [t.encode() for t in tokens if t]
        self._file = Path(file) if file else None
        self._file_tokens: list[bytes] = []
        self._file_stamp: tuple[int, int] | None = None
        self.generated: str | None = None
        self.refresh()

    @classmethod
    def from_settings(cls, settings: Settings) -> TokenBook:
        """The tokens of ``SIGNAL_GATEWAY_ENGINEER_TOKENS`` and ``..._TOKEN_FILE``."""
        return cls(_split_tokens(settings.engineer_tokens), settings.engineer_token_file or None)

    @property
    def configured(self) -> bool:
        """Whether any token source is set."""
        return bool(self._static) or self._file is not None

    def generate(self) -> str:
        """Make one random token for this run (used when nothing is configured)."""
        self.generated = secrets.token_urlsafe(24)
        self._static = [self.generated.encode()]
        return self.generated

    def reload(self, settings: Settings) -> None:
        """Take new settings (a settings reload): tokens no longer listed stop working at once."""
        self._static = [t.encode() for t in _split_tokens(settings.engineer_tokens)]
        self._file = Path(settings.engineer_token_file) if settings.engineer_token_file else None
        self._file_stamp = None
        self._file_tokens = []
        self.refresh()

    def refresh(self) -> None:
        """Re-read the token file if its size or modification time changed."""
        if self._file is None:
            return
        try:
            stat = self._file.stat()
        except OSError as exc:
            if self._file_stamp != (-1, -1):
                log.warning("engineer token file %s: %s; its tokens are refused", self._file, exc)
            self._file_stamp = (-1, -1)
            self._file_tokens = []
            return
        stamp = (stat.st_mtime_ns, stat.st_size)
        if stamp == self._file_stamp:
            return
        try:
            self._file_tokens = [t.encode() for t in read_token_file(self._file)]
        except (OSError, UnicodeDecodeError) as exc:
            log.warning("engineer token file %s: %s; its tokens are refused", self._file, exc)
            self._file_tokens = []
        self._file_stamp = stamp

    def valid(self, token: str) -> bool:
        """Whether ``token`` is in force; every token is compared, in constant time."""
        self.refresh()
        given = token.encode()
        ok = False
        for known in (*self._static, *self._file_tokens):
            ok |= hmac.compare_digest(given, known)
        return ok and bool(token)


# -- errors and parsing ------------------------------------------------------------------------


class EngineerError(Exception):
    """A refused engineer request: HTTP status, a stable code and a clear message."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message

    def response(self) -> JSONResponse:
        """The JSON error body ``{"error", "message"}`` (with WWW-Authenticate on 401)."""
        headers = {"WWW-Authenticate": 'Bearer realm="engineer"'} if self.status == 401 else None
        return JSONResponse(
            {"error": self.code, "message": self.message}, status_code=self.status, headers=headers
        )


def token_in_query(query_keys: Iterable[str]) -> str | None:
    """The first query parameter that looks like a credential, or None."""
    for key in query_keys:
        if key.lower() in TOKEN_QUERY_NAMES:
            return key
    return None


_INT = re.compile(r"-?\d+")
_MIN_PLAUSIBLE_MS = 100_000_000_000  # 1973-03-03: smaller integers are Unix seconds by mistake


def parse_time(name: str, text: str) -> int:
    """ISO-8601 with an offset, or Unix ms, to Unix ms; EngineerError 422 names the problem."""
    text = text.strip()
    if _INT.fullmatch(text):
        value = int(text)
        if 0 <= value < _MIN_PLAUSIBLE_MS:
            raise EngineerError(
                422,
                "bad_query",
                f"{name}: {text} looks like Unix seconds; give Unix milliseconds "
                f"({value * 1000}) or ISO-8601",
            )
        return value
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise EngineerError(
            422,
            "bad_query",
            f"{name}: {text!r} is neither ISO-8601 (2025-11-26T08:00:00+08:00) nor Unix ms",
        ) from None
    if moment.tzinfo is None:
        raise EngineerError(
            422,
            "bad_query",
            f"{name}: {text!r} has no UTC offset; add one, e.g. {text}+08:00 or {text}Z",
        )
    return int(moment.timestamp() * 1000)


_KIND = re.compile(r"[A-Za-z0-9_:.\-]+\*?")


def build_query(
    registry_ids: Iterable[str],
    intersection: str | None,
    kind: str | None,
    since: str | None,
    until: str | None,
    limit: str | None,
) -> EventQuery:
    """Validate the events endpoint's parameters into an EventQuery (EngineerError 422)."""
    ids = set(registry_ids)
    if intersection is not None and intersection not in ids:
        raise EngineerError(
            422, "bad_query", f"intersection: {intersection!r} is not in the registry"
        )
    kinds: list[str] = []
    for item in (kind or "").split(","):
        item = item.strip()
        if not item:
            continue
        if not _KIND.fullmatch(item):
            raise EngineerError(
                422,
                "bad_query",
                f"kind: {item!r} is not an event kind (letters, digits, _ : . -; "
                "a trailing * matches a prefix, e.g. rule:*)",
            )
        kinds.append(item)
    since_ms = None if since is None else parse_time("since", since)
    until_ms = None if until is None else parse_time("until", until)
    if since_ms is not None and until_ms is not None and since_ms > until_ms:
        raise EngineerError(422, "bad_query", f"since ({since}) is after until ({until})")
    count = 100
    if limit is not None:
        if not _INT.fullmatch(limit.strip()) or not 1 <= int(limit) <= MAX_LIMIT:
            raise EngineerError(
                422, "bad_query", f"limit: {limit!r} is not a whole number from 1 to {MAX_LIMIT}"
            )
        count = int(limit)
    return EventQuery(intersection, tuple(kinds), since_ms, until_ms, count)


def event_json(event: Event) -> dict[str, object]:
    """A live event as engineers' clients see it (the same keys as a stored one, no id)."""
    return {
        "at_ms": event.at_ms,
        "intersection": event.intersection_id,
        "kind": event.kind,
        "severity": event.severity,
        "message": event.message,
    }


def matches(event: Event, query: EventQuery) -> bool:
    """Whether an in-memory event matches a query (used when persistence is off)."""
    if query.intersection_id is not None and event.intersection_id != query.intersection_id:
        return False
    if query.kinds and not any(
        event.kind.startswith(k[:-1]) if k.endswith("*") else event.kind == k for k in query.kinds
    ):
        return False
    if query.since_ms is not None and event.at_ms < query.since_ms:
        return False
    return query.until_ms is None or event.at_ms < query.until_ms


def _dumps(body: dict[str, object]) -> bytes:
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


# -- controller rows ---------------------------------------------------------------------------


def controller_row(intersection: Intersection, health: ControllerHealth) -> dict[str, object]:
    """A health row with the names engineers search by."""
    row = health.as_dict()
    row["name_zh"] = intersection.name_zh
    row["name_en"] = intersection.name_en
    row["district"] = intersection.district
    return row


def rows_and_counts(
    gateway: Gateway, now_ms: int, ids: Iterable[str] | None = None
) -> tuple[list[dict[str, object]], dict[str, int]]:
    """Rows (all, or those of ``ids``) and the counts over every controller."""
    wanted = None if ids is None else set(ids)
    monitor = gateway.monitor
    healths = monitor.rows(gateway.city, now_ms)
    rows = [
        controller_row(gateway.registry[h.id], h)
        for h in healths
        if wanted is None or h.id in wanted
    ]
    return rows, count_statuses(healths)


# -- the engineers' WebSocket feed ---------------------------------------------------------------


@dataclass(eq=False)
class EngineerClient:
    """One authenticated engineers' WebSocket."""

    sink: Sink
    token: str
    peer: str
    frames_sent: int = 0


@dataclass
class EngineerFeed:
    """Pushes controller rows (periodically, and at once on a status change) and live events."""

    gateway: Gateway
    tokens: TokenBook
    push_ms: int = 1000
    clients: list[EngineerClient] = field(default_factory=list)
    pending: list[Event] = field(default_factory=list)
    frames_sent: int = 0
    wake: Callable[[], None] | None = None  # set by the runtime: run the next tick at once
    _next_push_ms: int = 0

    def __len__(self) -> int:
        return len(self.clients)

    def add(self, client: EngineerClient) -> None:
        """Register an authenticated client and send it the full table."""
        self.clients.append(client)
        now = self.gateway.clock()
        rows, counts = rows_and_counts(self.gateway, now)
        self._send(client, self._controllers_frame(now, rows, counts, full=True))

    def remove(self, client: EngineerClient) -> None:
        """Forget a client (idempotent)."""
        with contextlib.suppress(ValueError):
            self.clients.remove(client)

    def on_event(self, event: Event) -> None:
        """A gateway event listener: keep it for the next tick, and ask for that tick now."""
        if self.clients:
            self.pending.append(event)
            if len(self.pending) > 10_000:
                del self.pending[:-10_000]
            if self.wake is not None:
                self.wake()

    def tick(self, now_ms: int) -> None:
        """Revoke, then push events, then rows (all every ``push_ms``, changed ones at once)."""
        self.tokens.refresh()
        for client in list(self.clients):
            if not self.tokens.valid(client.token):
                log.info("engineer token of %s revoked: closing", client.peer)
                client.sink.close(CLOSE_POLICY, "token revoked")
                self.remove(client)
        dirty = self.gateway.monitor.health_book.take_dirty()
        if not self.clients:
            self.pending.clear()
            return
        if self.pending:
            frame = _dumps({"type": "events", "events": [event_json(e) for e in self.pending]})
            self.pending.clear()
            for client in list(self.clients):
                self._send(client, frame)
        periodic = now_ms >= self._next_push_ms
        if not periodic and not dirty:
            return
        if periodic:
            self._next_push_ms = now_ms + self.push_ms
        rows, counts = rows_and_counts(self.gateway, now_ms, None if periodic else dirty)
        frame = self._controllers_frame(now_ms, rows, counts, full=periodic)
        for client in list(self.clients):
            if client.sink.ready() or not periodic:
                self._send(client, frame)

    def close_all(self, code: int, reason: str) -> None:
        """Close every engineers' WebSocket (1001 on shutdown)."""
        for client in list(self.clients):
            client.sink.close(code, reason)
        self.clients.clear()

    def _controllers_frame(
        self, now_ms: int, rows: list[dict[str, object]], counts: dict[str, int], *, full: bool
    ) -> bytes:
        return _dumps(
            {
                "type": "controllers",
                "server_time_ms": now_ms,
                "full": full,
                "counts": counts,
                "rows": rows,
            }
        )

    def _send(self, client: EngineerClient, frame: bytes) -> None:
        if client.sink.buffered_bytes() > MAX_BUFFERED_BYTES:
            client.sink.close(CLOSE_TOO_SLOW, "not reading")
            self.remove(client)
            return
        client.sink.send(frame)
        client.frames_sent += 1
        self.frames_sent += 1


class EngineerSocket:
    """``/ws/v1/engineer``: the first message must be ``{"op":"auth","token":"..."}``."""

    def __init__(self, feed: EngineerFeed, settings: Settings) -> None:
        self.feed = feed
        self.timeout_s = settings.engineer_auth_timeout_s
        self.origins = settings.origins()
        self.refused: dict[str, int] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one connection from handshake to close."""
        connect = await receive()
        if connect["type"] != "websocket.connect":
            return
        client_addr = scope.get("client") or ("?", 0)
        peer = f"{client_addr[0]}:{client_addr[1]}"
        if self.origins:
            origin = dict(scope.get("headers") or []).get(b"origin", b"").decode("latin-1")
            if origin not in self.origins:
                await self._refuse(send, "origin not allowed", accepted=False)
                return
        await send({"type": "websocket.accept"})
        query = scope.get("query_string", b"").decode("latin-1")
        keys = [part.split("=", 1)[0] for part in query.split("&") if part]
        if token_in_query(keys) is not None:
            await self._refuse(
                send,
                'token in the query string refused: send {"op":"auth","token":...} first',
            )
            return
        token = await self._authenticate(receive, send)
        if token is None:
            return
        sink = make_sink(send)
        client = EngineerClient(sink, token, peer)
        clock = self.feed.gateway.clock
        sink.send(
            _dumps(
                {
                    "type": "hello",
                    "v": 1,
                    "role": "engineer",
                    "server_time_ms": clock(),
                    "push_ms": self.feed.push_ms,
                }
            )
        )
        self.feed.add(client)
        errors = 0
        try:
            while True:
                message = await receive()
                if message["type"] == "websocket.disconnect":
                    break
                errors += 1
                sink.send(
                    _dumps(
                        {
                            "type": "error",
                            "code": "unknown_op",
                            "message": "this feed takes no ops after auth; it only pushes",
                        }
                    )
                )
                if errors >= ERRORS_BEFORE_CLOSE:
                    sink.close(CLOSE_POLICY, "too many bad messages")
                    break
        finally:
            self.feed.remove(client)

    async def _authenticate(self, receive: Receive, send: Send) -> str | None:
        try:
            message = await asyncio.wait_for(receive(), self.timeout_s)
        except TimeoutError:
            await self._refuse(send, f"no auth message within {self.timeout_s:g} s")
            return None
        if message["type"] == "websocket.disconnect":
            return None
        text = message.get("text")
        if text is None:
            text = (message.get("bytes") or b"").decode("utf-8", "replace")
        try:
            body = json.loads(text)
        except ValueError:
            body = None
        token = body.get("token") if isinstance(body, dict) else None
        if not isinstance(body, dict) or body.get("op") != "auth" or not isinstance(token, str):
            await self._refuse(send, 'the first message must be {"op":"auth","token":"..."}')
            return None
        if not self.feed.tokens.valid(token):
            await self._refuse(send, "invalid token")
            return None
        return token

    async def _refuse(self, send: Send, reason: str, *, accepted: bool = True) -> None:
        self.refused[reason] = self.refused.get(reason, 0) + 1
        log.info("engineer WebSocket refused: %s", reason)
        if accepted:
            await send({"type": "websocket.close", "code": CLOSE_POLICY, "reason": reason})
        else:
            await send({"type": "websocket.close", "code": CLOSE_POLICY})


# -- runtime -----------------------------------------------------------------------------------


class EngineerRuntime:
    """Everything of the engineers' view that lives as long as the gateway: started by lifespan."""

    def __init__(self, gateway: Gateway, settings: Settings) -> None:
        self.gateway = gateway
        self.settings = settings
        self.tokens = TokenBook.from_settings(settings)
        self.feed = EngineerFeed(gateway, self.tokens, settings.engineer_push_ms)
        self.socket = EngineerSocket(self.feed, settings)
        # Only the replica with the writer role keeps the event log; others keep events in
        # memory (the balancer pins the engineers' routes to the writer, docs/deploy.md).
        writes = settings.event_log_writer and bool(settings.event_db)
        self.event_db: Path | None = Path(settings.event_db) if writes else None
        self.writer: EventWriter | None = None
        self.metrics = metrics_registry(self)
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self.feed.wake = self._wake.set

    async def start(self) -> None:
        """Open the event log, start its writer and the push task, listen to gateway events."""
        if not self.tokens.configured:
            token = self.tokens.generate()
            log.warning(
                "no engineer tokens configured (SIGNAL_GATEWAY_ENGINEER_TOKENS or "
                "SIGNAL_GATEWAY_ENGINEER_TOKEN_FILE); token for this run only: %s",
                token,
            )
        if self.event_db is not None:
            store = await asyncio.to_thread(EventStore.open, self.event_db)
            settings = self.settings
            self.writer = EventWriter(
                store,
                queue_size=settings.event_queue_size,
                max_days=settings.event_retention_days or None,
                max_rows=settings.event_retention_rows or None,
                clock=self.gateway.clock,
            )
            self.writer.start()
            self.gateway.event_listeners.append(self._persist)
            log.info("event log %s", self.event_db)
        self.gateway.event_listeners.append(self.feed.on_event)
        self._task = asyncio.create_task(self._push_loop(), name="engineer-feed")

    def _persist(self, event: Event) -> None:
        if self.writer is not None:
            self.writer.submit(event)

    async def stop(self) -> None:
        """Close engineers' sockets, stop pushing, write what is queued and close the log."""
        self.feed.close_all(CLOSE_GOING_AWAY, "server shutting down")
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        with contextlib.suppress(ValueError):
            self.gateway.event_listeners.remove(self.feed.on_event)
        with contextlib.suppress(ValueError):
            self.gateway.event_listeners.remove(self._persist)
        if self.writer is not None:
            await asyncio.to_thread(self.writer.stop)

    async def _push_loop(self) -> None:
        """Tick every 200 ms, or at once when an event arrives (then 50 ms to coalesce a burst)."""
        period = min(self.settings.engineer_push_ms, 200) / 1000
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=period)
            self._wake.clear()
            try:
                self.feed.tick(self.gateway.clock())
            except Exception:  # a bug in one push must not end the feed
                log.exception("engineer feed tick failed")
            await asyncio.sleep(COALESCE_S)

    async def events(self, query: EventQuery) -> list[dict[str, object]]:
        """Events matching ``query``, newest first, from the log (or memory without one)."""
        if self.event_db is None:
            found = [e for e in reversed(self.gateway.events) if matches(e, query)]
            return [event_json(e) for e in found[: query.limit]]
        stored: list[StoredEvent] = await asyncio.to_thread(query_events, self.event_db, query)
        return [event.as_dict() for event in stored]


# -- HTTP --------------------------------------------------------------------------------------


def install(api: FastAPI, runtime_of: Callable[[], EngineerRuntime]) -> None:
    """Add the engineers' routes, the open alerts, ``/metrics`` and the error handler to ``api``."""

    async def on_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, EngineerError)
        return exc.response()

    api.add_exception_handler(EngineerError, on_error)

    # Declares the scheme in OpenAPI (/docs gets an "Authorize" box); the checks are ours.
    bearer = HTTPBearer(auto_error=False, description="an engineer token")

    def authorize(request: Request) -> None:
        key = token_in_query(request.query_params.keys())
        if key is not None:
            raise EngineerError(
                400,
                "token_in_query",
                f"query parameter {key!r}: tokens are never accepted in a query string "
                "(URLs end up in logs and histories); send the header "
                "'Authorization: Bearer <token>', and revoke this token if the URL was shared",
            )
        header = request.headers.get("authorization")
        if header is None:
            raise EngineerError(
                401,
                "unauthorized",
                "engineer routes need the header 'Authorization: Bearer <token>'",
            )
        scheme, _, token = header.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise EngineerError(
                401, "unauthorized", "the Authorization header must be 'Bearer <token>'"
            )
        if not runtime_of().tokens.valid(token.strip()):
            raise EngineerError(401, "unauthorized", "invalid or revoked token")

    router = APIRouter(
        prefix="/api/v1/engineer",
        tags=["engineer"],
        dependencies=[Security(bearer), Depends(authorize)],
    )

    @router.get("/controllers")
    def controllers() -> dict[str, Any]:
        """One health row per controller, with the counts the dashboard shows at the top."""
        gateway = runtime_of().gateway
        now = gateway.clock()
        rows, counts = rows_and_counts(gateway, now)
        return {"server_time_ms": now, "counts": counts, "controllers": rows}

    @router.get("/controllers/{intersection_id}")
    def controller(intersection_id: str) -> dict[str, Any]:
        """One controller's health row and its current public view."""
        gateway = runtime_of().gateway
        intersection = _known(gateway, intersection_id)
        now = gateway.clock()
        row = controller_row(
            intersection, gateway.monitor.row(gateway.city.state(intersection.id), now)
        )
        return {
            "server_time_ms": now,
            "controller": row,
            "view": gateway.city.view(intersection.id).as_dict(),
        }

    @router.get("/controllers/{intersection_id}/timing")
    def timing(intersection_id: str, minutes: str | None = None) -> dict[str, Any]:
        """The timing diagram: each group's states over the last minutes (15 at most)."""
        gateway = runtime_of().gateway
        intersection = _known(gateway, intersection_id)
        span_ms: int | None = None
        if minutes is not None:
            try:
                span_ms = round(float(minutes) * 60_000)
            except ValueError:
                span_ms = -1
            if not 0 < span_ms <= gateway.monitor.history.window_ms:
                limit = gateway.monitor.history.window_ms / 60_000
                raise EngineerError(
                    422, "bad_query", f"minutes: {minutes!r} is not a number in (0, {limit:g}]"
                )
        now = gateway.clock()
        body = gateway.monitor.diagram(intersection.id, now, span_ms).as_dict(intersection)
        body["server_time_ms"] = now
        body["view"] = gateway.city.view(intersection.id).as_dict()
        return body

    @router.get("/events")
    async def events(
        intersection: str | None = None,
        kind: str | None = None,
        since: str | None = None,
        until: str | None = None,
        limit: str | None = None,
    ) -> dict[str, Any]:
        """Logged events, newest first: by intersection, kind (``rule:*``), time range, limit."""
        runtime = runtime_of()
        query = build_query(runtime.gateway.registry.ids, intersection, kind, since, until, limit)
        found = await runtime.events(query)
        return {"count": len(found), "events": found}

    @router.get("/rules")
    def rules() -> dict[str, Any]:
        """The consistency rules: name, event kind, severity, what each checks."""
        return {
            "rules": [
                {
                    "name": r.name,
                    "kind": r.kind,
                    "severity": r.severity,
                    "description": r.description,
                }
                for r in RULES
            ]
        }

    api.include_router(router)

    @api.get("/api/v1/alerts", tags=["public"])
    def alerts() -> JSONResponse:
        """Intersections now offline, flashing or dark: an open feed for navigation apps."""
        gateway = runtime_of().gateway
        now = gateway.clock()
        healths = gateway.monitor.rows(gateway.city, now)
        order = {status: index for index, status in enumerate(STATUS_ORDER)}
        found = sorted(
            (h for h in healths if h.status in ALERT_CONDITIONS),
            key=lambda h: (order[h.status], h.id),
        )
        items = []
        for health in found:
            entry = gateway.registry[health.id]
            items.append(
                {
                    "id": entry.id,
                    "name_zh": entry.name_zh,
                    "name_en": entry.name_en,
                    "district": entry.district,
                    "lat": entry.lat,
                    "lon": entry.lon,
                    "condition": ALERT_CONDITIONS[health.status],
                    "status": health.status.value,
                    "since_ms": health.status_since_ms,
                    "last_report_ms": health.last_rx_ms,
                }
            )
        return JSONResponse(
            {"generated_ms": now, "count": len(items), "alerts": items},
            headers={"Cache-Control": "max-age=1", "Access-Control-Allow-Origin": "*"},
        )

    @api.get("/metrics", tags=["ops"])
    def metrics() -> Response:
        """Prometheus text format (this app's own registry)."""
        body, content_type = render_metrics(runtime_of().metrics)
        return Response(body, media_type=content_type)


def _known(gateway: Gateway, intersection_id: str) -> Intersection:
    intersection = gateway.registry.get(intersection_id)
    if intersection is None:
        raise EngineerError(404, "not_found", f"no intersection with id {intersection_id!r}")
    return intersection
