"""Run the shipped deploy/ configurations for real: the city's Mosquitto, gateway replicas, nginx.

Each configuration is read from ``deploy/`` and only *rewritten* (ports, paths): every rewrite
must find exactly the text it expects, so a change to the shipped file that the tests do not
follow fails loudly instead of testing something else.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiomqtt
import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
MOSQUITTO_CONF = DEPLOY / "mosquitto" / "mosquitto.conf"
ACL = DEPLOY / "mosquitto" / "acl"
GEN_PASSWORDS = DEPLOY / "mosquitto" / "gen_passwords.py"
NGINX_SITE = DEPLOY / "nginx" / "signal-gateway.conf"
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
RUNNING_AS_ROOT = os.geteuid() == 0


def free_ports(count: int) -> list[int]:
    """``count`` distinct loopback TCP ports nothing listens on right now."""
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]


def free_port() -> int:
    """One loopback TCP port nothing listens on right now."""
    return free_ports(1)[0]


def wait_for_port(
    port: int, timeout_s: float = 10.0, process: subprocess.Popen[bytes] | None = None
) -> None:
    """Poll until something accepts TCP connections on 127.0.0.1:port (TimeoutError if not,
    at once if ``process`` exits meanwhile)."""
    deadline = time.monotonic() + timeout_s
    while True:
        if process is not None and process.poll() is not None:
            raise TimeoutError(f"exited with {process.returncode} before listening on {port}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"nothing listens on 127.0.0.1:{port}") from None
            time.sleep(0.01)  # polling interval of the probe, not a synchronisation


def now_ms() -> int:
    """Wall clock, Unix ms (the gateway's clock too: same machine)."""
    return time.time_ns() // 1_000_000


def rewrite(text: str, old: str, new: str, *, count: int | None = 1) -> str:
    """Replace ``old`` by ``new``; fail unless it occurs ``count`` times (None: at least once)."""
    found = text.count(old)
    if (count is None and found == 0) or (count is not None and found != count):
        expected = "at least once" if count is None else f"{count} time(s)"
        raise AssertionError(f"shipped config changed: {old!r} found {found}, expected {expected}")
    return text.replace(old, new)


# ----------------------------------------------------------------------------- TLS material


@dataclass(frozen=True)
class TlsFiles:
    """A throwaway CA and a server certificate it signed for 127.0.0.1 / localhost."""

    ca: Path
    cert: Path
    key: Path

    def client_context(self) -> ssl.SSLContext:
        """What a controller or gateway configured with the city's CA uses."""
        return ssl.create_default_context(cafile=str(self.ca))


def make_tls(directory: Path) -> TlsFiles:
    """Generate the CA and the server certificate with the openssl command line."""

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=directory)

    curve = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    openssl(
        "req", "-x509", *curve, "-days", "2", "-subj", "/CN=Test city CA",
        "-keyout", "ca.key", "-out", "ca.crt",
    )  # fmt: skip
    openssl("req", *curve, "-subj", "/CN=localhost", "-keyout", "server.key", "-out", "server.csr")
    (directory / "san.ext").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    openssl(
        "x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
        "-CAcreateserial", "-days", "2", "-extfile", "san.ext", "-out", "server.crt",
    )  # fmt: skip
    return TlsFiles(directory / "ca.crt", directory / "server.crt", directory / "server.key")


# ----------------------------------------------------------------------------- credentials


def run_gen_passwords(*args: str) -> subprocess.CompletedProcess[str]:
    """``python deploy/mosquitto/gen_passwords.py ARGS`` from the repository root."""
    return subprocess.run(
        [sys.executable, str(GEN_PASSWORDS), *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
    )


def read_secrets(path: Path) -> dict[str, str]:
    """The plaintext ``user:password`` lines the generator wrote."""
    lines = path.read_text().splitlines()
    return dict(line.split(":", 1) for line in lines if line and not line.startswith("#"))


# ----------------------------------------------------------------------------- the city broker


class CityBroker:
    """Mosquitto running deploy/mosquitto/mosquitto.conf with its ACL and generated passwords.

    ``port`` is the loopback plain listener (gateways), ``tls_port`` the TLS listener
    (controllers); both free ports. The broker runs as it would in production: started by root
    it drops to the ``mosquitto`` user, so the files are owned as docs/deploy.md says.
    """

    def __init__(self, gateways: int = 2) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="sg-city-broker-"))
        self.port, self.tls_port = free_ports(2)
        self.etc = self.dir / "etc"
        self.data = self.dir / "data"
        self.etc.mkdir()
        self.data.mkdir()
        self.log_path = self.dir / "mosquitto.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.tls = make_tls(self.etc)
        shutil.copy(ACL, self.etc / "acl")
        group = ("--group", "mosquitto") if RUNNING_AS_ROOT else ()
        done = run_gen_passwords(
            "--registry", str(REPO / "intersections.yaml"), "--gateways", str(gateways),
            "--passwd", str(self.etc / "passwd"), "--secrets", str(self.dir / "secrets"), *group,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        self.credentials = read_secrets(self.dir / "secrets")
        if RUNNING_AS_ROOT:  # Mosquitto drops to the mosquitto user before reading its files
            for path in (self.dir, self.etc, self.data, self.tls.key):
                shutil.chown(path, "mosquitto", "mosquitto")

    def render(self, text: str) -> str:
        """The shipped configuration on this broker's ports and paths."""
        text = rewrite(text, "/etc/mosquitto/signal_gateway/", f"{self.etc}/", count=None)
        text = rewrite(text, "/var/lib/mosquitto/", f"{self.data}/")
        text = rewrite(text, "\nlog_dest stderr\n", f"\nlog_dest file {self.log_path}\n")
        text = rewrite(text, "\nlistener 1883 127.0.0.1\n", f"\nlistener {self.port} 127.0.0.1\n")
        return rewrite(text, "\nlistener 8883\n", f"\nlistener {self.tls_port} 127.0.0.1\n")

    def start(self) -> CityBroker:
        """Start Mosquitto with the rendered config; wait until both listeners accept.

        A port taken by someone else between choosing and binding it: new ports, once more.
        """
        for attempt in range(3):
            self.log_path.write_text("")
            if RUNNING_AS_ROOT:
                shutil.chown(self.log_path, "mosquitto", "mosquitto")
            conf = self.dir / "mosquitto.conf"
            conf.write_text(self.render(MOSQUITTO_CONF.read_text()))
            process = subprocess.Popen(
                [MOSQUITTO, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
            self.process = process
            try:
                wait_for_port(self.port, process=process)
                wait_for_port(self.tls_port, process=process)
                return self
            except TimeoutError:
                self.stop()
                if "Address already in use" in self.log() and attempt < 2:
                    self.port, self.tls_port = free_ports(2)
                    continue
                raise AssertionError(f"mosquitto did not start:\n{self.log()}") from None
        raise AssertionError("unreachable")

    def stop(self) -> None:
        """Kill the broker and wait for it."""
        if self.process is not None:
            if self.process.poll() is None:
                self.process.kill()
            self.process.wait(timeout=10)
            self.process = None

    def close(self) -> None:
        """Stop it and remove its directory."""
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def log(self) -> str:
        """The broker's log so far."""
        return self.log_path.read_text() if self.log_path.exists() else ""

    def password(self, user: str) -> str:
        """The generated password of a user (a controller id or gateway-N)."""
        return self.credentials[user]

    def url_for(self, user: str, *, tls: bool = False) -> str:
        """The broker URL a gateway setting or the simulator takes, with this user's password."""
        scheme, port = ("mqtts", self.tls_port) if tls else ("mqtt", self.port)
        return f"{scheme}://{user}:{self.password(user)}@127.0.0.1:{port}"

    def client(self, user: str | None, *, tls: bool = False, **kwargs: Any) -> aiomqtt.Client:
        """An aiomqtt client logging in as ``user`` (None: anonymous)."""
        return aiomqtt.Client(
            "127.0.0.1",
            self.tls_port if tls else self.port,
            username=user,
            password=None if user is None else kwargs.pop("password", self.password(user)),
            tls_context=self.tls.client_context() if tls else None,
            timeout=5,
            **kwargs,
        )


# ----------------------------------------------------------------------------- MQTT helpers


async def next_message(client: aiomqtt.Client, within_s: float = 5.0) -> aiomqtt.Message:
    """The next message the client receives."""
    async with asyncio.timeout(within_s):
        async for message in client.messages:
            return message
    raise AssertionError("message iteration ended")


async def messages_until(
    client: aiomqtt.Client, topic: str, payload: bytes, within_s: float = 5.0
) -> list[tuple[str, bytes]]:
    """Every (topic, payload) received up to and including the first ``(topic, payload)``."""
    got: list[tuple[str, bytes]] = []
    async with asyncio.timeout(within_s):
        async for message in client.messages:
            body = message.payload if isinstance(message.payload, bytes) else b""
            got.append((str(message.topic), body))
            if got[-1] == (topic, payload):
                return got
    raise AssertionError("message iteration ended")


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        n, digit = divmod(n, 128)
        out.append(digit | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _utf8(text: str) -> bytes:
    raw = text.encode()
    return len(raw).to_bytes(2, "big") + raw


def mqtt_connect_packet(
    client_id: str, username: str, password: str, will: tuple[str, bytes] | None = None
) -> bytes:
    """A raw MQTT 3.1.1 CONNECT (clean session, keepalive 30 s); ``will``: retained, QoS 1."""
    flags = 0x80 | 0x40 | 0x02  # username, password, clean session
    payload = _utf8(client_id)
    if will is not None:
        flags |= 0x20 | 0x08 | 0x04  # will retain, will QoS 1, will flag
        payload += _utf8(will[0]) + len(will[1]).to_bytes(2, "big") + will[1]
    payload += _utf8(username) + _utf8(password)
    body = _utf8("MQTT") + bytes([4, flags]) + (30).to_bytes(2, "big") + payload
    return bytes([0x10]) + _varint(len(body)) + body


def mqtt_publish_packet(topic: str, payload: bytes) -> bytes:
    """A raw MQTT 3.1.1 PUBLISH, QoS 0 (no client-side size check can interfere)."""
    body = _utf8(topic) + payload
    return bytes([0x30]) + _varint(len(body)) + body


# ----------------------------------------------------------------------------- gateway replicas


class Replica:
    """``python -m signal_gateway serve`` as a subprocess, so that it can be SIGKILLed."""

    def __init__(self, name: str, broker_url: str, directory: Path, port: int | None = None):
        self.name = name
        self.broker_url = broker_url
        self.port = port or free_port()
        self.log_path = directory / f"{name}.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def http(self) -> str:
        """Base URL of this replica, bypassing the balancer."""
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Replica:
        """Start the process (returns at once; see ``wait_ready``)."""
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": os.environ.get("HOME", "/tmp"),
            "SIGNAL_GATEWAY_BROKER": self.broker_url,
            "SIGNAL_GATEWAY_INTERSECTIONS": str(REPO / "intersections.yaml"),
            "SIGNAL_GATEWAY_HOST": "127.0.0.1",
            "SIGNAL_GATEWAY_PORT": str(self.port),
            "SIGNAL_GATEWAY_RECONNECT_MIN_S": "0.2",
            "SIGNAL_GATEWAY_EVENT_DB": str(self.log_path.with_suffix(".events.sqlite3")),
        }
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "signal_gateway", "serve"],
                env=env,
                cwd=self.log_path.parent,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        return self

    async def wait_ready(self, within_s: float = 20.0) -> None:
        """Poll /readyz until 200 (connected to the broker); fail with the log if it exits."""
        async with httpx.AsyncClient(timeout=1.0) as http, asyncio.timeout(within_s):
            while True:
                assert self.process is not None
                if self.process.poll() is not None:
                    raise AssertionError(f"{self.name} exited:\n{self.log()}")
                with contextlib.suppress(httpx.HTTPError):
                    if (await http.get(self.http + "/readyz")).status_code == 200:
                        return
                await asyncio.sleep(0.05)

    def signal(self, signum: signal.Signals) -> None:
        """Send a signal to the replica process."""
        assert self.process is not None
        self.process.send_signal(signum)

    async def wait_exit(self, within_s: float = 10.0) -> int:
        """Wait for the process to end; its exit status."""
        assert self.process is not None
        return await asyncio.to_thread(self.process.wait, within_s)

    def stop(self) -> None:
        """Kill it if it still runs."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)

    def log(self) -> str:
        """The replica's output so far (last 4000 characters)."""
        return self.log_path.read_text(errors="replace")[-4000:] if self.log_path.exists() else ""


# ----------------------------------------------------------------------------- nginx


def nginx_missing_reason() -> str | None:
    """Why the nginx tests cannot run here, or None. Under CI=true a missing nginx fails."""
    if Path(NGINX).exists():
        return None
    reason = "nginx is not installed (apt-get install nginx; scripts/setup does it as root)"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true: {reason}")
    return reason


class Nginx:
    """nginx running deploy/nginx/signal-gateway.conf in front of the given replica ports."""

    def __init__(
        self, directory: Path, replica_ports: tuple[int, int], port: int | None = None
    ) -> None:
        self.dir = directory / "nginx"
        self.dir.mkdir()
        self.port = port or free_port()
        self.replica_ports = replica_ports
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def ws(self) -> str:
        """The public WebSocket URL through the balancer."""
        return f"ws://127.0.0.1:{self.port}/ws/v1"

    @property
    def http(self) -> str:
        """The public HTTP base URL through the balancer."""
        return f"http://127.0.0.1:{self.port}"

    def render_site(self) -> str:
        """The shipped site on free ports, plus a test-only header naming the chosen replica."""
        site = NGINX_SITE.read_text()
        first, second = self.replica_ports
        site = rewrite(site, "server 127.0.0.1:8001;", f"server 127.0.0.1:{first};")
        site = rewrite(site, "server 127.0.0.1:8001 ", f"server 127.0.0.1:{first} ", count=2)
        site = rewrite(site, "server 127.0.0.1:8002 ", f"server 127.0.0.1:{second} ", count=2)
        site = rewrite(site, "    listen 80;\n", f"    listen 127.0.0.1:{self.port};\n")
        site = rewrite(site, "    listen [::]:80;\n", "")
        # Instrumentation, not in the shipped file (it would tell the world internal addresses):
        anchor = "        limit_conn_status 429;\n"  # only in location = /ws/v1
        return rewrite(
            site, anchor, anchor + "        add_header X-Upstream $upstream_addr always;\n"
        )

    def render_main(self) -> str:
        """A minimal nginx.conf with every path in the temp dir, including the site."""
        d = self.dir
        user = "user nobody nogroup;\n" if RUNNING_AS_ROOT else ""
        return (
            f"{user}worker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/error.log info;\n"
            "events { worker_connections 1024; }\n"
            "http {\n"
            f"  access_log {d}/access.log;\n"
            f"  client_body_temp_path {d}/client_body;\n  proxy_temp_path {d}/proxy;\n"
            f"  fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n"
            f"  scgi_temp_path {d}/scgi;\n"
            f"  include {d}/signal-gateway.conf;\n"
            "}\n"
        )

    def start(self) -> Nginx:
        """``nginx -c <conf> -p <prefix> -g 'daemon off;'``; wait until it listens."""
        self.dir.chmod(0o755)
        (self.dir / "signal-gateway.conf").write_text(self.render_site())
        conf = self.dir / "nginx.conf"
        conf.write_text(self.render_main())
        command = [NGINX, "-c", str(conf), "-p", f"{self.dir}/", "-e", f"{self.dir}/error.log"]
        check = subprocess.run([*command, "-t"], capture_output=True, text=True)
        assert check.returncode == 0, check.stderr
        self.process = subprocess.Popen(
            [*command, "-g", "daemon off;"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        try:
            wait_for_port(self.port, process=self.process)
        except TimeoutError:
            raise AssertionError(f"nginx did not start:\n{self.error_log()}") from None
        return self

    def error_log(self) -> str:
        """nginx's error log so far."""
        path = self.dir / "error.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""

    def stop(self) -> None:
        """Stop nginx (SIGQUIT: graceful) and wait for it; kill if it lingers."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGQUIT)
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)


# ----------------------------------------------------------------------------- WS clients


@dataclass
class Watcher:
    """A WebSocket client that keeps the latest view of its intersections and checks every frame.

    ``check`` is called on every view received (snapshot or update) with the frame's
    ``server_time_ms``; it raises on a wrong number, and the failure is kept in ``errors``.
    """

    name: str
    url: str
    ids: list[str]
    check: Callable[[dict[str, Any], int], None]
    upstream: str = ""
    views: dict[str, dict[str, Any]] = field(default_factory=dict)
    snapshots: int = 0
    frames: int = 0
    errors: list[str] = field(default_factory=list)
    close_codes: list[int | None] = field(default_factory=list)
    connected: asyncio.Event = field(default_factory=asyncio.Event)
    fresh: asyncio.Event = field(default_factory=asyncio.Event)
    """Set when a snapshot with a number for every id arrives; cleared on disconnect."""
    lost_at: float | None = None
    moved_s: list[float] = field(default_factory=list)
    """Per reconnection: from losing the connection to a snapshot with numbers again."""
    fresh_at: list[float] = field(default_factory=list)
    """perf_counter() of every moment ``fresh`` was set."""
    upstreams: list[str] = field(default_factory=list)
    """Per connection, nginx's ``$upstream_addr``: every replica it tried for the handshake."""
    task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Run the client (connect, subscribe, follow; reconnect with backoff) in a task."""
        self.task = asyncio.create_task(self._run(), name=f"watcher-{self.name}")

    async def stop(self) -> None:
        """Cancel the client task."""
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task

    def end_ms(self, iid: str, sg: int) -> int | None:
        """The latest ``end_ms`` this client has for a group."""
        group = next(g for g in self.views[iid]["groups"] if g["sg"] == sg)
        value: int | None = group["end_ms"]
        return value

    def numbered(self) -> bool:
        """Whether every followed intersection has at least one group with a number."""
        return all(
            iid in self.views and any(g["end_ms"] is not None for g in self.views[iid]["groups"])
            for iid in self.ids
        )

    async def _run(self) -> None:
        delay = 0.05
        while True:
            try:
                async with connect(self.url, open_timeout=5) as ws:
                    delay = 0.05
                    assert ws.response is not None
                    # Every replica nginx tried, in order ("A, B" when A refused): B serves.
                    tried = ws.response.headers.get("X-Upstream", "")
                    self.upstream = tried.split(",")[-1].strip()
                    self.upstreams.append(tried)
                    await self._follow(ws)
                self.close_codes.append(ws.close_code)  # 1000/1001 end the iteration quietly
            except Exception as exc:  # refused, closed (code kept), a 502 from nginx: reconnect
                self.close_codes.append(getattr(getattr(exc, "rcvd", None), "code", None))
            if self.lost_at is None:
                self.lost_at = time.perf_counter()
            self.connected.clear()
            self.fresh.clear()
            await asyncio.sleep(delay)  # client backoff between attempts, not synchronisation
            delay = min(delay * 2, 1.0)

    async def _follow(self, ws: ClientConnection) -> None:
        hello = json.loads(await ws.recv())
        assert hello["type"] == "hello", hello
        await ws.send(json.dumps({"op": "subscribe", "ids": self.ids}))
        self.connected.set()
        async for raw in ws:
            frame = json.loads(raw)
            if frame["type"] not in ("snapshot", "update"):
                continue
            self.frames += 1
            for view in frame["intersections"]:
                try:
                    self.check(view, frame["server_time_ms"])
                except AssertionError as exc:
                    self.errors.append(f"{self.name} via {self.upstream}: {exc}")
                self.views[view["id"]] = view
            if frame["type"] == "snapshot":
                self.snapshots += 1
            if self.numbered() and not self.fresh.is_set():
                self.fresh.set()
                self.fresh_at.append(time.perf_counter())
                if self.lost_at is not None:
                    self.moved_s.append(time.perf_counter() - self.lost_at)
                    self.lost_at = None


@contextlib.asynccontextmanager
async def watchers(
    url: str, ids: list[str], check: Callable[[dict[str, Any], int], None], count: int
) -> AsyncIterator[list[Watcher]]:
    """``count`` Watchers on ``url``, connected one after the other (so least_conn alternates)."""
    started: list[Watcher] = []
    try:
        for number in range(count):
            watcher = Watcher(f"client-{number}", url, ids, check)
            watcher.start()
            started.append(watcher)
            async with asyncio.timeout(10):
                await watcher.connected.wait()
        yield started
    finally:
        for watcher in started:
            await watcher.stop()
