"""permessage-deflate: off by default, on by setting, and frames still decode when on."""

from __future__ import annotations

import json

import pytest
from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory

from signal_gateway.core.registry import Registry
from tests.support.gateway import next_frame, running_gateway, ws_client
from tests.support.mosquitto import MosquittoProcess

pytestmark = pytest.mark.broker


@pytest.mark.parametrize("enabled", [False, True])
async def test_compression_follows_the_setting(
    mosquitto: MosquittoProcess, registry: Registry, enabled: bool
) -> None:
    """A client offering deflate gets it only when ws_compression is on; snapshots decode."""
    offer = [ClientPerMessageDeflateFactory()]
    async with (
        running_gateway(mosquitto.url, registry, ws_compression=enabled) as gw,
        ws_client(gw.ws, extensions=offer) as ws,
    ):
        negotiated = [type(e).__name__ for e in ws.protocol.extensions]
        await ws.send(json.dumps({"op": "subscribe", "all": True}))
        snapshot = await next_frame(ws, "snapshot")
    assert ("PerMessageDeflate" in negotiated) is enabled
    assert len(snapshot["intersections"]) == 235
