"""deploy/mosquitto/ as shipped: passwords, ACL, sizes and TLS hold against a real Mosquitto 2.0."""

from __future__ import annotations

import asyncio
import json
import re
import ssl
import stat
from collections.abc import Iterator
from pathlib import Path

import aiomqtt
import pytest

from signal_gateway.core.registry import Registry
from signal_gateway.testing import G, spat_payload, status_payload
from simulator.controllers import Simulator
from simulator.plan import Control
from tests.deploy.support import (
    ACL,
    CityBroker,
    Replica,
    messages_until,
    mqtt_connect_packet,
    mqtt_publish_packet,
    now_ms,
    read_secrets,
    run_gen_passwords,
)
from tests.support.gateway import next_frame, running_gateway, until, ws_client

pytestmark = pytest.mark.broker

SENTINEL = b"sentinel"


@pytest.fixture
def city_broker() -> Iterator[CityBroker]:
    """The shipped Mosquitto configuration on free ports, with generated passwords and a test CA."""
    broker = CityBroker().start()
    try:
        yield broker
    finally:
        broker.close()


async def sentinel(broker: CityBroker, user: str = "YT001") -> str:
    """Publish a harmless message on the user's own topic; its arrival orders everything before."""
    topic = f"signals/{user}/spat"
    async with broker.client(user) as client:
        await client.publish(topic, SENTINEL, qos=1)
    return topic


async def test_broker_listens_only_on_the_configured_listeners(city_broker: CityBroker) -> None:
    """Only the two listeners of the file are opened (no default listener on 1883 sneaks in)."""
    ports = {int(p) for p in re.findall(r"listen socket on port (\d+)", city_broker.log())}
    assert ports == {city_broker.port, city_broker.tls_port}, city_broker.log()


async def test_anonymous_and_wrong_password_are_refused(city_broker: CityBroker) -> None:
    """No username, or a controller's username with another's password: CONNECT refused."""
    with pytest.raises(aiomqtt.MqttError):
        async with city_broker.client(None):
            pass
    with pytest.raises(aiomqtt.MqttError):
        async with city_broker.client("YT001", password=city_broker.password("YT002")):
            pass
    assert "not authorised" in city_broker.log()
    async with city_broker.client("YT001"):
        pass  # the right password is accepted: the refusals above were about credentials


async def test_controller_cannot_publish_for_another(city_broker: CityBroker) -> None:
    """YT001's SPaT and retained status on YT002's topics reach nobody and are not retained."""
    forged_spat = spat_payload("YT002", 1, now_ms(), [G(2, "green", 30)])
    async with city_broker.client("gateway-1") as gateway:
        await gateway.subscribe("signals/#", qos=1)
        async with city_broker.client("YT001") as controller:
            await controller.publish("signals/YT002/spat", forged_spat, qos=1)
            await controller.publish(
                "signals/YT002/status", status_payload(False), qos=1, retain=True
            )
            await controller.publish("signals/YT001/spat", SENTINEL, qos=1)
        received = await messages_until(gateway, "signals/YT001/spat", SENTINEL)
    assert received == [("signals/YT001/spat", SENTINEL)]
    # A gateway subscribing afterwards gets every retained status first: none for YT002.
    async with city_broker.client("YT001") as controller:
        await controller.publish("signals/YT001/status", status_payload(True), qos=1, retain=True)
    async with city_broker.client("gateway-2") as gateway:
        await gateway.subscribe("signals/#", qos=1)
        topic = await sentinel(city_broker, "YT001")
        received = await messages_until(gateway, topic, SENTINEL)
    assert [topic for topic, _ in received] == ["signals/YT001/status", topic]


async def test_forged_last_will_for_another_controller_is_dropped(city_broker: CityBroker) -> None:
    """A Will on another controller's status topic is never published when the connection dies."""
    async with city_broker.client("gateway-1") as gateway:
        await gateway.subscribe("signals/#", qos=1)
        reader, writer = await asyncio.open_connection("127.0.0.1", city_broker.port)
        writer.write(
            mqtt_connect_packet(
                "ignored",
                "YT001",
                city_broker.password("YT001"),
                will=("signals/YT002/status", status_payload(False)),
            )
        )
        async with asyncio.timeout(5):
            assert await reader.readexactly(4) == b"\x20\x02\x00\x00"  # CONNACK accepted
        writer.transport.abort()  # dies without DISCONNECT: the broker owes its Will
        # A new YT001 connection takes over the client id: by its CONNACK the old one is gone
        # and its Will dealt with; its sentinel then comes after anything the Will produced.
        topic = await sentinel(city_broker, "YT001")
        received = await messages_until(gateway, topic, SENTINEL)
    assert received == [(topic, SENTINEL)]


async def test_gateway_user_cannot_publish(city_broker: CityBroker) -> None:
    """A gateway's publishes (SPaT, retained status) reach no other gateway."""
    forged = spat_payload("YT001", 1, now_ms(), [G(2, "green", 30)])
    async with city_broker.client("gateway-2") as watcher:
        await watcher.subscribe("signals/#", qos=1)
        async with city_broker.client("gateway-1") as gateway:
            await gateway.publish("signals/YT001/spat", forged, qos=1)
            await gateway.publish("signals/YT001/status", status_payload(False), qos=1, retain=True)
        topic = await sentinel(city_broker, "YT001")
        received = await messages_until(watcher, topic, SENTINEL)
    assert received == [(topic, SENTINEL)]


async def test_oversize_packet_disconnects_the_sender_and_reaches_nobody(
    city_broker: CityBroker,
) -> None:
    """A 16 KiB payload passes; a 17 KiB packet ends the sender's connection, forwarded nowhere."""
    async with city_broker.client("gateway-1") as gateway:
        await gateway.subscribe("signals/#", qos=1)
        largest = b"x" * 16384
        async with city_broker.client("YT002") as controller:
            await controller.publish("signals/YT002/spat", largest, qos=1)
        reader, writer = await asyncio.open_connection("127.0.0.1", city_broker.port)
        writer.write(mqtt_connect_packet("ignored", "YT002", city_broker.password("YT002")))
        async with asyncio.timeout(5):
            assert await reader.readexactly(4) == b"\x20\x02\x00\x00"
            writer.write(mqtt_publish_packet("signals/YT002/spat", b"y" * 17408))
            try:
                closed = await reader.read(1) == b""
            except ConnectionResetError:
                closed = True
        writer.close()
        assert closed, "the broker kept a client that sent an oversize packet"
        topic = await sentinel(city_broker, "YT002")
        received = await messages_until(gateway, topic, SENTINEL)
    assert received == [("signals/YT002/spat", largest), (topic, SENTINEL)]
    assert "oversize packet" in city_broker.log()


async def test_tls_listener_needs_the_city_ca(city_broker: CityBroker) -> None:
    """Over TLS with the city's CA a controller publishes; the system trust store refuses it."""
    async with city_broker.client("gateway-1") as gateway:
        await gateway.subscribe("signals/#", qos=1)
        async with city_broker.client("YT003", tls=True) as controller:
            await controller.publish("signals/YT003/spat", SENTINEL, qos=1)
        received = await messages_until(gateway, "signals/YT003/spat", SENTINEL)
    assert received == [("signals/YT003/spat", SENTINEL)]
    system_trust_only = ssl.create_default_context()
    with pytest.raises(ssl.SSLCertVerificationError):
        await asyncio.open_connection("127.0.0.1", city_broker.tls_port, ssl=system_trust_only)


async def test_one_username_twice_disconnects_the_first(city_broker: CityBroker) -> None:
    """use_username_as_clientid: a second gateway-1 connection ends the first (one user/replica)."""
    async with city_broker.client("gateway-1") as first:
        await first.subscribe("signals/#")

        async def until_disconnected() -> None:
            async for _ in first.messages:
                pass

        async with city_broker.client("gateway-1"):
            with pytest.raises(aiomqtt.MqttError):
                await asyncio.wait_for(until_disconnected(), 5)


async def test_gateway_and_simulator_through_the_secured_broker(
    city_broker: CityBroker, registry: Registry, tmp_path: Path
) -> None:
    """All 235 simulated controllers (TLS, own passwords) and a gateway-1 replica: right numbers."""
    simulator = Simulator(
        registry,
        "127.0.0.1",
        city_broker.tls_port,
        seed=7,
        password_for=city_broker.credentials,
        tls_context=city_broker.tls.client_context(),
    )
    # Fixed-time intersections: every group has an exact end at all times (actuated: a range).
    ids = [i for i in registry.ids if simulator.truth.plan(i).control is not Control.ACTUATED][
        ::60
    ][:4]
    # The gateway in a process of its own, as deployed: the 235 TLS controllers in this test's
    # event loop must not delay the gateway's receive timestamps.
    replica = Replica("gateway-1", city_broker.url_for("gateway-1"), tmp_path).start()
    try:
        await replica.wait_ready()
        async with asyncio.timeout(20):
            await simulator.start()
            await simulator.ready.wait()  # every one of the 235 logins was accepted
        # The first messages waited for the TLS connects of the others: the gateway's clock
        # offset estimate sheds that delay once faster samples arrive (a few reports later).
        await until(lambda: all(simulator.published(i) >= 3 for i in ids), within_s=10)
        numbered: set[str] = set()
        async with ws_client(f"ws://127.0.0.1:{replica.port}/ws/v1") as ws:
            await ws.send(json.dumps({"op": "subscribe", "ids": ids}))
            async with asyncio.timeout(10):
                while numbered != set(ids):
                    frame = json.loads(await ws.recv())
                    if frame["type"] not in ("snapshot", "update"):
                        continue
                    for view in frame["intersections"]:
                        for group in view["groups"]:
                            end = group["end_ms"]
                            if end is None or end <= frame["server_time_ms"] + 100:
                                continue
                            truth = simulator.truth.next_transition(
                                view["id"], group["sg"], frame["server_time_ms"]
                            )
                            assert truth is not None
                            # The project's bound (docs/protocol.md): 150 ms of the true change.
                            assert abs(truth[0] - end) <= 150, (view["id"], group, truth)
                            numbered.add(view["id"])
    finally:
        await simulator.stop()
        replica.stop()
    assert "connected to" in replica.log()


async def test_gateway_over_tls_trusts_the_city_ca_from_its_setting(
    city_broker: CityBroker, registry: Registry
) -> None:
    """With SIGNAL_GATEWAY_BROKER_CA_FILE a gateway reaches a private-CA broker over mqtts://."""
    url = city_broker.url_for("gateway-2", tls=True)
    ca = str(city_broker.tls.ca)
    async with running_gateway(url, registry, broker_ca_file=ca) as gw, ws_client(gw.ws) as ws:
        await ws.send(json.dumps({"op": "subscribe", "ids": ["YT004"]}))
        await next_frame(ws, "snapshot")
        async with city_broker.client("YT004", tls=True) as controller:
            ts = now_ms()
            await controller.publish(
                "signals/YT004/spat", spat_payload("YT004", 1, ts, [G(2, "green", 20)])
            )
        update = await next_frame(ws, "update")
    group = next(g for g in update["intersections"][0]["groups"] if g["sg"] == 2)
    assert ts + 20_000 <= group["end_ms"] < ts + 20_000 + 50


def test_gen_passwords_keeps_passwords_rotates_on_request(tmp_path: Path) -> None:
    """Re-running keeps every password, --rotate changes only that user's; files 0600/0640."""
    passwd, secrets = tmp_path / "passwd", tmp_path / "secrets"
    args = ("--passwd", str(passwd), "--secrets", str(secrets), "--gateways", "3")
    assert run_gen_passwords(*args).returncode == 0
    first = read_secrets(secrets)
    assert len(first) == 235 + 3
    assert {"YT001", "YT235", "gateway-3"} <= set(first)
    assert stat.S_IMODE(secrets.stat().st_mode) == 0o600
    assert stat.S_IMODE(passwd.stat().st_mode) == 0o640
    hashes = [line for line in passwd.read_text().splitlines() if not line.startswith("#")]
    assert len(hashes) == len(first)
    assert all(re.fullmatch(r"[\w-]+:\$7\$101\$[\w+/=]{16}\$[\w+/=]{88}", h) for h in hashes)
    assert first["YT001"] not in passwd.read_text()
    assert run_gen_passwords(*args, "--rotate", "YT001").returncode == 0
    second = read_secrets(secrets)
    assert second["YT001"] != first["YT001"]
    assert {u: p for u, p in second.items() if u != "YT001"} == {
        u: p for u, p in first.items() if u != "YT001"
    }


def test_gen_passwords_refuses_gateways_without_an_acl_entry(tmp_path: Path) -> None:
    """More replicas than ACL blocks: refused, nothing written (they could read nothing)."""
    blocks = len(re.findall(r"^user gateway-\d+$", ACL.read_text(), flags=re.MULTILINE))
    done = run_gen_passwords(
        "--passwd", str(tmp_path / "passwd"), "--secrets", str(tmp_path / "secrets"),
        "--gateways", str(blocks + 1),
    )  # fmt: skip
    assert done.returncode != 0
    assert f"gateway-{blocks + 1}" in done.stderr
    assert not (tmp_path / "passwd").exists()
