"""The ``signal-gateway`` command: serve, simulate, demo, check-config, convert.

Owns argument parsing, logging set-up and process lifetime (signals, exit codes). Every command
reads ``SIGNAL_GATEWAY_*`` settings; flags win over the environment.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import logging
import signal
import socket
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from signal_gateway import __version__
from signal_gateway.settings import Settings, SettingsError, load_settings

if TYPE_CHECKING:
    from signal_gateway.api.app import GatewayApp

log = logging.getLogger("signal_gateway")

EXIT_CONFIG = 2


def _setup_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    # Per-request access lines would drown the gateway's own account of what happens.
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser (also used to document the CLI)."""
    parser = argparse.ArgumentParser(
        prog="signal-gateway",
        description="Live traffic-signal countdowns: MQTT controllers in, WebSocket clients out.",
        epilog="Every setting can also come from SIGNAL_GATEWAY_<NAME>; see docs/configuration.md.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="run the gateway against an MQTT broker")
    serve.add_argument("--broker", help="mqtt://[user:pass@]host:port (default from settings)")
    serve.add_argument("--intersections", metavar="PATH", help="city registry YAML")
    serve.add_argument("--host", help="listen address (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="listen port (default 8000)")
    serve.add_argument("--log-level", dest="log_level", help="debug, info, warning, error")

    simulate = commands.add_parser("simulate", help="run the simulated controllers")
    _add_simulator_arguments(simulate)

    demo = commands.add_parser(
        "demo", help="embedded broker + 235 simulated controllers + gateway + web page"
    )
    demo.add_argument("--port", type=int, default=8000, help="web/API port (default 8000)")
    demo.add_argument("--host", default="127.0.0.1", help="listen address (default 127.0.0.1)")
    demo.add_argument(
        "--broker", help="use this broker instead of the embedded one (mqtt://host:port)"
    )
    demo.add_argument(
        "--mqtt-port", type=int, default=0, help="embedded broker port (default: a free one)"
    )
    demo.add_argument("--seed", type=int, default=1, help="simulator seed")
    demo.add_argument("--intersections", metavar="PATH", help="city registry YAML")

    fault = commands.add_parser(
        "fault", help="inject a fault into a running simulator (demo, simulate)"
    )
    _add_fault_arguments(fault)

    check = commands.add_parser("check-config", help="validate the city registry")
    check.add_argument("path", nargs="?", help="registry YAML (default from settings)")

    convert = commands.add_parser("convert", help="show what the gateway makes of a feed")
    convert.add_argument("format", choices=["j2735"], help="input format")
    convert.add_argument("file", help="file of decoded J2735 SPaT (JSON, array or NDJSON)")
    convert.add_argument("--json", action="store_true", help="machine-readable output")
    convert.add_argument("--intersections", metavar="PATH", help="map J2735 ids to ours")
    return parser


def _add_simulator_arguments(parser: argparse.ArgumentParser) -> None:
    try:
        from simulator.cli import add_arguments
    except ImportError:  # a broken simulator must not take the gateway's CLI down with it
        parser.add_argument("--broker", default="mqtt://127.0.0.1:1883")
        return
    add_arguments(parser)


def _add_fault_arguments(parser: argparse.ArgumentParser) -> None:
    from simulator.cli import add_fault_arguments

    add_fault_arguments(parser)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script and ``python -m signal_gateway``."""
    args = build_parser().parse_args(argv)
    try:
        if args.command == "check-config":
            return check_config(args.path)
        if args.command == "convert":
            return convert(args)
        if args.command == "simulate":
            return _run(simulate(args))
        if args.command == "fault":
            from simulator.cli import run_fault

            return _run(run_fault(args))
        overrides: dict[str, Any] = {
            "broker": getattr(args, "broker", None),
            "intersections": getattr(args, "intersections", None),
            "host": getattr(args, "host", None),
            "port": getattr(args, "port", None),
            "log_level": getattr(args, "log_level", None),
        }
        settings = load_settings(overrides)
    except SettingsError as exc:
        print(f"signal-gateway: bad setting: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    _setup_logging(settings.log_level)
    if args.command == "serve":
        return _run(serve(settings))
    return _run(demo(settings, args))


def _run(main_coro: Any) -> int:
    try:
        import uvloop

        runner: Any = uvloop.run
    except ImportError:  # uvloop is an optional speed-up ("fast" extra)
        runner = asyncio.run
    try:
        result: int = runner(main_coro)
        return result
    except KeyboardInterrupt:
        return 130


def check_config(path: str | None) -> int:
    """``check-config``: exit 0 if the registry is valid, else print every problem and exit 2."""
    from signal_gateway.core.registry import ConfigError, load_registry

    target = path or load_settings().intersections
    try:
        registry = load_registry(target)
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"{target}: {problem}", file=sys.stderr)
        print(f"{target}: {len(exc.problems)} problem(s)", file=sys.stderr)
        return EXIT_CONFIG
    groups = sum(len(i.groups) for i in registry)
    print(f"{target}: OK, {len(registry)} intersections, {groups} signal groups")
    return 0


def convert(args: argparse.Namespace) -> int:
    """``convert j2735 FILE``: print our reading of a J2735 SPaT feed."""
    from signal_gateway.j2735_convert import convert_command

    return convert_command(
        args.file, sys.stdout, json_output=args.json, registry_path=args.intersections
    )


async def simulate(args: argparse.Namespace) -> int:
    """``simulate``: the simulated controllers until Ctrl-C."""
    from simulator.cli import run_simulator

    _setup_logging("info")
    await run_simulator(args)
    return 0


def port_free(host: str, port: int) -> bool:
    """Whether a TCP port can be bound on ``host`` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                return False
            raise
    return True


async def serve(
    settings: Settings, *, stop: asyncio.Event | None = None, app: GatewayApp | None = None
) -> int:
    """``serve``: the gateway until SIGINT/SIGTERM (or ``stop``)."""
    import uvicorn

    from signal_gateway.api.app import create_app
    from signal_gateway.core.registry import ConfigError

    try:
        app = app or create_app(settings)
    except ConfigError as exc:
        for problem in exc.problems:
            log.error("%s: %s", settings.intersections, problem)
        return EXIT_CONFIG
    if settings.port and not port_free(settings.host, settings.port):
        log.error(
            "port %d on %s is already in use: choose another with --port",
            settings.port,
            settings.host,
        )
        return EXIT_CONFIG
    http_protocol, ws_protocol = protocols(
        settings.ws_handshake_timeout_s, settings.ws_max_buffered_bytes
    )
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        http=http_protocol,
        ws=ws_protocol,
        ws_max_size=settings.ws_max_frame_bytes,
        ws_ping_interval=settings.ws_ping_interval_s,
        ws_ping_timeout=settings.ws_ping_timeout_s,
        # Off by default (a compression bomb needs the server to inflate what clients send);
        # on, each shared frame is compressed once for all clients (docs/performance.md).
        ws_per_message_deflate=settings.ws_compression,
        log_config=None,
        lifespan="on",
        timeout_graceful_shutdown=5,
    )
    server = GatewayServer(config, app)
    if stop is None:
        stop = asyncio.Event()
        _on_signals(stop)
    log.info("listening on http://%s:%d (WebSocket /ws/v1)", settings.host, settings.port)
    serving = asyncio.create_task(server.serve())
    waiter = asyncio.create_task(stop.wait())
    await asyncio.wait({serving, waiter}, return_when=asyncio.FIRST_COMPLETED)
    if not serving.done():
        server.should_exit = True
        await serving
    waiter.cancel()
    return 0


def protocols(
    handshake_timeout_s: float, max_buffered_bytes: int
) -> tuple[type[asyncio.Protocol], type[asyncio.Protocol]]:
    """uvicorn's HTTP/1.1 (h11) and websockets-sansio protocols, with two limits they lack.

    * A connection whose first request head is not complete within ``handshake_timeout_s`` is
      closed: uvicorn times out only idle keep-alive connections, so a client that opens a
      socket and sends nothing, or a few bytes of a handshake, held it open for ever.
    * A WebSocket whose send buffer is over ``max_buffered_bytes`` (the transport's high-water
      mark) is no longer read until it drains, and the hub's next flush evicts it (1013).
      Pings are answered below the application, and snapshots and replies are written outside
      the flush, so a client that sends pings or ops and never reads made the gateway buffer
      without bound.
    """
    from uvicorn.protocols.http.h11_impl import H11Protocol
    from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

    class HandshakeTimeoutH11(H11Protocol):
        _head_timer: asyncio.TimerHandle | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._head_timer = self.loop.call_later(handshake_timeout_s, self._head_timeout)

        def _head_timeout(self) -> None:
            self._head_timer = None
            if self.scope is None and not self.transport.is_closing():  # no request head yet
                self.transport.close()

        def _cancel_head_timer(self) -> None:
            if self._head_timer is not None:
                self._head_timer.cancel()
                self._head_timer = None

        def handle_websocket_upgrade(self, event: Any) -> None:
            self._cancel_head_timer()  # the transport now belongs to the WebSocket protocol
            super().handle_websocket_upgrade(event)

        def connection_lost(self, exc: Exception | None) -> None:
            self._cancel_head_timer()
            super().connection_lost(exc)

    class BackpressureWebSocket(WebSocketsSansIOProtocol):
        _write_paused = False

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            super().connection_made(transport)
            self.transport.set_write_buffer_limits(high=max_buffered_bytes)

        def pause_writing(self) -> None:
            super().pause_writing()
            self._write_paused = True
            self.transport.pause_reading()

        def resume_writing(self) -> None:
            super().resume_writing()
            self._write_paused = False
            if not self.read_paused:
                self.transport.resume_reading()

        async def receive(self) -> Any:
            message = await super().receive()  # may resume reading: not while writes wait
            if self._write_paused and not self.close_sent:
                self.transport.pause_reading()
            return message

    return HandshakeTimeoutH11, BackpressureWebSocket


class GatewayServer:
    """uvicorn's server, closing our WebSocket clients with 1001 before it shuts down."""

    def __new__(cls, config: Any, app: Any) -> Any:
        import uvicorn

        class _Server(uvicorn.Server):
            @contextlib.contextmanager
            def capture_signals(self) -> Any:
                # The command owns SIGINT/SIGTERM (stop event) so that everything it started
                # (simulator, broker) is stopped in order, not killed by a re-raised signal.
                yield

            async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
                await app.close_clients(1001, "server shutting down")
                await super().shutdown(sockets)

        return _Server(config)


async def demo(settings: Settings, args: argparse.Namespace) -> int:
    """``demo``: embedded broker, all simulated controllers, the gateway and the web page."""
    from signal_gateway.core.registry import ConfigError, load_registry
    from signal_gateway.embedded_broker import EmbeddedBroker

    try:
        load_registry(settings.registry_path)
    except ConfigError as exc:
        for problem in exc.problems:
            log.error("%s: %s", settings.intersections, problem)
        return EXIT_CONFIG
    if not port_free(args.host, args.port):
        log.error(
            "port %d on %s is already in use: stop what uses it or pick --port",
            args.port,
            args.host,
        )
        return EXIT_CONFIG
    async with contextlib.AsyncExitStack() as stack:
        if args.broker:
            broker_settings = settings
        else:
            broker = EmbeddedBroker("127.0.0.1", args.mqtt_port)
            try:
                await broker.start()
            except OSError as exc:
                log.error("embedded broker: %s (pick another --mqtt-port)", exc)
                return EXIT_CONFIG
            stack.push_async_callback(broker.stop)
            log.info("embedded MQTT broker on 127.0.0.1:%d", broker.port)
            broker_settings = load_settings(
                {**_asdict(settings), "broker": f"mqtt://127.0.0.1:{broker.port}"}
            )
        # The simulated controllers run in a process of their own, as real controllers would:
        # on the machine's other core, and never delaying the gateway's event loop.
        simulator = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "simulator",
            "--broker",
            broker_settings.broker,
            "--seed",
            str(args.seed),
            "--intersections",
            settings.intersections,
            "--prefix",
            settings.topic_prefix,
        )
        stack.push_async_callback(_stop_process, simulator)
        stop = asyncio.Event()
        _on_signals(stop)
        print(
            f"\n  signal_gateway demo: open http://{args.host}:{args.port}/"
            f"\n  engineers' dashboard: http://{args.host}:{args.port}/engineer/"
            f"\n  inject a fault: signal-gateway fault drop YT005 --broker {broker_settings.broker}"
            f"\n                  signal-gateway fault mode YT006 flash --broker "
            f"{broker_settings.broker}\n",
            flush=True,
        )
        return await serve(broker_settings, stop=stop)
    return 0


async def _stop_process(process: asyncio.subprocess.Process, grace_s: float = 10.0) -> None:
    """SIGTERM, then SIGKILL if it has not exited within ``grace_s``."""
    if process.returncode is not None:
        return
    process.terminate()
    try:
        await asyncio.wait_for(process.wait(), grace_s)
    except TimeoutError:
        process.kill()
        await process.wait()


def _on_signals(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)


def _asdict(settings: Settings) -> dict[str, Any]:
    from dataclasses import fields

    return {spec.name: getattr(settings, spec.name) for spec in fields(settings)}
