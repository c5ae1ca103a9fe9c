"""The whole benchmark, one command: ``python bench/run.py --clients 1000,5000,20000 --seconds 20``.

For every client count, in this order and on the same machine, with the server under test
pinned to core 0 and everything else (load generators, publisher, the feeding broker) on core 1:

* ``ours``: ``signal-gateway serve`` (uvicorn, websockets-sansio, the hub and TransportSink);
* ``naive``: the FastAPI relay of bench/naive_relay.py (baseline a);
* ``floor``: bench/c/floor.c writing the same frames to the same connections (baseline b);
* ``mosquitto``: a second Mosquitto fanning the raw controller stream out to as many MQTT
  subscribers (baseline c).

Then the transport comparison (bench/transports.py) at one client count, the ingest
micro-benchmark (bench/ingest.py) and the pure frame analysis (bench/frames.py). Prints a table
and writes docs/performance.md and docs/performance.png. ``--quick`` is a small, short run.
"""

from __future__ import annotations

import argparse
import array
import contextlib
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench import frames as frames_mod  # noqa: E402
from bench.procs import Child, busy_fraction, core_busy, proc_cpu_s, proc_rss  # noqa: E402
from bench.publisher import create_publog, reset_publog  # noqa: E402
from signal_gateway.core.registry import load_registry  # noqa: E402
from tests.support.mosquitto import MosquittoProcess, free_port  # noqa: E402

SERVER_CPU = 0
DRIVER_CPU = 1
PER_LOADGEN = 10_000  # connections per load-generator process (fd limit, one epoll loop)
FD_HEADROOM = 64  # descriptors a server needs besides its clients
BUILD = REPO / "bench" / ".build"
# Mosquitto's default leaves Nagle on for its outgoing sockets: with the receiver's delayed ACK
# a small message can wait up to 40 ms. Every broker here (and in production) sets it off.
BROKER_CONF = "set_tcp_nodelay true"
PYTHON = sys.executable


@dataclass
class Run:
    """What one system did with one client count."""

    system: str
    clients: int
    connected: int = 0
    seconds: float = 0.0
    frames: int = 0
    bytes: int = 0
    cpu_s: float = 0.0
    core_busy: float = 0.0
    loadgen_cpu: float = 0.0
    rss_before: int = 0
    rss_after: int = 0
    published: int = 0
    latency_ms: dict[str, float] = field(default_factory=dict)
    gateway_to_client_ms: dict[str, float] = field(default_factory=dict)
    publish_to_gateway_ms: dict[str, float] = field(default_factory=dict)
    snapshot_ms: dict[str, float] = field(default_factory=dict)
    closed: int = 0
    background: float = 0.0  # share of the server's core used by processes not ours
    extra: dict[str, Any] = field(default_factory=dict)
    error: str = ""

    @property
    def frames_per_s(self) -> float:
        """Frames delivered per second of wall time."""
        return self.frames / self.seconds if self.seconds else 0.0

    @property
    def frames_per_cpu_s(self) -> float:
        """Frames delivered per CPU second of the server."""
        return self.frames / self.cpu_s if self.cpu_s else 0.0

    @property
    def bytes_per_client_s(self) -> float:
        """Bytes received per client per second (WebSocket/MQTT framing included, TCP not)."""
        if not self.connected or not self.seconds:
            return 0.0
        return self.bytes / self.connected / self.seconds

    @property
    def rss_per_client(self) -> float:
        """Server RSS growth per connected client, bytes."""
        return (self.rss_after - self.rss_before) / self.connected if self.connected else 0.0


def quantile(ordered: Sequence[float], q: float) -> float:
    """The q-quantile of sorted values, linear between ranks (numpy's default)."""
    if not ordered:
        return float("nan")
    at = q * (len(ordered) - 1)
    low = int(at)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (at - low)


def percentiles(samples_us: Sequence[int]) -> dict[str, float]:
    """p50/p99/max in ms and the count of latency samples given in µs."""
    if not samples_us:
        return {"count": 0.0}
    ms = sorted(v / 1000.0 for v in samples_us)
    return {
        "count": float(len(ms)),
        "p50": quantile(ms, 0.50),
        "p99": quantile(ms, 0.99),
        "max": ms[-1],
    }


def read_samples(paths: Sequence[Path]) -> list[int]:
    """int32 samples (native order) from the load generators' files."""
    out = array.array("i")
    for path in paths:
        if path.exists():
            out.frombytes(path.read_bytes())
    return out.tolist()


def build_c() -> None:
    """Compile the C load generator and floor sender (-O2, zlib)."""
    BUILD.mkdir(parents=True, exist_ok=True)
    for name in ("loadgen", "floor"):
        src = REPO / "bench" / "c" / f"{name}.c"
        out = BUILD / name
        if out.exists() and out.stat().st_mtime > max(
            src.stat().st_mtime, (REPO / "bench" / "c" / "common.h").stat().st_mtime
        ):
            continue
        subprocess.run(
            ["gcc", "-O2", "-Wall", "-o", str(out), str(src), "-lz"], check=True, cwd=REPO
        )


def fd_limit() -> int:
    """The hard descriptor limit a child can raise itself to."""
    return resource.getrlimit(resource.RLIMIT_NOFILE)[1]


def max_clients() -> int:
    """The most clients one server process can hold here."""
    return fd_limit() - FD_HEADROOM


def wait_quiet(limit: float = 0.15, timeout_s: float = 30.0) -> float:
    """Wait (bounded) until both cores are mostly idle: this machine may be shared.

    Returns the busiest core's load in the last second sampled.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        before = core_busy()
        time.sleep(1.0)
        after = core_busy()
        load = max(busy_fraction(before, after, cpu) for cpu in range(len(after)))
        if load < limit or time.monotonic() > deadline:
            return load


SCRAPED = {
    "signal_gateway_flush_duration_seconds_count": "flushes",
    "signal_gateway_flush_duration_seconds_sum": "flush_s",
    'signal_gateway_frames_sent_total{endpoint="public"}': "frames_sent",
}


def scrape(url: str) -> dict[str, float]:
    """The gateway's flush and frame counters from /metrics (empty if it does not answer)."""
    out: dict[str, float] = {}
    with contextlib.suppress(OSError, ValueError), urllib.request.urlopen(url, timeout=5) as page:
        for line in page.read().decode().splitlines():
            name, _, value = line.rpartition(" ")
            if name in SCRAPED:
                out[SCRAPED[name]] = float(value)
    return out


def wait_http(url: str, timeout_s: float = 30.0) -> None:
    """Poll until ``url`` answers 200."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=1) as response:
            if response.status == 200:
                return
        time.sleep(0.1)
    raise TimeoutError(f"{url} not ready within {timeout_s} s")


def wait_port(port: int, timeout_s: float = 30.0) -> None:
    """Poll until something listens on 127.0.0.1:port."""
    import socket

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {port} within {timeout_s} s")


class Bench:
    """State shared by every phase of one run."""

    def __init__(self, args: argparse.Namespace, workdir: Path) -> None:
        self.args = args
        self.workdir = workdir
        self.frames_file = workdir / "frames.bin"
        self.publog = workdir / "publog"
        self.loadgen = str(BUILD / "loadgen")
        self.floor_bin = str(BUILD / "floor")
        self.counter = 0
        self.ours_deflated: dict[int, bool] = {}
        create_publog(self.publog)  # once: load generators map it; it is only zeroed later

    # -- pieces ---------------------------------------------------------------------------

    def loadgens(
        self,
        clients: int,
        port: int,
        *,
        mode: str = "ws",
        expect: str = "gateway",
        probes: int = 0,
        deflate: bool = True,
        latency: bool = True,
    ) -> list[Child]:
        browser = "1" if self.args.browser_headers else "0"
        """Start enough load-generator processes for ``clients`` connections (core 1)."""
        count = max(1, -(-clients // PER_LOADGEN))
        sample_every = max(1, clients // self.args.samplers)
        out: list[Child] = []
        for k in range(count):
            share = clients // count + (1 if k < clients % count else 0)
            srcs = ",".join(f"127.0.{1 + k}.{2 + j}" for j in range(4))
            self.counter += 1
            argv = [
                self.loadgen,
                "--mode",
                mode,
                "--port",
                str(port),
                "--conns",
                str(share),
                "--expect",
                expect,
                "--src",
                srcs,
                "--sample-every",
                str(sample_every),
                "--deflate",
                "1" if deflate else "0",
                "--browser",
                browser,
                "--probes",
                str(probes if k == 0 else 0),
                "--seconds",
                str(self.args.seconds),
                "--max-seconds",
                str(self.args.seconds + 400),
                "--ramp-timeout",
                "240",
                "--latfile",
                str(self.workdir / f"lat{self.counter}.bin"),
            ]
            if latency:
                argv += ["--publog", str(self.publog)]
            out.append(Child(f"loadgen{k}", argv, DRIVER_CPU))
        return out

    def publisher(self, broker_port: int) -> Child:
        """The city at real speed (or --speed), publishing into ``broker_port`` (core 1)."""
        reset_publog(self.publog)
        argv = [
            PYTHON,
            "-m",
            "bench.publisher",
            "--broker",
            f"127.0.0.1:{broker_port}",
            "--publog",
            str(self.publog),
            "--speed",
            str(self.args.speed),
            "--seconds",
            str(self.args.seconds + 600),
        ]
        return Child("publisher", argv, DRIVER_CPU, cwd=str(REPO))

    def measure(
        self,
        run: Run,
        server: Measured,
        gens: list[Child],
        extra_start: Sequence[Child] = (),
        readies: list[dict[str, Any]] | None = None,
        metrics_url: str | None = None,
    ) -> None:
        """Settle, then one measurement window: START, --seconds, STOP; fill ``run``."""
        if readies is None:
            readies = [g.expect("READY", 300) for g in gens]
        run.connected = sum(int(r.get("opened", 0)) for r in readies)
        run.extra["ramp"] = readies
        time.sleep(self.args.settle)
        run.rss_after = server.rss()
        cpu0 = server.cpu_s()
        gen_cpu0 = sum(g.cpu_s() for g in gens)
        busy0 = core_busy()
        scraped0 = scrape(metrics_url) if metrics_url else {}
        for g in gens:
            g.say("START")
        for child in extra_start:
            child.say("START")
        started = time.monotonic()
        time.sleep(self.args.seconds)
        for child in extra_start:
            child.say("STOP")
        for g in gens:
            g.say("STOP")
        results = [g.expect("RESULT", 60) for g in gens]
        if metrics_url:
            scraped1 = scrape(metrics_url)
            run.extra["server"] = {k: scraped1.get(k, 0.0) - v for k, v in scraped0.items()}
        run.seconds = time.monotonic() - started
        run.cpu_s = server.cpu_s() - cpu0
        run.loadgen_cpu = (sum(g.cpu_s() for g in gens) - gen_cpu0) / run.seconds
        run.core_busy = busy_fraction(busy0, core_busy(), SERVER_CPU)
        run.background = max(0.0, run.core_busy - run.cpu_s / run.seconds)
        run.frames = sum(int(r["frames"]) for r in results)
        run.bytes = sum(int(r["bytes"]) for r in results)
        run.closed = sum(int(r["closed"]) for r in results)
        run.seconds = min(float(r["seconds"]) for r in results)
        probes = [p for r in results for p in r.get("probes", [])]
        if probes:
            sub = sorted(float(p[0]) for p in probes)
            whole = sorted(float(p[1]) for p in probes)
            run.snapshot_ms = {
                "count": float(len(probes)),
                "p50": quantile(sub, 0.5),
                "max": sub[-1],
                "connect_p50": quantile(whole, 0.5),
                "connect_max": whole[-1],
            }
        numbers = range(self.counter - len(gens) + 1, self.counter + 1)
        lat = read_samples([self.workdir / f"lat{n}.bin" for n in numbers])
        gw = read_samples([self.workdir / f"lat{n}.bin.gw" for n in numbers])
        if lat:
            run.latency_ms = percentiles(lat)
        if gw:
            run.gateway_to_client_ms = percentiles(gw)
        ingest = read_samples([self.workdir / f"lat{n}.bin.in" for n in numbers])
        if ingest:
            run.publish_to_gateway_ms = percentiles(ingest)

    # -- phases ---------------------------------------------------------------------------

    def ours(self, clients: int, variant: str = "") -> Run:
        """The gateway as deployed: ``signal-gateway serve`` (``variant``: a measured proposal).

        Variants: ``flush50`` (SIGNAL_GATEWAY_FLUSH_MS=50), ``deflate`` (uvicorn's
        permessage-deflate on), ``gap10`` (10 ms for ingest between flushes); the last two
        through bench/gateway_variant.py.
        """
        run = Run("ours" + (f"/{variant}" if variant else ""), clients)
        with MosquittoProcess(BROKER_CONF) as broker, contextlib.ExitStack() as stack:
            assert broker.process is not None
            os.sched_setaffinity(broker.process.pid, {DRIVER_CPU})
            port = free_port()
            env = {
                "SIGNAL_GATEWAY_WS_MAX_CONNECTIONS_PER_IP": "1000000",
                "SIGNAL_GATEWAY_WS_MAX_CONNECTIONS": "1000000",
                "SIGNAL_GATEWAY_LOG_LEVEL": "warning",
            }
            if variant == "flush50":
                env["SIGNAL_GATEWAY_FLUSH_MS"] = "50"
            module = {
                "deflate": ["bench.gateway_variant", "--ws-deflate"],
                "gap10": ["bench.gateway_variant", "--min-gap-ms", "10"],
                "chunk500": ["bench.gateway_variant", "--chunk", "500"],
            }.get(variant, ["signal_gateway"])
            argv = [
                PYTHON,
                "-m",
                *module,
                "serve",
                "--broker",
                broker.url,
                "--port",
                str(port),
                "--host",
                "127.0.0.1",
            ]
            server = Child("gateway", argv, SERVER_CPU, env=env, cwd=str(REPO))
            stack.callback(server.stop)
            wait_http(f"http://127.0.0.1:{port}/readyz")
            pub = self.publisher(broker.port)
            stack.callback(pub.stop)
            stack.callback(pub.say, "STOP")
            pub.expect("PUBLISHING", 30)
            time.sleep(self.args.warm)  # every controller has reported: the city is live
            run.rss_before = server.rss()
            idle0, idle_t = server.cpu_s(), time.monotonic()
            time.sleep(self.args.warm)
            run.extra["ingest_cpu_per_s"] = (server.cpu_s() - idle0) / (time.monotonic() - idle_t)
            gens = self.loadgens(clients, port, probes=self.args.probes)
            for g in gens:
                stack.callback(g.stop)
            self.measure(run, server, gens, metrics_url=f"http://127.0.0.1:{port}/metrics")
            deflated = sum(int(r.get("deflated", 0)) for r in run.extra["ramp"])
            run.extra["deflated_clients"] = deflated
            if not variant:  # the floor then writes what ours wrote: deflated or plain
                self.ours_deflated[clients] = deflated > 0
        return run

    def naive(self, clients: int) -> Run:
        """Baseline (a): the FastAPI relay."""
        run = Run("naive", clients)
        with MosquittoProcess(BROKER_CONF) as broker, contextlib.ExitStack() as stack:
            assert broker.process is not None
            os.sched_setaffinity(broker.process.pid, {DRIVER_CPU})
            port = free_port()
            argv = [
                PYTHON,
                "-m",
                "bench.naive_relay",
                "--broker",
                f"127.0.0.1:{broker.port}",
                "--port",
                str(port),
            ]
            server = Child("naive", argv, SERVER_CPU, cwd=str(REPO))
            stack.callback(server.stop)
            wait_port(port)
            time.sleep(1.0)
            run.rss_before = server.rss()
            gens = self.loadgens(clients, port, expect="raw")
            for g in gens:
                stack.callback(g.stop)
            readies = [g.expect("READY", 300) for g in gens]
            pub = self.publisher(broker.port)  # after the ramp: the relay has no snapshot
            stack.callback(pub.stop)
            stack.callback(pub.say, "STOP")
            pub.expect("PUBLISHING", 30)
            time.sleep(self.args.settle)
            self.measure(run, server, gens, readies=readies)
        return run

    def floor(self, clients: int) -> Run:
        """Baseline (b): the C sender, the same frames, as fast as one core allows."""
        run = Run("floor", clients)
        with contextlib.ExitStack() as stack:
            port = free_port()
            deflate = self.ours_deflated.get(clients, False)
            run.extra["deflate"] = deflate
            argv = [
                self.floor_bin,
                "--port",
                str(port),
                "--conns",
                str(clients),
                "--frames",
                str(self.frames_file),
                "--deflate",
                "1" if deflate else "0",
                "--max-seconds",
                str(self.args.seconds + 400),
            ]
            server = Child("floor", argv, SERVER_CPU)
            stack.callback(server.stop)
            server.expect("LISTENING", 30)
            run.rss_before = server.rss()
            gens = self.loadgens(clients, port, expect="raw", latency=False)
            for g in gens:
                stack.callback(g.stop)
            server.expect("READY", 300)
            self.measure(run, server, gens, extra_start=[server])
            result = server.expect("RESULT", 30)
            run.extra["written"] = result
        return run

    def mosquitto(self, clients: int) -> Run:
        """Baseline (c): Mosquitto fanning the raw stream out to as many MQTT subscribers."""
        run = Run("mosquitto", clients)
        with MosquittoProcess(BROKER_CONF) as broker, contextlib.ExitStack() as stack:
            assert broker.process is not None
            os.sched_setaffinity(broker.process.pid, {SERVER_CPU})
            server = _Adopted("mosquitto", broker.process.pid)
            run.rss_before = server.rss()
            gens = self.loadgens(clients, broker.port, mode="mqtt", expect="raw", deflate=False)
            for g in gens:
                stack.callback(g.stop)
            readies = [g.expect("READY", 300) for g in gens]
            pub = self.publisher(broker.port)
            stack.callback(pub.stop)
            stack.callback(pub.say, "STOP")
            pub.expect("PUBLISHING", 30)
            time.sleep(self.args.settle)
            self.measure(run, server, gens, readies=readies)
        return run

    def transport(self, kind: str, loop: str, deflate: bool, clients: int) -> Run:
        """One WebSocket stack replaying the frames to ``clients`` connections."""
        run = Run(f"{kind}/{loop}/{'deflate' if deflate else 'plain'}", clients)
        with contextlib.ExitStack() as stack:
            port = free_port()
            argv = [
                PYTHON,
                "-m",
                "bench.transports",
                "--kind",
                kind,
                "--port",
                str(port),
                "--frames",
                str(self.frames_file),
                "--loop",
                loop,
                "--max-seconds",
                str(self.args.seconds + 400),
            ]
            server = Child(kind, argv, SERVER_CPU, cwd=str(REPO))
            stack.callback(server.stop)
            server.expect("LISTENING", 60)
            time.sleep(0.5)
            run.rss_before = server.rss()
            gens = self.loadgens(clients, port, expect="raw", deflate=deflate, latency=False)
            for g in gens:
                stack.callback(g.stop)
            self.measure(run, server, gens, extra_start=[server])
            run.extra["server"] = server.expect("RESULT", 30)
        return run


class Measured(Protocol):
    """A server process whose CPU and memory a phase measures."""

    def cpu_s(self) -> float:
        """User + system CPU seconds so far."""

    def rss(self) -> int:
        """Resident set size, bytes."""


class _Adopted:
    """A process we did not start through Child (the broker), measured the same way."""

    def __init__(self, name: str, pid: int) -> None:
        self.name = name
        self.pid = pid

    def cpu_s(self) -> float:
        return proc_cpu_s(self.pid)

    def rss(self) -> int:
        return proc_rss(self.pid)


# -- report -------------------------------------------------------------------------------


def versions() -> dict[str, str]:
    """Versions of everything measured."""
    from importlib.metadata import version

    out = {"python": platform.python_version(), "kernel": platform.release()}
    for pkg in ("uvicorn", "websockets", "uvloop", "fastapi", "aiomqtt", "pydantic", "picows"):
        with contextlib.suppress(Exception):
            out[pkg] = version(pkg)
    with contextlib.suppress(Exception):
        mosq = subprocess.run(["mosquitto", "-h"], capture_output=True, text=True, check=False)
        out["mosquitto"] = mosq.stdout.splitlines()[0].split()[2]
    with contextlib.suppress(Exception):
        gcc = subprocess.run(["gcc", "--version"], capture_output=True, text=True, check=False)
        out["gcc"] = gcc.stdout.splitlines()[0]
    return out


def machine() -> str:
    """CPU model, cores, memory."""
    model = "?"
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as info:
        for line in info:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{model}, {os.cpu_count()} cores, {mem:.0f} GiB, Linux {platform.release()}"


def fmt(value: float, digits: int = 0) -> str:
    """A number for the table ('–' when missing)."""
    if value != value or value == 0:
        return "–"
    return f"{value:,.{digits}f}"


def table_rows(runs: list[Run]) -> list[list[str]]:
    """The main table: one row per (clients, system)."""
    rows = []
    for r in runs:
        lat = r.latency_ms
        snap = r.snapshot_ms
        rows.append(
            [
                f"{r.clients:,}",
                r.system,
                f"{r.connected:,}",
                fmt(lat.get("p50", 0), 1),
                fmt(lat.get("p99", 0), 1),
                fmt(lat.get("max", 0), 1),
                fmt(r.frames_per_s),
                fmt(r.frames_per_cpu_s),
                fmt(r.cpu_s / r.seconds * 100 if r.seconds else 0, 0),
                fmt(r.rss_per_client / 1024, 1),
                fmt(r.bytes_per_client_s),
                fmt(snap.get("p50", 0), 1) + " / " + fmt(snap.get("max", 0), 1) if snap else "–",
                fmt(r.background * 100, 0) if r.background >= 0.005 else "0",
            ]
        )
    return rows


HEAD = [
    "clients",
    "system",
    "connected",
    "p50 ms",
    "p99 ms",
    "max ms",
    "frames/s",
    "frames/CPU-s",
    "CPU %",
    "RSS KiB/client",
    "B/s/client",
    "snapshot ms p50 / max",
    "other load %",
]


def markdown_table(head: list[str], rows: list[list[str]]) -> str:
    """A GitHub table."""
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def text_table(head: list[str], rows: list[list[str]]) -> str:
    """A fixed-width table for the terminal."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(head)]
    out = ["  ".join(h.rjust(w) for h, w in zip(head, widths, strict=True))]
    out += ["  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
    return "\n".join(out)


def transport_rows(runs: list[Run]) -> list[list[str]]:
    """The transport comparison table."""
    rows = []
    for r in runs:
        rows.append(
            [
                r.system,
                f"{r.connected:,}",
                fmt(r.frames_per_s),
                fmt(r.frames_per_cpu_s),
                fmt(r.cpu_s / r.seconds * 100 if r.seconds else 0, 0),
                fmt(r.rss_per_client / 1024, 1),
                fmt(r.bytes_per_client_s),
                fmt(r.loadgen_cpu * 100, 0),
                fmt(r.background * 100, 0) if r.background >= 0.005 else "0",
                r.error or "",
            ]
        )
    return rows


TRANSPORT_HEAD = [
    "stack / loop / client offer",
    "connected",
    "frames/s delivered",
    "frames/CPU-s",
    "server CPU %",
    "RSS KiB/client",
    "B/s/client",
    "loadgen CPU %",
    "other load %",
    "note",
]


def plot(runs: list[Run], path: Path) -> None:
    """Latency p50/p99 and server CPU against client count, per system."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    for system, colour in (("ours", "C0"), ("naive", "C3"), ("mosquitto", "C2"), ("floor", "C7")):
        rs = [r for r in runs if r.system == system and r.connected]
        rs.sort(key=lambda r: r.clients)
        if not rs:
            continue
        xs = [r.connected for r in rs]
        if system != "floor":
            p50 = [r.latency_ms.get("p50", float("nan")) for r in rs]
            p99 = [r.latency_ms.get("p99", float("nan")) for r in rs]
            ax1.plot(xs, p99, "-o", color=colour, label=f"{system} p99")
            ax1.plot(xs, p50, "--", color=colour, alpha=0.6, label=f"{system} p50")
        ax2.plot(xs, [r.cpu_s / r.seconds * 100 for r in rs], "-o", color=colour, label=system)
    ax1.axhline(150, color="k", lw=0.8, ls=":", label="target p99 150 ms")
    ax1.set_xscale("log")
    ax1.set_yscale("log")
    ax1.set_xlabel("connected full-city clients")
    ax1.set_ylabel("publish → client latency, ms")
    ax1.set_title("Latency (city at real speed)")
    ax1.legend(fontsize=7)
    ax2.set_xscale("log")
    ax2.set_xlabel("connected full-city clients")
    ax2.set_ylabel("server CPU, % of one core")
    ax2.set_title("Server CPU (pinned to one core)")
    ax2.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def ratio(a: float, b: float) -> str:
    """a / b, formatted."""
    return f"{a / b:.2f}" if b else "–"


def write_report(
    args: argparse.Namespace,
    runs: list[Run],
    transports: list[Run],
    ingest: dict[str, float],
    analysis: dict[str, float],
    started: str,
    elapsed_s: float,
) -> str:
    """docs/performance.md, regenerated by every full run (hand-written analysis is kept)."""
    by = {(r.system, r.clients): r for r in runs}
    counts = sorted({r.clients for r in runs})
    ratio_lines = []
    for n in counts:
        ours, floor, naive, mq = (by.get((s, n)) for s in ("ours", "floor", "naive", "mosquitto"))
        if ours is None:
            continue
        line = [f"- **{ours.connected:,} clients**:"]
        if floor:
            share = ratio(ours.frames_per_cpu_s, floor.frames_per_cpu_s)
            line.append(
                f"ours/floor frames per CPU-second = {share}"
                f" ({fmt(ours.frames_per_cpu_s)} vs {fmt(floor.frames_per_cpu_s)});"
            )
        if naive:
            slower = ratio(naive.latency_ms.get("p99", 0), ours.latency_ms.get("p99", 0))
            line.append(
                f"naive p99 / ours p99 = {slower},"
                f" naive delivered {fmt(naive.frames_per_s)} frames/s"
                f" of the {fmt(naive.clients * analysis['messages_per_s'])} it owed;"
            )
        if mq:
            line.append(
                f"Mosquitto CPU / ours CPU = {ratio(mq.cpu_s, ours.cpu_s)}"
                f" (Mosquitto p99 {fmt(mq.latency_ms.get('p99', 0), 1)} ms,"
                f" {fmt(mq.bytes_per_client_s)} B/s per subscriber)."
            )
        ratio_lines.append(" ".join(line))
    tby = {r.system: r for r in transports if not r.error}
    for offer in ("plain", "deflate"):
        new = tby.get(f"uvicorn-transport/uvloop/{offer}")
        old = tby.get(f"uvicorn-transport-legacy/uvloop/{offer}")
        if new and old:
            ratio_lines.append(
                f"- **TransportSink, this change vs before ({offer} clients)**: frames per"
                f" CPU-second {ratio(new.frames_per_cpu_s, old.frames_per_cpu_s)}x"
                f" ({fmt(new.frames_per_cpu_s)} vs {fmt(old.frames_per_cpu_s)}), RSS per client"
                f" {fmt(new.rss_per_client / 1024, 1)} vs {fmt(old.rss_per_client / 1024, 1)} KiB."
            )
    for variant in ("chunk500", "gap10", "deflate", "flush50"):
        var = next((r for r in runs if r.system == f"ours/{variant}" and not r.error), None)
        base = by.get(("ours", var.clients)) if var else None
        if var and base:
            p99 = (fmt(var.latency_ms.get("p99", 0), 1), fmt(base.latency_ms.get("p99", 0), 1))
            cpu = (fmt(var.cpu_s / var.seconds * 100), fmt(base.cpu_s / base.seconds * 100))
            rate = (fmt(var.bytes_per_client_s), fmt(base.bytes_per_client_s))
            mem = (fmt(var.rss_per_client / 1024, 1), fmt(base.rss_per_client / 1024, 1))
            ratio_lines.append(
                f"- **Proposal `{variant}` at {var.connected:,} clients** (vs ours, same run):"
                f" p99 {p99[0]} vs {p99[1]} ms, CPU {cpu[0]} vs {cpu[1]} %,"
                f" {rate[0]} vs {rate[1]} B/s per client, RSS/client {mem[0]} vs {mem[1]} KiB."
            )
    ours_rows = [r for r in runs if r.system == "ours" and r.publish_to_gateway_ms]
    for r in ours_rows:
        ratio_lines.append(
            f"- Latency split at {r.connected:,} clients: publish → gateway receive p50/p99"
            f" {fmt(r.publish_to_gateway_ms.get('p50', 0), 1)} /"
            f" {fmt(r.publish_to_gateway_ms.get('p99', 0), 1)} ms; gateway receive → client"
            f" {fmt(r.gateway_to_client_ms.get('p50', 0), 1)} /"
            f" {fmt(r.gateway_to_client_ms.get('p99', 0), 1)} ms."
        )
    vers = versions()
    lines = [
        "# Performance",
        "",
        "<!-- generated by bench/run.py; the sections after 'Analysis' are kept across runs -->",
        "",
        "Runs: "
        + "; ".join(
            f"{h.split(': ', 1)[0]} `{h.split(': ', 1)[1]}`" for h in getattr(args, "history", [])
        )
        + ("; " if getattr(args, "history", []) else "")
        + f"{started} ({elapsed_s / 60:.0f} min) `python bench/run.py {' '.join(sys.argv[1:])}`"
        + (" (phases with over 15 % other load re-run)" if args.redo_from else "")
        + ".",
        "",
        "## Setup",
        "",
        f"- Machine: {machine()}. All traffic on loopback.",
        f"- Server under test pinned to **core {SERVER_CPU}** (`os.sched_setaffinity` before"
        f" exec); load generators (C, epoll, {PER_LOADGEN:,} connections per process, source"
        f" addresses 127.0.k.2-5), the publisher and the feeding Mosquitto on **core"
        f" {DRIVER_CPU}**.",
        "- Versions: " + ", ".join(f"{k} {v}" for k, v in vers.items()) + ".",
        f"- Descriptor limit: {fd_limit():,} per process (hard; this sandbox cannot raise it), so"
        f" one server holds at most {max_clients():,} clients here.",
        f"- Load: the simulated city at speed {args.speed:g} (simulator.plan: every change and a"
        f" 1 Hz heartbeat per controller, {analysis['messages_per_s']:.0f} messages/s,"
        f" {analysis['view_changes_per_s']:.0f} view changes/s), published by bench/publisher.py"
        " over one MQTT connection; every client subscribes to the whole city and offers"
        " permessage-deflate like a browser (`client_max_window_bits`).",
        f"- Latency: publish (CLOCK_REALTIME just before the write) → the read that completes"
        f" the frame, on ~{args.samplers} sampling connections spread over the fan-out order;"
        " a view is matched to its message by `updated_ms` (gateway receive time), raw"
        " messages by `seq`.",
        f"- Window: {args.seconds:g} s per system after the ramp and 2 s of settling.",
        "",
        "## Results",
        "",
        markdown_table(HEAD, table_rows(runs)),
        "",
        "frames/CPU-s: frames delivered per CPU second of the server process (the floor's is its"
        " own CPU). CPU %: of one core. RSS/client: server RSS growth from before the first"
        " client to after the last subscribed, divided by the clients. B/s/client: WebSocket"
        " (or MQTT) bytes received, compressed where negotiated. Snapshot: a new client"
        " connecting during the window, subscribe → whole snapshot received. Other load: share"
        " of the server's core used by processes that are not the benchmark's (this machine is"
        " shared with other work; each phase first waits, bounded, for a quiet machine).",
        "",
        "![latency and CPU against clients](performance.png)",
        "",
        "### Ratios (same run)",
        "",
        *ratio_lines,
        "",
        "### Transports (same frames, as fast as each stack goes)",
        "",
        markdown_table(TRANSPORT_HEAD, transport_rows(transports)) if transports else "(skipped)",
        "",
        "### Ingest (in-process, one core)",
        "",
        f"- `wire.parse_spat` + `City.on_spat`: **{ingest.get('parse_judge_per_s', 0):,.0f}"
        f" messages/s** ({ingest.get('us_per_message', 0):.0f} µs each) over"
        f" {ingest.get('messages', 0):,.0f} real controller messages;"
        f" `MqttIngest.handle` (topic, counters too): {ingest.get('handle_per_s', 0):,.0f}/s.",
        f"- `Hub.flush` to {ingest.get('hub_clients', 0):,.0f} full-city clients with no-op"
        f" sinks: {ingest.get('hub_hub_us_per_client', 0):.2f} µs per client per flush; the bare"
        f" loop `if sink.ready(): sink.send(frame)`:"
        f" {ingest.get('hub_bare_loop_us_per_client', 0):.2f} µs.",
        f"- In the live gateway the city's {analysis['messages_per_s']:.0f} messages/s cost"
        f" {by.get(('ours', counts[0]), Run('', 0)).extra.get('ingest_cpu_per_s', 0) * 100:.1f} %"
        " of the core with no client connected.",
        "",
        "### Traffic per full-city client (pure, bench/frames.py)",
        "",
        f"- {analysis['frames_per_s']:.1f} update frames/s of {analysis['views_per_frame']:.1f}"
        f" views ({analysis['mean_frame_bytes']:,.0f} B): **{analysis['bytes_per_s']:,.0f}"
        " B/s uncompressed**;",
        f"- permessage-deflate, each frame compressed once and shared:"
        f" {analysis['bytes_per_s_deflate_shared']:,.0f} B/s; with a per-client context"
        f" (uvicorn's default): {analysis['bytes_per_s_deflate_context']:,.0f} B/s;",
        f"- a compact view encoding (no nulls, min/max/likely omitted when equal to the end):"
        f" {analysis['bytes_per_s_compact']:,.0f} B/s, deflated and shared"
        f" {analysis['bytes_per_s_compact_deflate']:,.0f} B/s;",
        f"- full-city snapshot: {analysis['snapshot_bytes']:,.0f} B,"
        f" {analysis['snapshot_bytes_deflate']:,.0f} B deflated.",
        "",
    ]
    return "\n".join(lines)


ANALYSIS_MARK = "## Analysis"


def merge_docs(generated: str, path: Path) -> str:
    """Keep the hand-written part (from '## Analysis' on) of an existing docs file."""
    if path.exists():
        old = path.read_text()
        at = old.find(ANALYSIS_MARK)
        if at >= 0:
            return generated.rstrip() + "\n\n" + old[at:]
    return generated


def main(argv: Sequence[str] | None = None) -> int:
    """Run everything and write the report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--clients", default="1000,5000,20000")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--speed", type=float, default=1.0, help="city speed (1 = real)")
    parser.add_argument("--quick", action="store_true", help="small and short: 200,1000 x 5 s")
    parser.add_argument("--systems", default="ours,naive,floor,mosquitto")
    parser.add_argument(
        "--transport-clients",
        type=int,
        default=0,
        help="client count of the transport comparison (default: middle count)",
    )
    parser.add_argument("--transports", default="all", help="'all', 'none' or a list of kinds")
    parser.add_argument("--samplers", type=int, default=200)
    parser.add_argument("--probes", type=int, default=20)
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "performance.md")
    parser.add_argument("--png", type=Path, default=REPO / "docs" / "performance.png")
    parser.add_argument("--json", type=Path, default=None, help="also dump raw results here")
    parser.add_argument("--no-ingest", action="store_true")
    parser.add_argument(
        "--browser-headers",
        action="store_true",
        help="clients send a desktop browser's upgrade headers (User-Agent, Origin, ...)",
    )
    parser.add_argument(
        "--redo-from",
        type=Path,
        default=None,
        help="a previous --json: keep its results, redo only its noisy or failed phases",
    )
    parser.add_argument(
        "--variant-clients", type=int, default=0, help="client count of the variants (largest)"
    )
    parser.add_argument(
        "--variants",
        default="chunk500,deflate,flush50",
        help="proposals measured on the gateway at the middle client count ('' for none)",
    )
    parser.add_argument("--capture-seconds", type=float, default=60.0, help="city time captured")
    parser.add_argument("--ingest-seconds", type=float, default=60.0, help="city time ingested")
    parser.add_argument("--warm", type=float, default=3.0, help="s for the city to go live")
    parser.add_argument("--settle", type=float, default=2.0, help="s between ramp and window")
    parser.add_argument(
        "--smoke", action="store_true", help="the test suite's seconds-long run of every phase"
    )
    args = parser.parse_args(argv)
    if args.smoke:
        args.clients, args.seconds, args.probes, args.samplers = "20", 1.0, 2, 10
        args.variants = ""
        args.capture_seconds, args.ingest_seconds, args.warm, args.settle = 6.0, 3.0, 1.0, 0.3
        if args.transports == "all":
            args.transports = "uvicorn-transport"
    if args.quick:
        args.clients = "200,1000"
        args.seconds = min(args.seconds, 5.0)
        args.probes = min(args.probes, 5)
        args.ingest_seconds = min(args.ingest_seconds, 10.0)
        args.variants = ""
        if args.transports == "all":
            args.transports = ",".join(
                (
                    "uvicorn-transport",
                    "uvicorn-transport-legacy",
                    "uvicorn-asgi",
                    "websockets-broadcast",
                )
            )
    if os.cpu_count() is None or (os.cpu_count() or 0) < 2:
        print("needs 2 cores (server on one, load on the other)", file=sys.stderr)
        return 2
    limit = max_clients()
    counts = []
    for part in args.clients.split(","):
        n = int(part)
        if n > limit:
            print(f"note: {n:,} clients exceed this machine's descriptor limit; using {limit:,}")
            n = limit
        counts.append(n)
    systems = [s for s in args.systems.split(",") if s]
    os.sched_setaffinity(0, {DRIVER_CPU})  # the orchestrator stays off the server's core
    started_at = time.strftime("%Y-%m-%d %H:%M %Z")
    t0 = time.monotonic()
    build_c()
    os.chdir(REPO)
    registry = load_registry(REPO / "intersections.yaml")
    workdir = Path(tempfile.mkdtemp(prefix="sg-bench-"))
    try:
        print("capturing the frames of a full-city client (60 s of city time)...", flush=True)
        capture = frames_mod.capture(registry, args.capture_seconds, speed=args.speed)
        frames_mod.write_frames(capture.frames, workdir / "frames.bin")
        analysis = frames_mod.analyse(capture)
        ingest: dict[str, float] = {}
        if not args.no_ingest:
            print("ingest micro-benchmark (core 0)...", flush=True)
            out = subprocess.run(
                [
                    PYTHON,
                    "-m",
                    "bench.ingest",
                    "--cpu",
                    str(SERVER_CPU),
                    "--seconds",
                    str(args.ingest_seconds),
                    "--repeats",
                    "1" if args.smoke else "3",
                ],
                capture_output=True,
                text=True,
                check=True,
                cwd=REPO,
            )
            ingest = json.loads(out.stdout)
            hub_clients = "200" if args.smoke else "5000"
            out = subprocess.run(
                [
                    PYTHON,
                    "-m",
                    "bench.hub_micro",
                    "--cpu",
                    str(SERVER_CPU),
                    "--clients",
                    hub_clients,
                ],
                capture_output=True,
                text=True,
                check=True,
                cwd=REPO,
            )
            ingest.update({f"hub_{k}": v for k, v in json.loads(out.stdout).items()})
        bench = Bench(args, workdir)
        history: list[str] = []
        runs: list[Run] = []
        transports: list[Run] = []
        if args.redo_from:  # keep a previous run's results, redo its noisy or failed phases
            old = json.loads(args.redo_from.read_text())
            history = list(old.get("history", []))
            runs = [Run(**r) for r in old["runs"]]
            transports = [Run(**r) for r in old["transports"]]
            ingest = old["ingest"] or ingest
            for r in runs:
                if r.system == "ours" and "deflated_clients" in r.extra:
                    bench.ours_deflated[r.clients] = r.extra["deflated_clients"] > 0
            runs = [
                r if _clean(r) else phase(bench, r.system, r.clients, retry=False) for r in runs
            ]
            transports = [
                r if _clean(r) else phase(bench, r.system, r.clients, retry=False)
                for r in transports
            ]
        else:
            for n in counts:
                runs += [phase(bench, system, n, retry=not args.smoke) for system in systems]
            if args.variants and "ours" in systems:
                vn = args.variant_clients or counts[-1]
                runs += [
                    phase(bench, f"ours/{v}", vn, retry=not args.smoke)
                    for v in args.variants.split(",")
                ]
            if args.transports != "none":
                tn = args.transport_clients or counts[len(counts) // 2]
                for kind, loop, deflate in _transport_plan(args.transports, args.smoke):
                    name = f"{kind}/{loop}/{'deflate' if deflate else 'plain'}"
                    transports.append(phase(bench, name, tn, retry=not args.smoke))
        print()
        print(text_table(HEAD, table_rows(runs)))
        if transports:
            print()
            print(text_table(TRANSPORT_HEAD, transport_rows(transports)))
        print()
        print("ingest: " + json.dumps(ingest))
        print("traffic per full-city client: " + json.dumps(analysis))
        args.history = history
        this_command = f"{started_at}: python bench/run.py {' '.join(sys.argv[1:])}"
        report = write_report(
            args, runs, transports, ingest, analysis, started_at, time.monotonic() - t0
        )
        args.out.write_text(merge_docs(report, args.out))
        try:
            plot(runs, args.png)
        except ImportError:
            print("matplotlib is not installed: no plot (pip install -r bench/requirements.txt)")
        if args.json:
            args.json.write_text(
                json.dumps(
                    {
                        "history": [*history, this_command],
                        "runs": [asdict(r) for r in runs],
                        "transports": [asdict(r) for r in transports],
                        "ingest": ingest,
                        "analysis": analysis,
                    },
                    indent=1,
                )
            )
        print(f"\nwrote {args.out} and {args.png}")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


NOISY = 0.15  # share of the server's core taken by other processes that makes a phase redone


def _clean(run: Run) -> bool:
    return not run.error and run.background <= NOISY


def phase(bench: Bench, system: str, clients: int, *, retry: bool) -> Run:
    """Run one phase (``ours``, ``ours/<variant>``, a baseline, or ``kind/loop/offer``).

    A phase that fails, or that shared the server's core with other work (this machine is
    shared), is run once more after waiting for a quiet machine; the cleaner result is kept.
    """
    quiet = wait_quiet() if retry else 0.0
    print(f"{system}: {clients:,} clients (machine load before: {quiet:.0%})...", flush=True)
    try:
        if system.count("/") == 2:
            kind, loop, offer = system.split("/")
            run = bench.transport(kind, loop, offer == "deflate", clients)
        elif system.startswith("ours/"):
            run = bench.ours(clients, system.split("/", 1)[1])
        else:
            run = getattr(bench, system)(clients)
    except Exception as exc:  # one failed phase must not lose the others
        run = Run(system, clients, error=f"{type(exc).__name__}: {exc}"[:300])
    print("  " + json.dumps(_summary(run)), flush=True)
    if retry and not _clean(run):
        print("  noisy or failed: once more after a quiet spell", flush=True)
        wait_quiet(timeout_s=90.0)
        again = phase(bench, system, clients, retry=False)
        if again.error == "" and (run.error or again.background < run.background):
            run = again
    return run


def _transport_plan(spec: str, smoke: bool = False) -> Iterator[tuple[str, str, bool]]:
    from bench.transports import KINDS

    kinds = KINDS if spec == "all" else tuple(k for k in spec.split(",") if k)
    if smoke:
        yield from ((kind, "uvloop", False) for kind in kinds)
        return
    for kind in kinds:
        for deflate in (False, True):
            if kind == "picows" and deflate:
                continue  # picows has no permessage-deflate
            yield kind, "uvloop", deflate
    for kind in ("uvicorn-transport", "websockets-broadcast"):
        if kind in kinds:
            yield kind, "asyncio", False


def _summary(run: Run) -> dict[str, Any]:
    return {
        "system": run.system,
        "connected": run.connected,
        "other%": round(run.background * 100),
        "frames/s": round(run.frames_per_s),
        "frames/cpu-s": round(run.frames_per_cpu_s),
        "cpu%": round(run.cpu_s / run.seconds * 100) if run.seconds else 0,
        "p50": round(run.latency_ms.get("p50", 0), 1),
        "p99": round(run.latency_ms.get("p99", 0), 1),
        "rss/client KiB": round(run.rss_per_client / 1024, 1),
        "B/s/client": round(run.bytes_per_client_s),
        "loadgen%": round(run.loadgen_cpu * 100),
        "error": run.error,
    }


if __name__ == "__main__":
    sys.exit(main())
