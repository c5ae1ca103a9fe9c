"""The simulator's control channel: fault commands over MQTT, for people and other processes.

A running simulator (``signal-gateway simulate``, ``python -m simulator``, the demo) listens on
one control topic, :data:`CONTROL_TOPIC` (``simulator/control``) by default, outside the
controllers' ACL pattern ``signals/%u/#`` and outside anything the gateway subscribes to. A
command is a JSON object naming an operation and a controller::

    {"op": "drop", "id": "YT005"}
    {"op": "mode", "id": "YT005", "mode": "flash", "ref": "4f1c..."}

and every command is answered on ``<control topic>/ack`` with ``{"ok": true, "op", "id", "ref"}``
or ``{"ok": false, "error": "...", "ref"}``; ``ref`` is whatever the sender put in the command, so
a sender can tell its answer from others' (:func:`send_command` does exactly that).

The vocabulary (:class:`Command`, :func:`parse_command`, :func:`encode_command`,
:func:`command_from_words`, the acknowledgements) is pure: no I/O, no clock. The simulator side
lives in :class:`simulator.controllers.Simulator` (``control_topic=``); the sender side is
:func:`send_command`, the only I/O here.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aiomqtt

from signal_gateway.settings import BrokerURL
from simulator.faults import MALFORMED_KINDS

__all__ = [
    "ACK_SUFFIX",
    "CONTROL_TOPIC",
    "MAX_COMMAND_BYTES",
    "MODES",
    "OPS",
    "Command",
    "CommandError",
    "ControlError",
    "NoSimulatorError",
    "ack_error",
    "ack_ok",
    "ack_topic",
    "check_control_topic",
    "command_from_dict",
    "command_from_words",
    "encode_ack",
    "encode_command",
    "parse_command",
    "send_command",
]

CONTROL_TOPIC = "simulator/control"
"""Default control topic: not under ``signals/``, so no controller may publish on it."""

ACK_SUFFIX = "/ack"
"""Acknowledgements go to the control topic plus this (``simulator/control/ack``)."""

MAX_COMMAND_BYTES = 4096
"""A longer payload is refused unread."""

MAX_SKEW_MS = 86_400_000
MAX_DUPLICATE = 1000
MAX_ID_CHARS = 64
MAX_REF_CHARS = 128

MODES: tuple[str, ...] = ("normal", "flash", "manual", "preempt", "dark", "fault")
"""Modes a controller can be put into (``normal`` ends any other)."""

OPS: dict[str, str] = {
    "drop": "cut the connection without DISCONNECT (the broker publishes the Will); stays down",
    "resume": "reconnect a dropped controller",
    "silence": "stay connected, publish nothing",
    "speak": "end a silence",
    "mode": 'publish a mode from now on: "mode": normal|flash|manual|preempt|dark|fault',
    "skew": 'add "ms" (integer) to every ts_ms from now on; 0 ends it',
    "duplicate": 'publish the next "count" (default 1) reports twice',
    "reorder": "send the next report after the one that follows it",
    "conflict": 'report two conflicting groups green ("on": true, the default, or false)',
    "restart": "re-announce online, then count seq from 0",
    "heal": "end every report fault (silence, mode, skew, conflict...; not a drop)",
    "malformed": 'publish one bad payload: "kind" from simulator.faults.MALFORMED_KINDS',
}
"""Every operation, with what it does."""

_ARGS: dict[str, tuple[str, ...]] = {
    "mode": ("mode",),
    "skew": ("ms",),
    "duplicate": ("count",),
    "conflict": ("on",),
    "malformed": ("kind",),
}
_REQUIRED = frozenset({("mode", "mode"), ("skew", "ms"), ("malformed", "kind")})


@dataclass(frozen=True, slots=True)
class Command:
    """One valid command: an operation on one controller, with its argument if it takes one."""

    op: str
    id: str
    mode: str = ""  # op "mode"
    ms: int = 0  # op "skew"
    count: int = 1  # op "duplicate"
    on: bool = True  # op "conflict"
    kind: str = ""  # op "malformed"
    ref: str | None = None

    def as_dict(self) -> dict[str, object]:
        """The JSON object of this command (only the arguments its operation takes)."""
        out: dict[str, object] = {"op": self.op, "id": self.id}
        for name in _ARGS.get(self.op, ()):
            out[name] = getattr(self, name)
        if self.ref is not None:
            out["ref"] = self.ref
        return out


@dataclass(frozen=True, slots=True)
class CommandError:
    """Why a payload is not a command; ``field`` names the culprit, ``ref``/``op``/``id`` echo."""

    message: str
    field: str | None = None
    ref: str | None = None
    op: str | None = None
    id: str | None = None

    def __str__(self) -> str:
        """The message."""
        return self.message


class ControlError(Exception):
    """:func:`send_command` could not get a command to a simulator or an answer back."""


class NoSimulatorError(ControlError, TimeoutError):
    """Nobody answered the command in time."""


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def _show(value: object) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= 60 else text[:57] + "..."


def _int(field: str, value: object, low: int, high: int) -> int | str:
    if not isinstance(value, int) or isinstance(value, bool):
        return f"{field}: {_show(value)} is {_json_type(value)}, not an integer"
    if not low <= value <= high:
        return f"{field}: {value} is out of range ({low} to {high})"
    return value


def command_from_dict(data: Mapping[str, object]) -> Command | CommandError:
    """Validate a decoded command object (what :func:`parse_command` does after the JSON)."""
    raw_ref = data.get("ref")
    ref = raw_ref if isinstance(raw_ref, str) else None
    raw_op = data.get("op")
    raw_id = data.get("id")
    op = raw_op if isinstance(raw_op, str) and raw_op in OPS else None
    iid = raw_id if isinstance(raw_id, str) else None

    def error(message: str, field: str | None) -> CommandError:
        return CommandError(message, field, ref, op, iid)

    if "ref" in data and (ref is None or not 0 < len(ref) <= MAX_REF_CHARS):
        return error(
            f"ref: {_show(raw_ref)} is not a string of 1 to {MAX_REF_CHARS} characters", "ref"
        )
    if "op" not in data:
        return error(f"op: missing; one of {', '.join(OPS)}", "op")
    if op is None:
        why = "not an operation" if isinstance(raw_op, str) else f"{_json_type(raw_op)}"
        return error(f"op: {_show(raw_op)} is {why}; one of {', '.join(OPS)}", "op")
    if "id" not in data:
        return error(f"id: missing; the intersection id to {op}, e.g. YT005", "id")
    if iid is None or not 0 < len(iid) <= MAX_ID_CHARS or iid.strip() != iid:
        return error(
            f"id: {_show(raw_id)} is not an intersection id "
            f"(a string of 1 to {MAX_ID_CHARS} characters, no surrounding spaces)",
            "id",
        )
    takes = _ARGS.get(op, ())
    for name in data:
        if name not in ("op", "id", "ref", *takes):
            allowed = f"it takes {', '.join(repr(t) for t in takes)}" if takes else "it takes none"
            return error(f"{name}: not an argument of {op} ({allowed})", name)
    for name in takes:
        if (op, name) in _REQUIRED and name not in data:
            return error(f"{name}: missing; {op} needs it ({OPS[op]})", name)
    args: dict[str, Any] = {}
    if "mode" in data:
        mode = data["mode"]
        if not isinstance(mode, str) or mode not in MODES:
            return error(f"mode: {_show(mode)} is not one of {', '.join(MODES)}", "mode")
        args["mode"] = mode
    if "ms" in data:
        ms = _int("ms", data["ms"], -MAX_SKEW_MS, MAX_SKEW_MS)
        if isinstance(ms, str):
            return error(ms + " (a skew of at most 24 h either way)", "ms")
        args["ms"] = ms
    if "count" in data:
        count = _int("count", data["count"], 1, MAX_DUPLICATE)
        if isinstance(count, str):
            return error(count, "count")
        args["count"] = count
    if "on" in data:
        on = data["on"]
        if not isinstance(on, bool):
            return error(f"on: {_show(on)} is {_json_type(on)}, not true or false", "on")
        args["on"] = on
    if "kind" in data:
        kind = data["kind"]
        if not isinstance(kind, str) or kind not in MALFORMED_KINDS:
            return error(
                f"kind: {_show(kind)} is not a malformed kind; one of {', '.join(MALFORMED_KINDS)}",
                "kind",
            )
        args["kind"] = kind
    return Command(op, iid, ref=ref, **args)


def parse_command(payload: bytes) -> Command | CommandError:
    """Decode and validate one control payload; a CommandError names the field, value and why."""
    if len(payload) > MAX_COMMAND_BYTES:
        return CommandError(
            f"payload: {len(payload)} bytes; a command is at most {MAX_COMMAND_BYTES}", "payload"
        )
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError as exc:
        return CommandError(f"payload: not UTF-8 ({exc.reason} at byte {exc.start})", "payload")
    try:
        data = json.loads(text)
    except ValueError as exc:
        return CommandError(f"payload: {_show(text)} is not JSON ({exc})", "payload")
    if not isinstance(data, dict):
        return CommandError(
            f"payload: {_show(data)} is {_json_type(data)}, not a JSON object like "
            '{"op":"drop","id":"YT005"}',
            "payload",
        )
    return command_from_dict(data)


def encode_command(command: Command | Mapping[str, object]) -> bytes:
    """The payload to publish on the control topic (compact JSON, UTF-8)."""
    data = command.as_dict() if isinstance(command, Command) else dict(command)
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def command_from_words(
    op: str, intersection_id: str, value: str | None = None
) -> Command | CommandError:
    """A command from command-line words: ``mode YT005 flash``, ``skew YT005 -5000``, ...

    ``value`` is the argument of the operations that take one (mode, ms, count, on/off, kind);
    ``conflict`` reads on/off/true/false, ``duplicate`` defaults to 1.
    """
    data: dict[str, object] = {"op": op, "id": intersection_id}
    takes = _ARGS.get(op, ())
    if value is not None:
        if not takes:
            return CommandError(
                f"{op} takes no value (got {value!r})", "value", op=op, id=intersection_id
            )
        name = takes[0]
        parsed: object = value
        if name in ("ms", "count"):
            try:
                parsed = int(value)
            except ValueError:
                return CommandError(
                    f"{name}: {value!r} is not an integer", name, op=op, id=intersection_id
                )
        elif name == "on":
            words = {"on": True, "true": True, "off": False, "false": False}
            if value.lower() not in words:
                return CommandError(
                    f"on: {value!r} is not on, off, true or false", "on", op=op, id=intersection_id
                )
            parsed = words[value.lower()]
        data[name] = parsed
    return command_from_dict(data)


def ack_topic(control_topic: str) -> str:
    """Where the answers to ``control_topic`` go."""
    return control_topic + ACK_SUFFIX


def check_control_topic(topic: str, prefix: str) -> str | None:
    """Why ``topic`` cannot be a control topic next to controllers under ``prefix`` (None: fine)."""
    prefix = prefix.rstrip("/")
    if "+" in topic or "#" in topic or "\x00" in topic:
        return f"control topic {topic!r}: no wildcards (+, #) in a topic to listen on"
    if topic.startswith("/") or topic.endswith("/"):
        return f"control topic {topic!r}: no leading or trailing '/'"
    if topic == prefix or topic.startswith(prefix + "/"):
        return (
            f"control topic {topic!r} is under the controllers' prefix {prefix!r}: controllers "
            "may publish there and the gateway reads it; use e.g. simulator/control"
        )
    return None


def ack_ok(command: Command) -> dict[str, object]:
    """The answer to a command that was carried out."""
    return {"ok": True, "op": command.op, "id": command.id, "ref": command.ref}


def ack_error(error: CommandError | str, command: Command | None = None) -> dict[str, object]:
    """The answer to a command that was refused (``command``: a valid one that failed)."""
    if isinstance(error, CommandError):
        return {
            "ok": False,
            "error": error.message,
            "op": error.op,
            "id": error.id,
            "ref": error.ref,
        }
    op = command.op if command is not None else None
    iid = command.id if command is not None else None
    ref = command.ref if command is not None else None
    return {"ok": False, "error": error, "op": op, "id": iid, "ref": ref}


def encode_ack(ack: Mapping[str, object]) -> bytes:
    """An answer as compact JSON."""
    return json.dumps(dict(ack), separators=(",", ":"), ensure_ascii=False).encode("utf-8")


async def send_command(
    broker_url: str,
    command: Mapping[str, object] | Command,
    *,
    topic: str = CONTROL_TOPIC,
    timeout_s: float = 5.0,
    tls_context: ssl.SSLContext | None = None,
    resend_s: float = 1.0,
) -> dict[str, object]:
    """Publish ``command`` on ``topic`` and return the simulator's answer (a dict with ``ok``).

    ``broker_url`` is ``mqtt://[user:pass@]host:port`` (``mqtts://`` uses ``tls_context`` or the
    system CAs). A ``ref`` is added to the command (unless it has one) and the answer with that
    ``ref`` on ``<topic>/ack`` is returned, ``ok`` true or false: a refused command is an answer,
    not an exception. Until it is answered the command is re-published every ``resend_s`` (a
    simulator still starting or reconnecting misses QoS 1 messages); the simulator carries out
    each ``ref`` once. Raises :class:`NoSimulatorError` when nothing answers within
    ``timeout_s``, :class:`ControlError` when the broker cannot be reached, SettingsError for a
    bad URL and ValueError for a ``ref`` that is not a non-empty string.
    """
    url = BrokerURL.parse(broker_url)
    body = command.as_dict() if isinstance(command, Command) else dict(command)
    ref = body.get("ref")
    if ref is None:
        ref = body["ref"] = uuid.uuid4().hex
    elif not isinstance(ref, str) or not ref:
        raise ValueError(f"ref: {ref!r} is not a non-empty string")
    payload = encode_command(body)
    answers = ack_topic(topic)
    if tls_context is None and url.tls:
        tls_context = ssl.create_default_context()
    client = aiomqtt.Client(
        url.host,
        url.port,
        identifier=f"sim-fault-{uuid.uuid4().hex[:8]}",
        username=url.username,
        password=url.password,
        tls_context=tls_context,
        timeout=timeout_s,
    )
    connected = False
    try:
        async with asyncio.timeout(timeout_s), client:
            connected = True
            await client.subscribe(answers, qos=1)
            waiting = asyncio.create_task(_answer(client, ref))
            try:
                while True:
                    await client.publish(topic, payload, qos=1)
                    done, _pending = await asyncio.wait({waiting}, timeout=resend_s)
                    if done:
                        return waiting.result()
            finally:
                waiting.cancel()
                with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
                    await waiting
    except TimeoutError:
        if not connected:
            raise ControlError(
                f"the broker at {url} did not accept a connection within {timeout_s:g} s"
            ) from None
        raise NoSimulatorError(
            f"no simulator answered on {topic} at {url} within {timeout_s:g} s: is one running?"
        ) from None
    except aiomqtt.MqttError as exc:
        raise ControlError(f"broker at {url}: {exc}") from None


async def _answer(client: aiomqtt.Client, ref: str) -> dict[str, object]:
    """The first acknowledgement carrying ``ref``."""
    async for message in client.messages:
        if not isinstance(message.payload, bytes | bytearray):
            continue
        try:
            ack = json.loads(message.payload)
        except ValueError:
            continue
        if isinstance(ack, dict) and ack.get("ref") == ref:
            return ack
    raise aiomqtt.MqttError("the connection ended before an answer arrived")
