"""``/ws/v1``: the public WebSocket endpoint, as a raw ASGI handler.

Owns the per-connection protocol of docs/protocol.md: admission (Origin allowlist, global and
per-IP connection limits), the ``hello``, client ops with a token-bucket rate limit, error
replies, and closing abusive clients with 1008. Outgoing updates are not sent from here: the
hub's single flush loop writes them through the connection's ``Sink``. Raw ASGI (not a
Starlette route) so the fast sink can reach the server's transport.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from signal_gateway.fanout.hub import Client
from signal_gateway.fanout.ops import OpError, Subscribe, TimeRequest, parse_op
from signal_gateway.fanout.sinks import make_sink
from signal_gateway.gateway import Gateway

log = logging.getLogger("signal_gateway.ws")

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

CLOSE_POLICY = 1008
ERRORS_BEFORE_CLOSE = 10


class TokenBucket:
    """Allows ``rate`` ops per second with bursts of ``burst``; time is passed in."""

    __slots__ = ("_burst", "_last", "_rate", "_tokens")

    def __init__(self, rate: float, burst: int, now_ms: int) -> None:
        self._rate = rate
        self._burst = float(burst)
        self._tokens = float(burst)
        self._last = now_ms

    def take(self, now_ms: int) -> bool:
        """Spend one token if there is one."""
        elapsed = max(0, now_ms - self._last) / 1000
        self._last = now_ms
        self._tokens = min(self._burst, self._tokens + elapsed * self._rate)
        if self._tokens < 1:
            return False
        self._tokens -= 1
        return True


class PublicSocket:
    """Handles every ``/ws/v1`` connection of one gateway."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.per_ip: Counter[str] = Counter()
        self.refused: Counter[str] = Counter()
        self.origins = gateway.settings.origins()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one connection from handshake to close."""
        settings = self.gateway.settings
        connect = await receive()
        if connect["type"] != "websocket.connect":
            return
        ip = (scope.get("client") or ("?", 0))[0]
        why = self._refusal(scope, ip)
        if why is not None:
            self.refused[why] += 1
            log.info("refused WebSocket from %s: %s", ip, why)
            await send({"type": "websocket.close", "code": CLOSE_POLICY, "reason": why})
            return
        await send({"type": "websocket.accept"})
        self.per_ip[ip] += 1
        sink = make_sink(send)
        hub = self.gateway.hub
        client = hub.add(sink, peer=f"{ip}:{(scope.get('client') or ('?', 0))[1]}")
        clock = self.gateway.clock
        bucket = TokenBucket(settings.ws_ops_per_s, settings.ws_ops_burst, clock())
        errors = 0
        try:
            sink.send(_json({"type": "hello", "v": 1, "server_time_ms": clock()}))
            while True:
                message = await receive()
                if message["type"] == "websocket.disconnect":
                    break
                text = message.get("text")
                if text is None:
                    text = (message.get("bytes") or b"").decode("utf-8", "replace")
                now = clock()
                error = (
                    self._handle(client, text, now)
                    if bucket.take(now)
                    else OpError("rate_limited", f"more than {settings.ws_ops_per_s:g} ops/s")
                )
                if error is not None:
                    errors += 1
                    sink.send(error.frame())
                    if errors >= ERRORS_BEFORE_CLOSE:
                        sink.close(CLOSE_POLICY, "too many bad messages")
                        break
        finally:
            hub.remove(client)
            self.per_ip[ip] -= 1
            if self.per_ip[ip] <= 0:
                del self.per_ip[ip]

    def _refusal(self, scope: Scope, ip: str) -> str | None:
        settings = self.gateway.settings
        if self.origins:
            origin = dict(scope.get("headers") or []).get(b"origin", b"").decode("latin-1")
            if origin not in self.origins:
                return "origin not allowed"
        if len(self.gateway.hub) >= settings.ws_max_connections:
            return "server full"
        if self.per_ip[ip] >= settings.ws_max_connections_per_ip:
            return "too many connections from this address"
        return None

    def _handle(self, client: Client, text: str, now: int) -> OpError | None:
        op = parse_op(text, self.gateway.registry)
        if isinstance(op, OpError):
            return op
        if isinstance(op, Subscribe):
            self.gateway.hub.subscribe(client, op.subscription, now)
        elif isinstance(op, TimeRequest):
            t0: float | int = int(op.t0) if op.t0.is_integer() else op.t0
            client.sink.send(_json({"type": "time", "t0": t0, "server_time_ms": now}))
        return None


def _json(body: dict[str, object]) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode()
