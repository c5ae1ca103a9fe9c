"""The public HTTP API: registry, one intersection, config, health and readiness, OpenAPI."""

from __future__ import annotations

import httpx
import pytest

from signal_gateway.core.registry import Registry
from tests.support.gateway import running_gateway
from tests.support.mosquitto import MosquittoProcess, free_port

pytestmark = pytest.mark.broker


async def test_registry_intersection_and_404(
    mosquitto: MosquittoProcess, registry: Registry
) -> None:
    """The registry lists 235 intersections; one id gives entry and view; unknown ids get 404."""
    async with running_gateway(mosquitto.url, registry) as gw, httpx.AsyncClient() as http:
        listing = (await http.get(f"{gw.http}/api/v1/intersections")).json()
        one = (await http.get(f"{gw.http}/api/v1/intersections/YT002")).json()
        missing = await http.get(f"{gw.http}/api/v1/intersections/XX999")
    assert listing["city"] == "Yantai"
    assert len(listing["intersections"]) == 235
    assert one["id"] == "YT002"
    assert one["view"]["mode"] == "unknown"
    assert all(g["end_ms"] is None for g in one["view"]["groups"])
    assert missing.status_code == 404
    assert missing.json() == {"error": "not_found", "message": "no intersection with id 'XX999'"}


async def test_config_carries_the_tile_settings(
    mosquitto: MosquittoProcess, registry: Registry
) -> None:
    """/api/v1/config gives the web page the configured tile URL and attribution."""
    url = "https://tiles.example/{z}/{x}/{y}.png"
    async with (
        running_gateway(mosquitto.url, registry, tile_url=url, tile_attribution="© ex") as gw,
        httpx.AsyncClient() as http,
    ):
        config = (await http.get(f"{gw.http}/api/v1/config")).json()
    assert config == {"tile_url": url, "tile_attribution": "© ex"}


async def test_not_ready_without_a_broker(registry: Registry) -> None:
    """/healthz is 200 but /readyz is 503 while the broker cannot be reached."""
    nowhere = f"mqtt://127.0.0.1:{free_port()}"
    async with running_gateway(nowhere, registry, ready=False) as gw, httpx.AsyncClient() as http:
        health = await http.get(f"{gw.http}/healthz")
        ready = await http.get(f"{gw.http}/readyz")
    assert health.status_code == 200
    assert ready.status_code == 503
    assert ready.json()["broker_connected"] is False


async def test_openapi_documents_the_public_routes(
    mosquitto: MosquittoProcess, registry: Registry
) -> None:
    """OpenAPI at /openapi.json lists the public routes; /docs serves its UI."""
    async with running_gateway(mosquitto.url, registry) as gw, httpx.AsyncClient() as http:
        spec = (await http.get(f"{gw.http}/openapi.json")).json()
        docs = await http.get(f"{gw.http}/docs")
    for path in ("/api/v1/intersections", "/api/v1/intersections/{intersection_id}", "/readyz"):
        assert path in spec["paths"]
    assert docs.status_code == 200


async def test_web_page_is_served_at_root(mosquitto: MosquittoProcess, registry: Registry) -> None:
    """GET / serves the live page."""
    async with running_gateway(mosquitto.url, registry) as gw, httpx.AsyncClient() as http:
        page = await http.get(f"{gw.http}/")
    assert page.status_code == 200
    assert "<html" in page.text.lower()
