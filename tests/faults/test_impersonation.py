"""Scenario 8: a controller publishing for another, and a payload whose id is not its topic's.

The gateway alone cannot tell a well-formed report from an impostor: the broker's ACL (each
controller may write only ``signals/<its username>/#``; deploy/mosquitto ships the real one)
is what stops it. These tests run Mosquitto with a minimal ACL of that shape, and once without,
to show what the ACL prevents.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator

import pytest

from signal_gateway.core.model import SignalState
from signal_gateway.core.registry import Registry
from signal_gateway.testing import G, spat_payload, status_payload
from simulator.controllers import Simulator
from tests.faults.conftest import Figures
from tests.faults.support import Memory, gateway, judged_client, simulator, wall_ms
from tests.support.gateway import until
from tests.support.mosquitto import MosquittoProcess

pytestmark = pytest.mark.broker

VICTIM, IMPOSTOR = "YT001", "YT002"
ACL = "pattern write signals/%u/#\nuser gateway\ntopic read signals/#\n"


@contextlib.contextmanager
def broker_with_acl() -> Iterator[MosquittoProcess]:
    """Mosquitto where a controller may write only below its own username."""
    broker = MosquittoProcess()
    acl = broker.dir / "acl"
    acl.write_text(ACL)
    broker.config_extra = f"allow_anonymous true\nacl_file {acl}\n"
    with broker:
        yield broker


def forged(sim: Simulator) -> bytes:
    """A well-formed report for the victim, ahead in seq, every group green for 99 s."""
    groups = [G(g.sg, SignalState.GREEN, 99.0) for g in sim.city[VICTIM].intersection.groups]
    return spat_payload(VICTIM, sim.seq(VICTIM) + 100, wall_ms(), groups)


async def impersonate(sim: Simulator) -> None:
    """The impostor's connection writes the victim's SPaT and an offline status for it."""
    for _ in range(3):
        await sim.publish_raw(IMPOSTOR, f"signals/{VICTIM}/spat", forged(sim), qos=1)
    await sim.publish_raw(
        IMPOSTOR, f"signals/{VICTIM}/status", status_payload(False), qos=1, retain=True
    )


async def test_acl_stops_an_impostor_and_ids_must_match_topics(
    registry: Registry, figures: Figures
) -> None:
    """Behind the ACL an impostor's reports never arrive; an id/topic mismatch is refused."""
    with broker_with_acl() as broker:
        async with (
            Memory() as memory,
            simulator(
                registry, broker.port, [VICTIM, IMPOSTOR], speed=4, username_for=lambda i: i
            ) as sim,
            gateway(f"mqtt://gateway@127.0.0.1:{broker.port}", registry) as gw,
            judged_client(gw, sim.truth) as judge,
        ):
            city = gw.gateway.city
            await judge.wait_timed([VICTIM, IMPOSTOR])
            await impersonate(sim)
            # the victim's own report under the impostor's id: refused whoever sent it
            await sim.publish_raw(
                VICTIM, f"signals/{VICTIM}/spat", forged(sim).replace(b"YT001", b"YT002"), qos=1
            )
            # a marker after the forgeries, on the impostor's own topic: once it is counted,
            # anything the broker let through from that connection has arrived too
            marker = json.dumps({"v": 1, "marker": True}).encode()
            await sim.publish_raw(IMPOSTOR, f"signals/{IMPOSTOR}/spat", marker, qos=1)
            await until(lambda: city.state(IMPOSTOR).counts["rejected:schema"] >= 1, 5)
            await until(lambda: city.totals["id_mismatch"] >= 1, 5)
            await until(lambda: judge.checked >= 20, 10)
            victim = city.state(VICTIM)
            forged_seen = victim.last_seq is not None and victim.last_seq >= sim.seq(VICTIM) + 50
            victim_online = victim.online
    judge.assert_clean(min_checked=20)
    assert not forged_seen
    assert victim_online
    figures.record(
        "8 impostor behind ACL; id/topic mismatch",
        peak_rss_mb=memory.peak_mb,
        rss_growth_mb=memory.growth_mb,
        wrong_numbers=len(judge.wrong),
        numbers_checked=judge.checked,
        notes="forged SPaT and status dropped by the broker; mismatch refused (id_mismatch)",
    )


async def test_without_acl_an_impostor_is_believed(
    mosquitto: MosquittoProcess, registry: Registry
) -> None:
    """Without the ACL a forged report is believed; the judge sees wrong numbers: ACL required."""
    async with (
        simulator(registry, mosquitto.port, [VICTIM, IMPOSTOR], speed=4) as sim,
        gateway(mosquitto.url, registry) as gw,
        judged_client(gw, sim.truth) as judge,
    ):
        await judge.wait_timed([VICTIM, IMPOSTOR])
        for _ in range(3):
            await sim.publish_raw(IMPOSTOR, f"signals/{VICTIM}/spat", forged(sim), qos=1)
        await judge.wait(lambda: bool(judge.wrong), 5)
    assert all(verdict.intersection_id == VICTIM for verdict in judge.wrong)
