"""The ASGI application: HTTP API, web page, WebSocket endpoints, the lifespan owning the tasks.

Owns routing only. ``create_app`` builds a FastAPI app whose lifespan creates the ``Gateway``
(city, hub, MQTT loop, flush loop) and stops it on shutdown, closing WebSocket clients with
1001. ``/ws/v1`` is dispatched before FastAPI as raw ASGI (see ``api.public_ws``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse, Response
from fastapi.staticfiles import StaticFiles

from signal_gateway import __version__
from signal_gateway.api.engineer import EngineerRuntime
from signal_gateway.api.engineer import install as install_engineer
from signal_gateway.api.public_ws import PublicSocket, Receive, Scope, Send
from signal_gateway.core.model import Intersection
from signal_gateway.core.registry import Registry, load_registry
from signal_gateway.gateway import Gateway
from signal_gateway.ingest import j2735
from signal_gateway.settings import Settings

log = logging.getLogger("signal_gateway")

WEB_ROOT = Path(__file__).resolve().parents[2] / "web"
CLOSE_GOING_AWAY = 1001


def intersection_json(intersection: Intersection) -> dict[str, Any]:
    """The registry entry as the HTTP API shows it."""
    return {
        "id": intersection.id,
        "name_zh": intersection.name_zh,
        "name_en": intersection.name_en,
        "district": intersection.district,
        "lat": intersection.lat,
        "lon": intersection.lon,
        "j2735_id": intersection.j2735_id,
        "main_sg": intersection.main_group().sg,
        "groups": [
            {"sg": g.sg, "approach": g.approach.value, "movement": g.movement.value}
            for g in intersection.groups
        ],
        "conflicts": sorted(sorted(pair) for pair in intersection.conflicts),
    }


def create_app(settings: Settings, registry: Registry | None = None) -> GatewayApp:
    """Build the application; the registry is loaded now so a bad file fails before serving."""
    registry = registry if registry is not None else load_registry(settings.registry_path)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        gateway = Gateway(settings, registry)
        app.state.gateway = gateway
        app.state.public_ws = PublicSocket(gateway)
        # -- engineers' view (issue 4): event log writer and the engineers' push feed --------
        engineer = EngineerRuntime(gateway, settings)
        await engineer.start()
        app.state.engineer = engineer
        # -- end engineers' view -------------------------------------------------------------
        task = asyncio.create_task(gateway.run(), name="gateway")
        log.info("serving %d intersections", len(registry))
        try:
            yield
        finally:
            for client in list(gateway.hub.clients.values()):
                client.sink.close(CLOSE_GOING_AWAY, "server shutting down")
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await engineer.stop()  # engineers' view: after the gateway, so its last events land

    api = FastAPI(
        title="signal_gateway",
        version=__version__,
        description="Live traffic-signal countdowns. WebSocket contract: docs/protocol.md.",
        lifespan=lifespan,
    )

    def gateway_of() -> Gateway:
        gateway: Gateway = api.state.gateway
        return gateway

    @api.get("/healthz", tags=["ops"])
    def healthz() -> dict[str, str]:
        """Alive: the process answers."""
        return {"status": "ok"}

    @api.get("/readyz", tags=["ops"])
    def readyz() -> Response:
        """200 only while connected to the broker with the registry loaded."""
        gateway = gateway_of()
        body = {
            "ready": gateway.ready,
            "broker_connected": gateway.ingest.stats.connected,
            "intersections": len(gateway.registry),
        }
        return JSONResponse(body, status_code=200 if gateway.ready else 503)

    @api.get("/api/v1/config", tags=["public"])
    def web_config() -> dict[str, str]:
        """What the web page needs to know: the map tile source and its attribution."""
        return {"tile_url": settings.tile_url, "tile_attribution": settings.tile_attribution}

    @api.get("/api/v1/intersections", tags=["public"])
    def intersections() -> dict[str, Any]:
        """The city registry."""
        return {
            "city": registry.city,
            "bbox": list(registry.city_bbox),
            "intersections": [intersection_json(i) for i in registry],
        }

    @api.get("/api/v1/intersections/{intersection_id}", tags=["public"], response_model=None)
    def intersection(intersection_id: str) -> dict[str, Any] | JSONResponse:
        """One registry entry with its current view."""
        entry = registry.get(intersection_id)
        if entry is None:
            return _not_found(intersection_id)
        body = intersection_json(entry)
        body["view"] = gateway_of().city.view(intersection_id).as_dict()
        return body

    @api.get("/api/v1/intersections/{intersection_id}/spat", tags=["public"], response_model=None)
    def intersection_spat(intersection_id: str) -> dict[str, Any] | JSONResponse:
        """The current state in a J2735-like form for V2X consumers (docs/j2735.md)."""
        entry = registry.get(intersection_id)
        if entry is None:
            return _not_found(intersection_id)
        gateway = gateway_of()
        return j2735.spat_for_view(gateway.city.view(intersection_id), entry, gateway.clock())

    # engineers' view (issue 4): /api/v1/engineer/*, /api/v1/alerts, /metrics
    install_engineer(api, lambda: api.state.engineer)

    if WEB_ROOT.is_dir():
        api.mount("/", StaticFiles(directory=WEB_ROOT, html=True), name="web")
    return GatewayApp(api)


def _not_found(intersection_id: str) -> JSONResponse:
    return JSONResponse(
        {"error": "not_found", "message": f"no intersection with id {intersection_id!r}"},
        status_code=404,
    )


class GatewayApp:
    """ASGI entry: ``/ws/v1`` to the raw WebSocket handler, everything else to FastAPI."""

    def __init__(self, api: FastAPI) -> None:
        self.api = api

    async def close_clients(self, code: int, reason: str) -> None:
        """Close every public WebSocket client (1001 on shutdown) and wait briefly for it."""
        gateway: Gateway | None = getattr(self.api.state, "gateway", None)
        if gateway is None:
            return
        for client in list(gateway.hub.clients.values()):
            client.sink.close(code, reason)
        engineer: EngineerRuntime | None = getattr(self.api.state, "engineer", None)
        if engineer is not None:  # engineers' view
            engineer.feed.close_all(code, reason)
        await asyncio.sleep(0)  # let the close tasks write their frames

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Dispatch one ASGI connection."""
        if scope["type"] == "websocket" and scope["path"] == "/ws/v1":
            handler: PublicSocket = self.api.state.public_ws
            await handler(scope, receive, send)
            return
        if scope["type"] == "websocket" and scope["path"] == "/ws/v1/engineer":  # engineers' view
            runtime: EngineerRuntime = self.api.state.engineer
            await runtime.socket(scope, receive, send)
            return
        await self.api(scope, receive, send)
