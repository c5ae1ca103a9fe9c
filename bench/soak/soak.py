"""Soak: the whole city for a long time with every fault cycling, and the gateway's memory curve.

``python -m bench.soak.soak --minutes 30`` (outside CI) runs a real Mosquitto, the gateway as
its own process (``signal-gateway serve``, the memory measured is its alone), all 235 simulated
controllers, and WebSocket clients: one that follows the whole city and whose every end is
judged against the simulator's ground truth (``tests.faults.support.Judge``), and others that
come and go. After ``--settle-s`` of a healthy city, every ``--fault-every-s`` the next fault of
the cycle is applied for a while and undone: the fault scenarios of tests/faults, on a live
city. (The settling keeps the cold start out of the memory curve: a cold start coinciding with
a fault is a known gap, docs/reliability.md.)

Every ``--sample-s`` it writes a row to ``bench/soak/results/soak-<stamp>.csv``: elapsed time,
the gateway's RSS, open file descriptors, connected WebSocket clients (from /metrics when the
engineers' view serves them, else -1), the judge's counts, and the fault under way. At the end a
PNG of the memory curve (if matplotlib is installed) and a one-line JSON summary; the exit code
is 1 if any wrong number was shown or the gateway died.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from signal_gateway.core.model import Mode
from signal_gateway.core.registry import Registry, load_registry
from simulator.controllers import Simulator
from simulator.faults import MALFORMED_KINDS
from tests.faults.proxy import TcpProxy
from tests.faults.support import Judge

REPO = Path(__file__).resolve().parents[2]
RESULTS = Path(__file__).resolve().parent / "results"
MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"


def free_port() -> int:
    """A free loopback TCP port."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Broker:
    """Mosquitto on a fixed port, killable, hangable and restartable."""

    def __init__(self) -> None:
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="soak-mosquitto-"))
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start and wait until it listens."""
        conf = self.dir / "mosquitto.conf"
        user = "user root\n" if os.geteuid() == 0 else ""
        conf.write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
            f"log_dest file {self.dir / 'mosquitto.log'}\n{user}"
        )
        self.process = subprocess.Popen([MOSQUITTO, "-c", str(conf)], stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port)):
                return
            if time.monotonic() > deadline:
                raise TimeoutError("mosquitto did not start")
            time.sleep(0.02)

    def kill(self) -> None:
        """SIGKILL and reap."""
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None

    def signal(self, sig: signal.Signals) -> None:
        """SIGSTOP / SIGCONT."""
        if self.process is not None:
            self.process.send_signal(sig)


@dataclass
class Fault:
    """One fault of the cycle: apply, hold, undo."""

    name: str
    apply: Callable[[], Awaitable[None]]
    undo: Callable[[], Awaitable[None]]
    hold_s: float = 10.0


class Soak:
    """Everything the soak runs, and its measurements."""

    def __init__(self, args: argparse.Namespace, registry: Registry) -> None:
        self.args = args
        self.registry = registry
        self.broker = Broker()
        self.proxy: TcpProxy | None = None
        self.sim: Simulator | None = None
        self.gateway: asyncio.subprocess.Process | None = None
        self.port = free_port()
        self.judge: Judge | None = None
        self.fault = "none"
        self.rng = random.Random(args.seed)
        self.clients_reconnected = 0
        self.side_tasks: set[asyncio.Task[None]] = set()

    @property
    def ws_url(self) -> str:
        """The public WebSocket."""
        return f"ws://127.0.0.1:{self.port}/ws/v1"

    # -- set-up ----------------------------------------------------------------------------------

    async def start(self) -> None:
        """Broker, proxy, simulator, gateway."""
        self.broker.start()
        self.proxy = await TcpProxy(self.broker.port).start()
        self.sim = Simulator(
            self.registry, "127.0.0.1", self.broker.port, seed=self.args.seed,
            reconnect_min_s=0.2, reconnect_max_s=2.0,
        )  # fmt: skip
        await self.sim.start()
        env = {
            **os.environ,
            "SIGNAL_GATEWAY_EVENT_DB": "",
            "SIGNAL_GATEWAY_LOG_LEVEL": "warning",
            "SIGNAL_GATEWAY_MQTT_KEEPALIVE_S": "5",
            "SIGNAL_GATEWAY_RECONNECT_MAX_S": "2",
            "SIGNAL_GATEWAY_WS_MAX_BUFFERED_BYTES": str(512 * 1024),
            "SIGNAL_GATEWAY_WS_PING_INTERVAL_S": "5",
            "SIGNAL_GATEWAY_WS_PING_TIMEOUT_S": "5",
        }
        self.gateway = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "signal_gateway", "serve", "--broker", self.proxy.url,
            "--port", str(self.port), "--host", "127.0.0.1", cwd=REPO, env=env,
        )  # fmt: skip
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(OSError):
                async with connect(self.ws_url):
                    return
            if time.monotonic() > deadline:
                raise TimeoutError("gateway did not start")
            await asyncio.sleep(0.2)

    async def stop(self) -> None:
        """Everything down, in reverse."""
        for task in self.side_tasks:
            task.cancel()
        await asyncio.gather(*self.side_tasks, return_exceptions=True)
        if self.gateway is not None and self.gateway.returncode is None:
            self.gateway.send_signal(signal.SIGTERM)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.gateway.wait(), 10)
            if self.gateway.returncode is None:
                self.gateway.kill()
                await self.gateway.wait()
        if self.sim is not None:
            await self.sim.stop()
        if self.proxy is not None:
            await self.proxy.stop()
        self.broker.signal(signal.SIGCONT)
        self.broker.kill()
        shutil.rmtree(self.broker.dir, ignore_errors=True)

    # -- the judged client -----------------------------------------------------------------------

    async def judged(self) -> None:
        """Follow the whole city, judge every frame; reconnect (backoff) whenever closed."""
        assert self.sim is not None
        self.judge = Judge(self.sim.truth)
        while True:
            with contextlib.suppress(OSError, ConnectionClosed):
                async with connect(self.ws_url, max_size=None) as ws:
                    await ws.send(json.dumps({"op": "subscribe", "all": True}))
                    await self.judge.read(ws)
            self.clients_reconnected += 1
            await asyncio.sleep(1.0)  # a client's reconnect backoff

    # -- the fault cycle -------------------------------------------------------------------------

    def faults(self) -> list[Fault]:
        """The cycle, in order; ids drawn at random from the city each time."""
        sim, broker = self.sim, self.broker
        assert sim is not None
        assert self.proxy is not None
        proxy = self.proxy
        pick: dict[str, str] = {}

        def one(name: str) -> str:
            pick[name] = self.rng.choice(sim.ids)
            return pick[name]

        async def nothing() -> None:
            pass

        async def drop() -> None:
            sim.drop(one("drop"))

        async def resume() -> None:
            sim.resume(pick["drop"])

        async def silence() -> None:
            sim.silence(one("silence"))

        async def speak() -> None:
            sim.silence(pick["silence"], on=False)

        async def flash() -> None:
            for _ in range(5):
                sim.set_mode(one("mode"), self.rng.choice([Mode.FLASH, Mode.MANUAL, Mode.DARK]))

        async def heal_all() -> None:
            for iid in sim.ids:
                sim.heal(iid)

        async def skew() -> None:
            sim.skew(one("skew"), self.rng.choice([5_000, -5_000, 600_000, -600_000]))

        async def unskew() -> None:
            sim.skew(pick["skew"], 0)

        async def sequences() -> None:
            sim.duplicate(one("seq"), 5)
            sim.reorder(one("seq2"))
            await sim.restart(one("seq3"))

        async def malformed() -> None:
            iid = one("malformed")
            for kind in MALFORMED_KINDS:
                with contextlib.suppress(RuntimeError):
                    await sim.send_malformed(iid, kind)

        async def kill_broker() -> None:
            broker.kill()

        async def start_broker() -> None:
            broker.start()

        async def hang_broker() -> None:
            broker.signal(signal.SIGSTOP)

        async def wake_broker() -> None:
            broker.signal(signal.SIGCONT)

        async def slow_link() -> None:
            proxy.set_delay(1.5)

        async def fast_link() -> None:
            proxy.set_delay(0)

        async def cut_link() -> None:
            proxy.blackhole()

        async def heal_link() -> None:
            proxy.heal()

        async def bad_clients() -> None:
            self.spawn(self.slow_readers(3))
            self.spawn(self.flood(300))

        return [
            Fault("malformed payloads (10 MB too)", malformed, nothing, hold_s=5),
            Fault("controller dropped (Will)", drop, resume),
            Fault("controller silent", silence, speak),
            Fault("modes flash/manual/dark", flash, heal_all),
            Fault("clock skew", skew, unskew),
            Fault("duplicates, reorder, restart", sequences, nothing),
            Fault("broker killed", kill_broker, start_broker),
            Fault("broker hung", hang_broker, wake_broker, hold_s=6),
            Fault("slow link 1.5 s", slow_link, fast_link),
            Fault("network cut", cut_link, heal_link, hold_s=6),
            Fault("slow readers and a connection flood", bad_clients, nothing),
        ]

    def spawn(self, coro: Awaitable[None]) -> None:
        """A side task that may fail quietly."""

        async def run() -> None:
            with contextlib.suppress(Exception):
                await coro

        task = asyncio.create_task(run())
        self.side_tasks.add(task)
        task.add_done_callback(self.side_tasks.discard)

    async def slow_readers(self, count: int) -> None:
        """Clients that subscribe to everything and never read, until the gateway evicts them."""
        sockets = []
        for _ in range(count):
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.setblocking(False)
            await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", self.port))
            key = "dGhlIHNhbXBsZSBub25jZQ=="
            request = (
                f"GET /ws/v1 HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
            )
            await asyncio.get_running_loop().sock_sendall(sock, request.encode())
            sockets.append(sock)
        with contextlib.suppress(OSError):
            for _ in range(60):  # a subscribe to everything every second, never reading
                for sock in sockets:
                    payload = b'{"op":"subscribe","all":true}'
                    mask = b"\x00\x00\x00\x00"
                    frame = bytes([0x81, 0x80 | len(payload)]) + mask + payload
                    await asyncio.get_running_loop().sock_sendall(sock, frame)
                await asyncio.sleep(1)
        for sock in sockets:
            sock.close()

    async def flood(self, count: int) -> None:
        """Connections opened and closed as fast as possible."""
        for _ in range(count):
            with contextlib.suppress(OSError, ConnectionClosed, Exception):
                async with connect(self.ws_url, open_timeout=5):
                    pass

    async def cycle(self, until: float, settle_s: float) -> None:
        """After ``settle_s`` of a healthy city, apply each fault in turn until the time is up."""
        await asyncio.sleep(settle_s)  # every controller has reported for a while
        faults = self.faults()
        n = 0
        while time.monotonic() < until:
            fault = faults[n % len(faults)]
            n += 1
            self.fault = fault.name
            await fault.apply()
            await asyncio.sleep(min(fault.hold_s, max(0.0, until - time.monotonic())))
            await fault.undo()
            self.fault = "none"
            await asyncio.sleep(min(self.args.fault_every_s, max(0.0, until - time.monotonic())))

    # -- measuring -------------------------------------------------------------------------------

    async def sample(self, path: Path, until: float) -> list[dict[str, Any]]:
        """Write a CSV row every ``sample_s``; return the rows."""
        assert self.gateway is not None
        process = psutil.Process(self.gateway.pid)
        rows: list[dict[str, Any]] = []
        started = time.monotonic()
        with path.open("w", newline="") as out:
            writer: csv.DictWriter[str] | None = None
            while time.monotonic() < until and self.gateway.returncode is None:
                judge = self.judge
                row = {
                    "elapsed_s": round(time.monotonic() - started, 1),
                    "rss_mib": round(process.memory_info().rss / 2**20, 2),
                    "fds": process.num_fds(),
                    "numbers_checked": judge.checked if judge else 0,
                    "wrong_numbers": len(judge.wrong) if judge else 0,
                    "frames": judge.frames if judge else 0,
                    "client_reconnects": self.clients_reconnected,
                    "fault": self.fault,
                }
                rows.append(row)
                if writer is None:
                    writer = csv.DictWriter(out, fieldnames=list(row))
                    writer.writeheader()
                writer.writerow(row)
                out.flush()
                await asyncio.sleep(self.args.sample_s)  # the sampling period
        return rows


def plot(rows: list[dict[str, Any]], png: Path, title: str) -> bool:
    """The RSS curve with the faults shaded; False if matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    minutes = [float(row["elapsed_s"]) / 60 for row in rows]
    rss = [float(row["rss_mib"]) for row in rows]
    fig, ax = plt.subplots(figsize=(11, 4.5))
    ax.plot(minutes, rss, color="tab:blue", label="gateway RSS")
    top = max(rss) * 1.45
    for i, row in enumerate(rows[:-1]):
        if row["fault"] != "none":
            ax.axvspan(minutes[i], minutes[i + 1], color="tab:orange", alpha=0.15, lw=0)
            if i == 0 or rows[i - 1]["fault"] != row["fault"]:
                ax.text(minutes[i], top * 0.98, str(row["fault"]), rotation=90, fontsize=6,
                        va="top", ha="left", color="tab:brown")  # fmt: skip
    ax.set_xlabel("minutes")
    ax.set_ylabel("RSS (MiB)")
    ax.set_ylim(0, top)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(png, dpi=110)
    plt.close(fig)
    return True


async def soak(args: argparse.Namespace) -> int:
    """Run it; print the summary; 1 if a wrong number was shown or the gateway died."""
    registry = load_registry(REPO / "intersections.yaml")
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    csv_path = RESULTS / f"soak-{stamp}.csv"
    run = Soak(args, registry)
    await run.start()
    assert run.sim is not None
    try:
        async with asyncio.timeout(60):
            await run.sim.ready.wait()
        judged = asyncio.create_task(run.judged())
        until = time.monotonic() + args.minutes * 60
        cycling = asyncio.create_task(run.cycle(until, settle_s=args.settle_s))
        rows = await run.sample(csv_path, until)
        cycling.cancel()
        judged.cancel()
        await asyncio.gather(cycling, judged, return_exceptions=True)
        alive = run.gateway is not None and run.gateway.returncode is None
    finally:
        await run.stop()
    judge = run.judge
    wrong = len(judge.wrong) if judge else -1
    rss = [row["rss_mib"] for row in rows]
    settled = [row["rss_mib"] for row in rows if row["elapsed_s"] >= 120] or rss
    summary = {
        "minutes": args.minutes,
        "samples": len(rows),
        "rss_start_mib": rss[0] if rss else None,
        "rss_peak_mib": max(rss) if rss else None,
        "rss_end_mib": rss[-1] if rss else None,
        "rss_after_2_min_min_max": [min(settled), max(settled)] if settled else None,
        "numbers_checked": judge.checked if judge else 0,
        "wrong_numbers": wrong,
        "first_wrong": [str(verdict) for verdict in judge.wrong[:5]] if judge else [],
        "gateway_alive": alive,
        "csv": str(csv_path.relative_to(REPO)),
    }
    png = csv_path.with_suffix(".png")
    if plot(rows, png, f"signal_gateway soak: {args.minutes:g} min, faults cycling"):
        summary["png"] = str(png.relative_to(REPO))
    print(json.dumps(summary))
    return 0 if wrong == 0 and alive else 1


def main() -> int:
    """Parse the flags and soak (or only re-plot a CSV)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--fault-every-s", type=float, default=10.0)
    parser.add_argument("--sample-s", type=float, default=5.0)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--settle-s", type=float, default=30.0, help="healthy city first (cold start: see docs)"
    )
    parser.add_argument("--plot", metavar="CSV", help="only draw the PNG of an earlier run")
    args = parser.parse_args()
    if args.plot:
        path = Path(args.plot)
        with path.open() as rows:
            table = list(csv.DictReader(rows))
        minutes = float(table[-1]["elapsed_s"]) / 60 if table else 0
        title = f"signal_gateway soak: {minutes:.0f} min, faults cycling"
        return 0 if plot(table, path.with_suffix(".png"), title) else 1
    return asyncio.run(soak(args))


if __name__ == "__main__":
    sys.exit(main())
