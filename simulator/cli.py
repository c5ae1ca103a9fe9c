"""Command line of the simulator: ``signal-gateway simulate`` and ``python -m simulator``.

``add_arguments(parser)`` adds the flags to any argparse parser; ``run_simulator(args)`` runs the
controllers until cancelled (Ctrl-C / SIGTERM when started from :func:`main`). Unset flags fall
back to the gateway's ``SIGNAL_GATEWAY_*`` settings (broker, intersections, topic prefix), so the
simulator and the gateway started in the same environment talk to each other.

``add_fault_arguments(parser)`` and ``run_fault(args)`` are the other side: one fault command sent
to a running simulator over its control channel (``python -m simulator fault drop YT005``,
``signal-gateway fault ...``), see :mod:`simulator.control`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import ssl
import sys
from collections.abc import Sequence
from pathlib import Path

from signal_gateway.core.registry import ConfigError, load_registry
from signal_gateway.settings import BrokerURL, SettingsError, load_settings
from simulator.control import (
    CONTROL_TOPIC,
    OPS,
    CommandError,
    ControlError,
    command_from_words,
    send_command,
)
from simulator.controllers import Credential, Simulator

__all__ = [
    "add_arguments",
    "add_fault_arguments",
    "main",
    "read_credentials",
    "run_fault",
    "run_simulator",
]

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
    parser.add_argument(
        "--control-topic",
        default=CONTROL_TOPIC,
        metavar="TOPIC",
        help=f"take fault commands on this MQTT topic, answer on TOPIC/ack (default "
        f"{CONTROL_TOPIC}; empty: no control channel); see docs/simulator.md",
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
        control_topic=getattr(args, "control_topic", CONTROL_TOPIC),
        control_username=url.username,
        control_password=url.password,
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


def add_fault_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``OP ID [VALUE] --broker --control-topic --timeout --cafile`` to ``parser``."""
    ops = "; ".join(f"{op}: {what}" for op, what in OPS.items())
    parser.add_argument("op", choices=list(OPS), metavar="OP", help=f"the fault: {ops}")
    parser.add_argument("id", metavar="ID", help="the controller, e.g. YT005")
    parser.add_argument(
        "value",
        nargs="?",
        metavar="VALUE",
        help="mode: normal|flash|manual|preempt|dark|fault; skew: milliseconds; duplicate: "
        "count (default 1); conflict: on|off (default on); malformed: a kind, e.g. nan",
    )
    parser.add_argument(
        "--broker",
        help="mqtt://[user:pass@]host:port of the simulator's broker (default: "
        "SIGNAL_GATEWAY_BROKER, else mqtt://127.0.0.1:1883)",
    )
    parser.add_argument(
        "--control-topic",
        default=CONTROL_TOPIC,
        metavar="TOPIC",
        help=f"the simulator's control topic (default {CONTROL_TOPIC})",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=5.0,
        metavar="S",
        help="give up after this many seconds without an answer (default 5)",
    )
    parser.add_argument(
        "--cafile", metavar="PATH", help="CA certificate for mqtts:// (default: system CAs)"
    )


async def run_fault(args: argparse.Namespace) -> int:
    """Send one fault command (flags of :func:`add_fault_arguments`) and print the answer.

    Exit status: 0 carried out (``ok: mode YT005 flash`` on stdout), 1 refused by the simulator
    or no answer (the reason on stderr), 2 bad arguments (nothing is sent).
    """
    command = command_from_words(args.op, args.id, args.value)
    if isinstance(command, CommandError):
        print(f"error: {command}", file=sys.stderr)
        return 2
    try:
        url = load_settings({"broker": args.broker}).broker
        tls = None
        if BrokerURL.parse(url).tls:
            tls = ssl.create_default_context(cafile=args.cafile)
        if not args.timeout > 0:
            raise ValueError(f"--timeout must be positive, not {args.timeout}")
    except (SettingsError, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        ack = await send_command(
            url, command, topic=args.control_topic, timeout_s=args.timeout, tls_context=tls
        )
    except ControlError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if ack.get("ok") is True:
        print(" ".join(["ok:", command.op, command.id, *([args.value] if args.value else [])]))
        return 0
    print(f"error: {ack.get('error')}", file=sys.stderr)
    return 1


def fault_main(argv: Sequence[str]) -> int:
    """``python -m simulator fault OP ID [VALUE]``: see :func:`run_fault`."""
    parser = argparse.ArgumentParser(
        prog="python -m simulator fault",
        description="Send one fault command to a running simulator over its control channel.",
    )
    add_fault_arguments(parser)
    return asyncio.run(run_fault(parser.parse_args(argv)))


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m simulator``: run until Ctrl-C or SIGTERM; 2 on bad flags or registry.

    ``python -m simulator fault OP ID [VALUE]`` sends a fault command instead (:func:`run_fault`).
    """
    if argv is None:
        argv = sys.argv[1:]
    if argv and argv[0] == "fault":
        return fault_main(argv[1:])
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
