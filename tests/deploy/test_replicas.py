"""Two gateway replicas behind the shipped nginx config, fed by the shipped Mosquitto config.

Topology (all on loopback, free ports): simulated controllers (this process, TLS, each with its
own password) → Mosquitto (deploy/mosquitto) → replicas gateway-1 and gateway-2 (subprocesses
``python -m signal_gateway serve``, each its own broker user) → nginx (deploy/nginx) → WebSocket
clients. Every frame every client receives is checked against the simulator's ground truth.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import signal
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from signal_gateway.core.registry import Registry
from simulator.controllers import Simulator
from simulator.plan import Control
from tests.deploy.support import (
    NGINX_SITE,
    CityBroker,
    Nginx,
    Replica,
    Watcher,
    free_ports,
    nginx_missing_reason,
    watchers,
)
from tests.support.gateway import until

pytestmark = pytest.mark.broker

CLIENTS = 4
TOLERANCE_MS = 50
"""Each replica estimates each controller's clock offset itself (minimum transit delay)."""


@dataclass
class Topology:
    """Everything the replica tests run against."""

    broker: CityBroker
    replicas: list[Replica]
    nginx: Nginx
    simulator: Simulator
    ids: list[str]
    check: Callable[[dict[str, Any], int], None]

    def replica_at(self, upstream: str) -> Replica:
        """The replica nginx reported (``$upstream_addr``) for a connection."""
        return next(r for r in self.replicas if upstream == f"127.0.0.1:{r.port}")


def truth_check(simulator: Simulator) -> Callable[[dict[str, Any], int], None]:
    """A check that raises AssertionError when a view shows a number the plan contradicts."""

    def check(view: dict[str, Any], server_time_ms: int) -> None:
        for group in view["groups"]:
            end = group["end_ms"]
            if end is None or end <= server_time_ms + 100:
                continue  # no number, or one that ends as the frame leaves: nothing to judge
            truth = simulator.truth.next_transition(view["id"], group["sg"], server_time_ms)
            assert truth is not None, (view["id"], group)
            assert abs(truth[0] - end) <= TOLERANCE_MS, (
                f"{view['id']} sg {group['sg']}: shown end {end}, truth {truth[0]} "
                f"({end - truth[0]:+d} ms) at {server_time_ms}"
            )

    return check


@pytest.fixture
async def topology(registry: Registry, tmp_path: Path) -> AsyncIterator[Topology]:
    """Mosquitto + 2 replicas + nginx + 6 fixed-time simulated controllers, all running."""
    reason = nginx_missing_reason()
    if reason is not None:
        pytest.skip(reason)
    broker = CityBroker(gateways=2).start()
    first, second, balancer = free_ports(3)
    replicas = [
        Replica(f"gateway-{n}", broker.url_for(f"gateway-{n}"), tmp_path, port)
        for n, port in ((1, first), (2, second))
    ]
    nginx: Nginx | None = None
    simulator: Simulator | None = None
    try:
        for replica in replicas:
            replica.start()
        await asyncio.gather(*(replica.wait_ready() for replica in replicas))
        nginx = Nginx(tmp_path, (first, second), balancer).start()
        # Fixed-time intersections: every group has an exact end at every moment.
        plans = Simulator(registry, "127.0.0.1", broker.tls_port, seed=3).truth
        fixed = [i for i in registry.ids if plans.plan(i).control is not Control.ACTUATED]
        ids = fixed[::40][:6]
        simulator = Simulator(
            registry,
            "127.0.0.1",
            broker.tls_port,
            seed=3,
            only=ids,
            password_for=broker.credentials,
            tls_context=broker.tls.client_context(),
        )
        async with asyncio.timeout(10):
            await simulator.start()
            await simulator.ready.wait()
        # A replica's clock-offset estimate starts from the first message, transit delay and all
        # (the TLS connects delay the first ones by tens of ms); a few reports later it has a
        # fast sample. Clients are judged from then on, to 50 ms.
        await until(lambda: all(simulator.published(i) >= 3 for i in ids), within_s=10)
        yield Topology(broker, replicas, nginx, simulator, ids, truth_check(simulator))
    finally:
        if simulator is not None:
            await simulator.stop()
        if nginx is not None:
            nginx.stop()
        for replica in replicas:
            replica.stop()
        broker.close()


AGREE_MS = 20
"""Two replicas' ends for the same group: each has its own offset estimate (within a few ms)."""


def disagreement(a: Watcher, b: Watcher) -> str | None:
    """Where two clients' latest views differ (state, or end beyond AGREE_MS), or None."""
    for iid in a.ids:
        if iid not in a.views or iid not in b.views:
            return f"{iid}: no view yet"
        for ga, gb in zip(a.views[iid]["groups"], b.views[iid]["groups"], strict=True):
            ends = (ga["end_ms"], gb["end_ms"])
            if ga["state"] != gb["state"] or (ends[0] is None) != (ends[1] is None):
                return f"{iid}: {ga} vs {gb}"
            if ends[0] is not None and abs(ends[0] - ends[1]) > AGREE_MS:
                return f"{iid} sg {ga['sg']}: end {ends[0]} vs {ends[1]}"
    return None


async def agree(a: Watcher, b: Watcher, within_s: float = 5.0) -> None:
    """Wait until both clients show the same views (they may differ while a change is in flight)."""
    try:
        await until(lambda: disagreement(a, b) is None, within_s=within_s)
    except TimeoutError:
        raise AssertionError(f"views differ: {disagreement(a, b)}") from None


async def wait_all_fresh(clients: list[Watcher], within_s: float = 10.0) -> None:
    """Every client has a snapshot with numbers for every intersection it follows."""
    async with asyncio.timeout(within_s):
        await asyncio.gather(*(client.fresh.wait() for client in clients))


def diagnostics(topology: Topology) -> str:
    """Logs to print when an assertion fails."""
    replicas = "\n".join(f"--- {r.name}:\n{r.log()}" for r in topology.replicas)
    return f"{replicas}\n--- nginx:\n{topology.nginx.error_log()}"


async def test_replicas_serve_the_same_views_and_clients_survive_a_killed_replica(
    topology: Topology, record_property: Callable[[str, object], None]
) -> None:
    """Both replicas show the same true numbers; SIGKILL one: its clients move, no wrong number."""
    async with watchers(topology.nginx.ws, topology.ids, topology.check, CLIENTS) as clients:
        await wait_all_fresh(clients)
        by_replica = {
            r.port: [c for c in clients if topology.replica_at(c.upstream) is r]
            for r in topology.replicas
        }
        assert all(len(group) == CLIENTS // 2 for group in by_replica.values()), by_replica
        first, second = (group[0] for group in by_replica.values())
        await agree(first, second)

        victim = topology.replica_at(first.upstream)
        survivor = next(r for r in topology.replicas if r is not victim)
        moving = by_replica[victim.port]
        staying = by_replica[survivor.port]
        killed_at = time.perf_counter()
        victim.signal(signal.SIGKILL)

        def moved(client: Watcher) -> bool:
            return bool(client.fresh_at) and client.fresh_at[-1] > killed_at

        await until(lambda: all(moved(c) for c in moving), within_s=10)
        move_s = [c.fresh_at[-1] - killed_at for c in moving]
        record_property("client_move_s", max(move_s))
        print(f"\nclients moved after SIGKILL in {', '.join(f'{s * 1000:.0f} ms' for s in move_s)}")

        assert all(c.upstream == f"127.0.0.1:{survivor.port}" for c in moving)
        print(f"nginx tried: {[c.upstreams[-1] for c in moving]}")
        assert all(c.snapshots == 2 for c in moving), "a fresh snapshot after reconnecting"
        assert all(len(c.upstreams) == 1 for c in staying), "the survivor's clients were cut"
        assert max(move_s) < 3.0, move_s
        async with httpx.AsyncClient() as http:
            ready = await http.get(topology.nginx.http + "/readyz")
        assert ready.status_code == 200, "nginx /readyz must skip the dead replica"
        await agree(moving[0], staying[0])
    errors = [error for client in clients for error in client.errors]
    assert not errors, "\n".join(errors) + diagnostics(topology)


async def test_rolling_restart_gives_1001_and_the_restarted_replica_converges(
    topology: Topology, record_property: Callable[[str, object], None]
) -> None:
    """SIGTERM: clients get 1001 and resume on the other; the restarted one converges in time."""
    async with watchers(topology.nginx.ws, topology.ids, topology.check, CLIENTS) as clients:
        await wait_all_fresh(clients)
        restarting = topology.replica_at(clients[0].upstream)
        moving = [c for c in clients if topology.replica_at(c.upstream) is restarting]
        stopped_at = time.perf_counter()
        restarting.signal(signal.SIGTERM)
        assert await restarting.wait_exit() == 0, restarting.log()

        def moved(client: Watcher) -> bool:
            return bool(client.fresh_at) and client.fresh_at[-1] > stopped_at

        await until(lambda: all(moved(c) for c in moving), within_s=10)
        codes = [code for c in moving for code in c.close_codes]
        assert set(codes) == {1001}, f"1001 (going away) through nginx, not {codes}"
        gaps = [c.fresh_at[-1] - stopped_at for c in moving]
        record_property("rolling_restart_gap_s", max(gaps))

        restarting.start()
        await restarting.wait_ready()
        ready_at = time.perf_counter()
        direct = f"ws://127.0.0.1:{restarting.port}/ws/v1"
        async with watchers(direct, topology.ids, topology.check, 1) as (fresh,):
            await wait_all_fresh([fresh], within_s=5)
            converged_s = fresh.fresh_at[0] - ready_at
            record_property("restarted_replica_converged_s", converged_s)
            print(
                f"\nrolling restart: clients resumed in {max(gaps) * 1000:.0f} ms; restarted "
                f"replica had every number {converged_s * 1000:.0f} ms after /readyz"
            )
            assert converged_s < 2.5, "within the stale time (controllers publish at >= 1 Hz)"
            await agree(fresh, clients[-1])
        # nginx skips the replica that refused connections while it restarted for fail_timeout
        # (3 s); from then on least_conn sends newcomers to it, the emptiest.
        newcomers: list[Watcher] = []
        async with asyncio.timeout(3 + 2):
            while not newcomers or topology.replica_at(newcomers[-1].upstream) is not restarting:
                async with watchers(topology.nginx.ws, topology.ids, topology.check, 1) as (new,):
                    newcomers.append(new)
                    await wait_all_fresh([new], within_s=5)
        back_s = time.perf_counter() - ready_at
        print(f"restarted replica took new clients {back_s * 1000:.0f} ms after /readyz")
    errors = [error for client in [*clients, fresh, *newcomers] for error in client.errors]
    assert not errors, "\n".join(errors) + diagnostics(topology)


async def test_nginx_refuses_connections_over_the_per_ip_limit(topology: Topology) -> None:
    """The shipped limit_conn: 100 WebSockets per client IP pass, the 101st gets HTTP 429."""
    site = NGINX_SITE.read_text()
    found = re.search(r"limit_conn signal_gateway_ws_per_ip (\d+);", site)
    assert found is not None
    limit = int(found.group(1))
    async with contextlib.AsyncExitStack() as stack:
        for _ in range(limit):
            ws = await stack.enter_async_context(connect(topology.nginx.ws, open_timeout=5))
            assert json.loads(await ws.recv())["type"] == "hello"
        with pytest.raises(InvalidStatus) as refused:
            await stack.enter_async_context(connect(topology.nginx.ws, open_timeout=5))
    assert refused.value.response.status_code == 429
