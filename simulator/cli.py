"""Command line of the simulator: ``signal-gateway simulate`` and ``python -m simulator``.

``add_arguments(parser)`` adds the flags to any argparse parser; ``run_simulator(args)`` runs the
controllers until cancelled (Ctrl-C / SIGTERM when started from :func:`main`). Unset flags fall
back to the gateway's ``SIGNAL_GATEWAY_*`` settings (broker, intersections, topic prefix), so the
simulator and the gateway started in the same environment talk to each other.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import ssl
from collections.abc import Sequence
from pathlib import Path

from signal_gateway.core.registry import ConfigError, load_registry
from signal_gateway.settings import BrokerURL, SettingsError, load_settings
from simulator.controllers import Credential, Simulator

__all__ = ["add_arguments", "main", "read_credentials", "run_simulator"]

log = logging.getLogger("simulator")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the simulator's flags to ``parser``."""
    parser.add_argument(
        "--broker",
        help="mqtt://[user:pass@]host:port or mqtts://... (default: SIGNAL_GATEWAY_BROKER, "
        "else mqtt://127.0.0.1:1883); user:pass here is used by every controller",
    )
    parser.add_argument("--seed", type=int, default=0, help="plan seed (default 0)")
    parser.add_argument(
        "--speed",
        type=float,
        default=1.0,
        help="run signal time this many times faster than the clock (default 1)",
    )
    parser.add_argument(
        "--only", metavar="ID,...", help="run only these intersections (comma-separated ids)"
    )
    parser.add_argument(
        "--intersections",
        metavar="PATH",
        help="city registry YAML (default: SIGNAL_GATEWAY_INTERSECTIONS, else intersections.yaml)",
    )
    parser.add_argument(
        "--prefix", help="topic prefix (default: SIGNAL_GATEWAY_TOPIC_PREFIX, else signals)"
    )
    parser.add_argument(
        "--credentials",
        metavar="PATH",
        help="per-controller passwords, one 'ID:password' a line; each controller then logs "
        "in with its intersection id as username",
    )
    parser.add_argument(
        "--cafile", metavar="PATH", help="CA certificate for mqtts:// (default: system CAs)"
    )
    parser.add_argument(
        "--heartbeat-ms",
        type=int,
        default=900,
        help="publish at least this often when nothing changes (default 900: >= 1 Hz)",
    )


def read_credentials(path: str | Path) -> dict[str, str]:
    """``ID:password`` lines (blank lines and ``#`` comments ignored) as a dict."""
    out: dict[str, str] = {}
    for number, raw in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, password = line.partition(":")
        if not sep or not name.strip():
            raise ValueError(f"{path}:{number}: expected 'ID:password'")
        out[name.strip()] = password
    return out


def _only(value: str | None) -> list[str] | None:
    if not value:
        return None
    return [part.strip() for part in value.split(",") if part.strip()]


def build_simulator(args: argparse.Namespace) -> Simulator:
    """The Simulator the flags describe; ValueError/ConfigError/SettingsError if they are bad."""
    settings = load_settings(
        {
            "broker": getattr(args, "broker", None),
            "intersections": getattr(args, "intersections", None),
            "topic_prefix": getattr(args, "prefix", None),
        }
    )
    url = BrokerURL.parse(settings.broker)
    registry = load_registry(settings.intersections)
    if not getattr(args, "speed", 1.0) > 0:
        raise ValueError(f"--speed must be positive, not {args.speed}")
    tls: ssl.SSLContext | None = None
    if url.tls:
        tls = ssl.create_default_context(cafile=getattr(args, "cafile", None))
    username_for: Credential = None
    password_for: Credential = None
    credentials = getattr(args, "credentials", None)
    if credentials:
        password_for = read_credentials(credentials)
    elif url.username is not None:
        shared_user, shared_password = url.username, url.password
        username_for = lambda _iid: shared_user  # noqa: E731
        password_for = lambda _iid: shared_password  # noqa: E731
    return Simulator(
        registry,
        url.host,
        url.port,
        seed=getattr(args, "seed", 0),
        speed=getattr(args, "speed", 1.0),
        only=_only(getattr(args, "only", None)),
        prefix=settings.topic_prefix,
        username_for=username_for,
        password_for=password_for,
        heartbeat_ms=getattr(args, "heartbeat_ms", 900),
        tls_context=tls,
    )


async def run_simulator(args: argparse.Namespace) -> None:
    """Run the simulated controllers the flags describe until cancelled (or SIGTERM).

    Bad flags or a bad registry are logged, one line per problem, and end the program with
    exit status 2 (SystemExit). On cancellation (Ctrl-C under ``asyncio.run``) or SIGTERM every
    controller announces itself offline and disconnects.
    """
    try:
        sim = build_simulator(args)
    except ConfigError as exc:
        for problem in exc.problems:
            log.error("%s: %s", exc.source, problem)
        raise SystemExit(2) from None
    except (SettingsError, ValueError, KeyError, OSError) as exc:
        log.error("%s", exc)
        raise SystemExit(2) from None
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    terminated = False

    def terminate() -> None:
        nonlocal terminated
        terminated = True
        if task is not None:
            task.cancel()

    handled = False
    with contextlib.suppress(NotImplementedError, RuntimeError):
        loop.add_signal_handler(signal.SIGTERM, terminate)
        handled = True
    try:
        await sim.run()
    except asyncio.CancelledError:
        if not terminated or task is None:
            raise
        task.uncancel()  # SIGTERM is a normal way to stop: no traceback
        log.info("SIGTERM: stopped")
    finally:
        if handled:
            loop.remove_signal_handler(signal.SIGTERM)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m simulator``: run until Ctrl-C or SIGTERM; 2 on bad flags or registry."""
    parser = argparse.ArgumentParser(
        prog="python -m simulator",
        description="Simulated traffic-signal controllers publishing SPaT over MQTT.",
    )
    add_arguments(parser)
    parser.add_argument("--log-level", default="info", help="debug, info, warning, error")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    try:
        asyncio.run(run_simulator(args))
    except KeyboardInterrupt:
        return 130
    return 0
