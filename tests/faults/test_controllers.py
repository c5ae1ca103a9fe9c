"""Scenarios 4 and 6: controllers that go silent, die, die unseen, or send odd sequences.

Bounds (docs/reliability.md): a silent controller shows no number within ``STALE_DETECT_MS``
(the stale time plus a flush); a dead one whose Will fires within ``WILL_DETECT_MS``; one whose
Will is deferred or never sent still within ``STALE_DETECT_MS``; numbers return within
``RESUME_MS`` of the controller speaking again.
"""

from __future__ import annotations

import pytest

from signal_gateway.core.registry import Registry
from tests.faults.conftest import Figures
from tests.faults.proxy import TcpProxy
from tests.faults.support import Memory, gateway, judged_client, simulator, wall_ms
from tests.support.gateway import until
from tests.support.mosquitto import MosquittoProcess

pytestmark = pytest.mark.broker

STALE_DETECT_MS = 2500 + 100 + 300  # stale_after_s + a flush + slack
WILL_DETECT_MS = 300
RESUME_MS = 2500  # reconnect (backoff 0.2-1 s) and the first report


async def test_silent_and_killed_controllers(
    mosquitto: MosquittoProcess, registry: Registry, figures: Figures
) -> None:
    """A silent controller goes unknown by the stale time, a killed one by its Will; both return."""
    silent, killed, healthy = "YT001", "YT002", "YT003"
    ids = [silent, killed, healthy]
    async with (
        Memory() as memory,
        simulator(registry, mosquitto.port, ids, speed=4) as sim,
        gateway(mosquitto.url, registry) as gw,
        judged_client(gw, sim.truth) as judge,
    ):
        await judge.wait_timed(ids)
        started = wall_ms()
        sim.silence(silent)
        sim.drop(killed)
        will_ms = await judge.unknown_after(killed, started, 3)
        stale_ms = await judge.unknown_after(silent, started, 5)
        assert gw.gateway.city.view(silent).online  # connected, just not talking
        assert not gw.gateway.city.view(killed).online
        assert judge.is_timed(healthy)
        back = wall_ms()
        sim.silence(silent, on=False)
        sim.resume(killed)
        resume_ms = max([await judge.timed_after(i, back, 5) for i in (silent, killed)])
        await until(lambda: judge.checked >= 30, 10)
    judge.assert_clean(min_checked=30)
    assert will_ms <= WILL_DETECT_MS
    assert stale_ms <= STALE_DETECT_MS
    assert resume_ms <= RESUME_MS
    for name, detection, why in (
        ("4a controller silent but connected", stale_ms, "stale rule"),
        ("4b controller killed (Will)", will_ms, "Last Will"),
    ):
        figures.record(
            name,
            detection_ms=detection,
            recovery_ms=resume_ms,
            peak_rss_mb=memory.peak_mb,
            rss_growth_mb=memory.growth_mb,
            wrong_numbers=len(judge.wrong),
            numbers_checked=judge.checked,
            notes=why,
        )


async def test_deferred_will(
    mosquitto: MosquittoProcess, registry: Registry, figures: Figures
) -> None:
    """A controller whose link dies unseen goes unknown by the stale time, before its late Will."""
    target = "YT005"
    async with (
        TcpProxy(mosquitto.port) as cable,
        Memory() as memory,
        # keepalive 4 s: the broker gives up on the silent link only after 1.5 x 4 = 6 s
        simulator(registry, cable.port, [target], speed=4, keepalive_s=4) as sim,
        gateway(mosquitto.url, registry) as gw,
        judged_client(gw, sim.truth) as judge,
    ):
        await judge.wait_timed([target])
        cut = wall_ms()
        cable.blackhole()  # the controller's cable is cut: no FIN, no Will yet
        detection = await judge.unknown_after(target, cut, 4)
        assert gw.gateway.city.view(target).online, "the Will came too early to prove anything"
        state = gw.gateway.city.state(target)
        await until(lambda: not state.online, 12)  # the Will, deferred by the broker
        will_after = wall_ms() - cut
        healed = wall_ms()
        cable.heal()
        recovery = await judge.timed_after(target, healed, 15)
        await until(lambda: judge.checked >= 10, 10)
    judge.assert_clean(min_checked=10)
    assert detection <= STALE_DETECT_MS < will_after
    figures.record(
        "4c Will deferred by the broker (cut cable)",
        detection_ms=detection,
        recovery_ms=recovery,
        peak_rss_mb=memory.peak_mb,
        rss_growth_mb=memory.growth_mb,
        wrong_numbers=len(judge.wrong),
        numbers_checked=judge.checked,
        notes=f"Will arrived after {will_after} ms",
    )


async def test_broker_crash_loses_a_will(registry: Registry, figures: Figures) -> None:
    """A controller dying while a crashed broker is down gets no Will; it stays unknown anyway."""
    alive, dead = "YT006", "YT007"
    with MosquittoProcess() as broker:
        # persistence with a 1 s autosave: the retained online statuses survive the crash
        broker.config_extra = (
            f"persistence true\npersistence_location {broker.dir}/\nautosave_interval 1\n"
        )
        broker.restart()
        saved = broker.dir / "mosquitto.db"
        async with (
            Memory() as memory,
            simulator(registry, broker.port, [alive, dead], speed=4) as sim,
            gateway(broker.url, registry) as gw,
            judged_client(gw, sim.truth) as judge,
        ):
            await judge.wait_timed([alive, dead])
            await until(saved.exists, 5)
            crashed = wall_ms()
            broker.stop()  # SIGKILL: the broker itself sends no Will
            detection = max([await judge.unknown_after(i, crashed, 3) for i in (alive, dead)])
            sim.drop(dead)  # dies while the broker is away: nobody will publish its Will
            restarted = wall_ms()
            broker.start()
            recovery = await judge.timed_after(alive, restarted, 10)
            await until(lambda: judge.checked >= 10, 10)
            city = gw.gateway.city
            await until(lambda: city.state(dead).status_seen and wall_ms() - restarted > 3000, 8)
            dead_view = city.view(dead)
    judge.assert_clean(min_checked=10)
    assert not judge.is_timed(dead)
    assert dead_view.online, "a Will or offline status arrived: nothing was lost"
    assert dead_view.stale
    figures.record(
        "4d broker crash loses a Will",
        detection_ms=detection,
        recovery_ms=recovery,
        peak_rss_mb=memory.peak_mb,
        rss_growth_mb=memory.growth_mb,
        wrong_numbers=len(judge.wrong),
        numbers_checked=judge.checked,
        notes="dead controller: retained online:true, no Will, stale, no number",
    )


async def test_duplicates_reordering_and_restarts(
    mosquitto: MosquittoProcess, registry: Registry, figures: Figures
) -> None:
    """Duplicated, reordered, replayed reports and controller restarts never show a wrong number."""
    dup, reorder, replay, restart = "YT001", "YT002", "YT003", "YT004"
    ids = [dup, reorder, replay, restart]
    async with (
        Memory() as memory,
        simulator(registry, mosquitto.port, ids, speed=4) as sim,
        gateway(mosquitto.url, registry) as gw,
        judged_client(gw, sim.truth) as judge,
    ):
        city = gw.gateway.city
        await judge.wait_timed(ids)
        sim.duplicate(dup, 5)
        for _ in range(3):
            sim.reorder(reorder)
            await until(lambda: sim.truth.events_for(reorder, "reorder") != [], 2)
            seq = sim.seq(reorder)
            await until(lambda: sim.seq(reorder) >= seq + 2, 5)  # noqa: B023 (awaited at once)
        # seq going backwards: a replay of a report made two seconds ago (old seq, old ts)
        old = wall_ms() - 2000
        await sim.publish_raw(
            replay, f"signals/{replay}/spat", sim.city[replay].report(old, sim.seq(replay) - 3)
        )
        # a controller restart announced by its status, and one that is not: seq from 0 again
        await sim.restart(restart)
        await until(lambda: city.state(restart).counts["restarts"] >= 1, 5)
        await until(lambda: sim.seq(restart) >= 3, 5)
        now = wall_ms()
        await sim.publish_raw(restart, f"signals/{restart}/spat", sim.city[restart].report(now, 0))
        await until(lambda: city.state(restart).counts["restarts"] >= 2, 5)
        await until(lambda: judge.checked >= 40, 10)
        totals = dict(city.totals)
        shown_after = judge.is_timed(restart)
    judge.assert_clean(min_checked=40)
    assert totals.get("duplicate", 0) >= 5
    assert totals.get("out_of_order", 0) >= 4  # three reorders and the replay
    assert shown_after
    figures.record(
        "6 duplicates, reordering, seq back, restarts",
        peak_rss_mb=memory.peak_mb,
        rss_growth_mb=memory.growth_mb,
        wrong_numbers=len(judge.wrong),
        numbers_checked=judge.checked,
        notes=f"dropped {totals.get('duplicate', 0)} duplicates, "
        f"{totals.get('out_of_order', 0)} out of order; 2 restarts recognised",
    )
