"""Scenarios 13, 14 and 15: connection floods, bad frames and bad handshakes.

Bounds (docs/reliability.md): connections beyond ``ws_max_connections`` or
``ws_max_connections_per_ip`` are refused before the handshake completes (HTTP 403) while the
admitted clients keep their numbers; an oversize frame closes with 1009, invalid UTF-8 with 1007,
a compressed frame (compression is off) with 1002, ten bad messages with 1008; a ping flood
from a client that does not read costs bounded memory; with ``ws_compression`` on, a
compression bomb closes with 1009 without being inflated; a handshake that never completes is
closed after ``ws_handshake_timeout_s``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from signal_gateway.core.registry import Registry
from tests.faults.conftest import Figures
from tests.faults.rawws import RawWebSocket, masked_frame
from tests.faults.support import Memory, gateway, judged_client, simulator, wall_ms
from tests.support.gateway import until, ws_client
from tests.support.mosquitto import MosquittoProcess

pytestmark = pytest.mark.broker

IDS = ["YT001", "YT002", "YT003"]


async def refused(url: str, **kwargs: object) -> int:
    """The HTTP status a refused WebSocket handshake got (0 if it was accepted)."""
    try:
        async with connect(url, **kwargs):  # type: ignore[arg-type]
            return 0
    except InvalidStatus as exc:
        return exc.response.status_code


async def test_connection_flood_is_refused_cleanly(
    mosquitto: MosquittoProcess, registry: Registry, figures: Figures
) -> None:
    """Beyond per-IP and global limits handshakes get 403; admitted clients keep right numbers."""
    per_ip, total = 20, 50
    async with (
        simulator(registry, mosquitto.port, IDS, speed=4) as sim,
        gateway(
            mosquitto.url, registry, ws_max_connections=total, ws_max_connections_per_ip=per_ip
        ) as gw,
        judged_client(gw, sim.truth, local_addr=("127.0.0.9", 0)) as judge,
        contextlib.AsyncExitStack() as stack,
        Memory() as memory,
    ):
        await judge.wait_timed(IDS)
        started = wall_ms()
        admitted = 0
        for host in ("127.0.0.2", "127.0.0.3", "127.0.0.4"):
            for _ in range(per_ip):
                await stack.enter_async_context(ws_client(gw.ws, local_addr=(host, 0)))
                admitted += 1
                if admitted == total - 1:  # the judge is the 50th
                    break
            else:
                assert await refused(gw.ws, local_addr=(host, 0)) == 403  # per-IP limit
                continue
            break
        assert len(gw.gateway.hub) == total
        # a flood from fresh addresses: every one refused by the global limit, quickly
        flood = [refused(gw.ws, local_addr=(f"127.0.1.{n}", 0)) for n in range(1, 201)]
        statuses = await asyncio.gather(*flood)
        took = wall_ms() - started
        assert set(statuses) == {403}
        assert len(gw.gateway.hub) == total
        refusals = dict(gw.app.api.state.public_ws.refused)
        await until(lambda: judge.checked >= 20, 10)
    judge.assert_clean(min_checked=20)
    assert refusals.get("server full", 0) >= 200
    assert refusals.get("too many connections from this address", 0) >= 2
    figures.record(
        "13 connection flood (per-IP 20, global 50)",
        detection_ms=0,
        recovery_ms=0,
        peak_rss_mb=memory.peak_mb,
        rss_growth_mb=memory.growth_mb,
        wrong_numbers=len(judge.wrong),
        numbers_checked=judge.checked,
        notes=f"{sum(refusals.values())} handshakes refused with 403 in {took} ms",
    )


async def test_bad_frames_close_with_the_right_code(
    mosquitto: MosquittoProcess, registry: Registry, figures: Figures
) -> None:
    """Oversize 1009, bad UTF-8 1007, compressed 1002, abuse 1008; a ping flood is bounded."""
    async with (
        simulator(registry, mosquitto.port, IDS, speed=4) as sim,
        gateway(mosquitto.url, registry, ws_max_buffered_bytes=512 * 1024) as gw,
        judged_client(gw, sim.truth) as judge,
        Memory() as memory,
        contextlib.AsyncExitStack() as stack,
    ):
        await judge.wait_timed(IDS)
        codes: dict[str, int | None] = {}
        big = await stack.enter_async_context(RawWebSocket(gw.ws))
        big.send_text(json.dumps({"op": "subscribe", "ids": ["YT001"] * 2000}))
        codes["oversize"] = await big.close_code(5)
        utf8 = await stack.enter_async_context(RawWebSocket(gw.ws))
        utf8.send_raw(masked_frame(0x1, b'{"op":"time","t0":1}\xff\xfe'))
        codes["invalid_utf8"] = await utf8.close_code(5)
        deflated = await stack.enter_async_context(RawWebSocket(gw.ws))
        deflated.send_raw(masked_frame(0x1, b"\xab\x56\xca\x2f\x50\xb2", rsv1=True))
        codes["compressed"] = await deflated.close_code(5)
        fragments = await stack.enter_async_context(
            RawWebSocket(gw.ws)
        )  # 3 x 2000 bytes: too big in total
        for n in range(3):
            fragments.send_raw(masked_frame(0x1 if n == 0 else 0x0, b" " * 2000, fin=n == 2))
        codes["fragmented_oversize"] = await fragments.close_code(5)
        rude = await stack.enter_async_context(RawWebSocket(gw.ws))
        for _ in range(10):
            rude.send_text("not json")
        codes["ten_bad_messages"] = await rude.close_code(5)
        hasty = await stack.enter_async_context(RawWebSocket(gw.ws))
        for _ in range(40):  # burst 20, then rate_limited errors, then 1008
            hasty.send_text(json.dumps({"op": "time", "t0": 1}))
        codes["rate_limited"] = await hasty.close_code(5)
        # compression offered by a client is not negotiated
        async with connect(gw.ws, compression="deflate") as offered:
            assert offered.response is not None
            negotiated = offered.response.headers.get("Sec-WebSocket-Extensions")
        # ping flood from a client that never reads the pongs
        flooder = await stack.enter_async_context(RawWebSocket(gw.ws, rcvbuf=4096))
        flooder.send_text(json.dumps({"op": "subscribe", "ids": ["YT200"]}))
        ping = masked_frame(0x9, b"x" * 125)
        flood_started = wall_ms()
        sent = 0
        with contextlib.suppress(ConnectionError):
            while wall_ms() - flood_started < 5000 and flooder.unsent < 4 * 2**20:
                flooder.send_raw(ping * 512)
                sent += 512 * len(ping)
                await asyncio.sleep(0)  # let the gateway run: the flood shares its loop
        flooded_mb = sent / 2**20
        growth = memory.sample() - memory.baseline_mb
        flooder.abort()
        await until(lambda: judge.checked >= 20, 10)
    judge.assert_clean(min_checked=20)
    assert codes == {
        "oversize": 1009,
        "invalid_utf8": 1007,
        "compressed": 1002,
        "fragmented_oversize": 1009,
        "ten_bad_messages": 1008,
        "rate_limited": 1008,
    }
    assert negotiated is None
    assert growth < 32, f"{flooded_mb:.0f} MiB of pings made the gateway grow {growth:.0f} MiB"
    figures.record(
        "14 bad frames and a ping flood",
        detection_ms=0,
        peak_rss_mb=memory.peak_mb,
        rss_growth_mb=memory.growth_mb,
        wrong_numbers=len(judge.wrong),
        numbers_checked=judge.checked,
        notes="1009 oversize, 1007 bad UTF-8, 1002 RSV1, 1008 abuse/rate; no deflate; "
        f"{flooded_mb:.0f} MiB of unread pings",
    )


async def test_bad_handshakes(
    mosquitto: MosquittoProcess, registry: Registry, figures: Figures
) -> None:
    """Missing or foreign Origin gets 403; a handshake that never completes is closed in time."""
    allowed = "https://map.example.cn"
    timeout_s = 1.0
    async with (
        gateway(
            mosquitto.url, registry, allowed_origins=allowed, ws_handshake_timeout_s=timeout_s
        ) as gw,
        Memory() as memory,
    ):
        assert await refused(gw.ws) == 403
        assert await refused(gw.ws, origin="https://evil.example") == 403
        assert await refused(gw.ws, origin=allowed) == 0
        # handshakes that never complete: silence, half a request line, headers without end
        partial = [
            b"",
            b"GET /ws/v1 HTTP/1.1\r\n",
            b"GET /ws/v1 HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n",
        ]
        loop = asyncio.get_running_loop()
        socks = []
        for data in partial * 3:
            sock = socket.socket()
            sock.setblocking(False)
            await loop.sock_connect(sock, ("127.0.0.1", gw.port))
            if data:
                await loop.sock_sendall(sock, data)
            socks.append(sock)
        opened = wall_ms()

        async def closed(sock: socket.socket) -> None:
            while await loop.sock_recv(sock, 4096):
                pass

        async with asyncio.timeout(timeout_s + 3):
            await asyncio.gather(*(closed(s) for s in socks))
        took = wall_ms() - opened
        for sock in socks:
            sock.close()
        refusals = dict(gw.app.api.state.public_ws.refused)
    assert refusals.get("origin not allowed") == 2
    assert took <= timeout_s * 1000 + 1500
    figures.record(
        "15 bad handshakes (Origin, never completed)",
        detection_ms=took,
        peak_rss_mb=memory.peak_mb,
        rss_growth_mb=memory.growth_mb,
        notes=f"Origin refused with 403; 9 half-open handshakes closed after {took} ms "
        f"(timeout {timeout_s} s)",
    )


async def test_compression_bomb_when_compression_is_on(
    mosquitto: MosquittoProcess, registry: Registry, figures: Figures
) -> None:
    """With ws_compression on, a 1 KiB frame inflating to 16 MiB closes with 1009, memory flat."""
    async with (
        simulator(registry, mosquitto.port, IDS, speed=4) as sim,
        gateway(mosquitto.url, registry, ws_compression=True) as gw,
        judged_client(gw, sim.truth, compression="deflate") as judge,
        Memory() as memory,
    ):
        await judge.wait_timed(IDS)
        async with connect(gw.ws, compression="deflate", max_size=None) as bomber:
            assert bomber.response is not None
            assert "permessage-deflate" in (
                bomber.response.headers.get("Sec-WebSocket-Extensions") or ""
            )
            # Bytes, so that sending makes no encoded copy in this process (it would count).
            bomb = b"0" * (16 * 2**20)  # deflates to about 16 KiB on the wire
            before = memory.sample()  # the bomb itself lives in this process too
            with contextlib.suppress(ConnectionClosed):
                await bomber.send(bomb)
                await bomber.recv()
                await bomber.recv()
            code = bomber.close_code
            growth = memory.sample() - before
            del bomb
        await until(lambda: judge.checked >= 20, 10)
    judge.assert_clean(min_checked=20)
    assert code == 1009
    assert growth < 16, f"inflating the bomb cost {growth:.0f} MiB"
    figures.record(
        "14b compression bomb (ws_compression on)",
        detection_ms=0,
        peak_rss_mb=memory.peak_mb,
        rss_growth_mb=growth,
        wrong_numbers=len(judge.wrong),
        numbers_checked=judge.checked,
        notes="16 MiB of zeros, deflated: closed with 1009 at the 4 KiB limit (growth: while "
        "sending it); compressed clients judged right",
    )
