"""Settings: one frozen object from defaults, ``SIGNAL_GATEWAY_*`` variables and CLI flags.

Owns every tunable of the service and its documentation (``docs/configuration.md`` is generated
from the field descriptions here). Precedence: CLI flag > environment > default.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from signal_gateway.core.city import CoreConfig
from signal_gateway.core.rules import (
    PEDESTRIAN_TRANSITIONS,
    VEHICLE_TRANSITIONS,
    RuleConfig,
    parse_transitions,
    with_allowed,
)
from signal_gateway.fanout.hub import HubConfig

ENV_PREFIX = "SIGNAL_GATEWAY_"


class SettingsError(ValueError):
    """A setting has a value the gateway cannot use; the message names it."""


@dataclass(frozen=True, slots=True)
class BrokerURL:
    """Where the MQTT broker is: ``mqtt://[user:pass@]host:port`` (``mqtts://`` for TLS)."""

    host: str
    port: int
    username: str | None = None
    password: str | None = None
    tls: bool = False

    @classmethod
    def parse(cls, url: str) -> BrokerURL:
        """Parse a broker URL; SettingsError names what is wrong."""
        parts = urlsplit(url if "://" in url else f"mqtt://{url}")
        if parts.scheme not in ("mqtt", "mqtts", "tcp"):
            raise SettingsError(f"broker: scheme {parts.scheme!r} in {url!r} is not mqtt or mqtts")
        if not parts.hostname:
            raise SettingsError(f"broker: no host in {url!r}")
        try:
            port = parts.port
        except ValueError as exc:
            raise SettingsError(f"broker: bad port in {url!r}") from exc
        tls = parts.scheme == "mqtts"
        return cls(
            host=parts.hostname,
            port=port or (8883 if tls else 1883),
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            tls=tls,
        )

    def __str__(self) -> str:
        user = f"{self.username}:***@" if self.username else ""
        return f"{'mqtts' if self.tls else 'mqtt'}://{user}{self.host}:{self.port}"


def _doc(text: str, default: Any) -> Any:
    return field(default=default, metadata={"doc": text})


@dataclass(frozen=True, slots=True)
class Settings:
    """Every setting of the gateway. Environment: ``SIGNAL_GATEWAY_<NAME>`` (upper case)."""

    broker: str = _doc("MQTT broker URL, mqtt://[user:pass@]host:port", "mqtt://127.0.0.1:1883")
    broker_ca_file: str = _doc(
        "CA certificate file (PEM) that signs the broker's certificate, for mqtts:// "
        "(empty: the system trust store)",
        "",
    )
    topic_prefix: str = _doc("first topic level(s) of controller topics", "signals")
    j2735_topic: str = _doc(
        "MQTT topic filter of decoded J2735 SPaT (ODE JSON); empty disables", ""
    )
    client_id: str = _doc("MQTT client id of the gateway (unique per replica)", "")
    intersections: str = _doc("path of the city registry", "intersections.yaml")
    host: str = _doc("HTTP/WebSocket listen address", "127.0.0.1")
    port: int = _doc("HTTP/WebSocket listen port", 8000)
    stale_after_s: float = _doc("no report for this long: countdowns go unknown", 2.5)
    skew_threshold_ms: int = _doc("flag a controller clock offset beyond this", 1000)
    flush_ms: int = _doc("WebSocket update period (coalescing window)", 100)
    max_payload_bytes: int = _doc("largest MQTT payload accepted", 16 * 1024)
    mqtt_keepalive_s: int = _doc("MQTT keepalive towards the broker", 10)
    reconnect_min_s: float = _doc("first reconnect delay (jittered, doubles)", 0.5)
    reconnect_max_s: float = _doc("longest reconnect delay", 15.0)
    mqtt_slow_link_ms: float = _doc(
        "round trip to the broker (probed every second) beyond which reports count as held up "
        "and clock offsets are not learned from them",
        150.0,
    )
    ws_max_frame_bytes: int = _doc("largest client frame; bigger closes with 1009", 4096)
    ws_max_buffered_bytes: int = _doc("send buffer bound; a client over it is evicted", 1 << 20)
    ws_stall_timeout_s: float = _doc("a client unable to take frames this long is evicted", 30.0)
    ws_ping_interval_s: float = _doc("WebSocket ping period", 20.0)
    ws_ping_timeout_s: float = _doc("close a client that does not answer a ping in time", 20.0)
    ws_handshake_timeout_s: float = _doc(
        "close a connection whose HTTP/WebSocket handshake is not complete within this", 10.0
    )
    ws_compression: bool = _doc(
        "offer permessage-deflate (each frame compressed once, shared); ~12x fewer bytes", False
    )
    ws_max_connections: int = _doc("global WebSocket connection limit", 50_000)
    ws_max_connections_per_ip: int = _doc("WebSocket connections per client IP", 200)
    ws_ops_per_s: float = _doc("sustained client ops per second before errors", 5.0)
    ws_ops_burst: int = _doc("client op burst allowance", 20)
    allowed_origins: str = _doc("comma-separated Origin allowlist; empty allows any", "")
    log_level: str = _doc("debug, info, warning or error", "info")
    tile_url: str = _doc(
        "map tile URL template for the web page",
        "https://tile.openstreetmap.org/{z}/{x}/{y}.png",
    )
    tile_attribution: str = _doc(
        "attribution shown under the map tiles (HTML)",
        '&copy; <a href="https://www.openstreetmap.org/copyright">OpenStreetMap</a> contributors',
    )
    # -- engineers' view (issue 4): event log, access control, rules ---------------------------
    event_log_writer: bool = _doc(
        "this replica writes the event log; with replicas, exactly one should (docs/deploy.md)",
        True,
    )
    event_db: str = _doc(
        "SQLite file of the engineers' event log, created on first start; empty: memory only",
        "var/events.sqlite3",
    )
    event_retention_days: float = _doc("delete logged events older than this (0: keep)", 30.0)
    event_retention_rows: int = _doc(
        "keep at most this many logged events (0: no limit)", 1_000_000
    )
    event_queue_size: int = _doc(
        "events waiting for the disk; beyond it they are dropped and counted", 10_000
    )
    engineer_tokens: str = _doc(
        "comma-separated bearer tokens for /api/v1/engineer and /ws/v1/engineer", ""
    )
    engineer_token_file: str = _doc(
        "file with one engineer token per line (# comments); re-read when it changes", ""
    )
    engineer_push_ms: int = _doc(
        "period of the controller rows pushed to engineers' WebSockets", 1000
    )
    engineer_auth_timeout_s: float = _doc(
        "engineers' WebSocket: the auth message must come within this", 10.0
    )
    history_minutes: float = _doc("timing diagram: minutes of group states kept in memory", 15.0)
    rule_min_yellow_s: float = _doc("rule short_yellow: shortest allowed vehicle yellow", 3.0)
    rule_countdown_jump_ms: int = _doc(
        "rule countdown_jump: an exact end moving by more than this", 1000
    )
    rule_cycle_tolerance_ms: int = _doc("rule cycle_length_change: cycle changes beyond this", 2000)
    rule_repeat_s: float = _doc(
        "one event per rule and intersection per this long (the rest are counted)", 10.0
    )
    rule_allow_transitions: str = _doc(
        "extra allowed state changes for every group, e.g. 'green>red,red>yellow'", ""
    )
    # -- end engineers' view -------------------------------------------------------------------

    def core(self) -> CoreConfig:
        """The pure core's thresholds."""
        return CoreConfig(
            stale_after_ms=round(self.stale_after_s * 1000),
            skew_threshold_ms=self.skew_threshold_ms,
        )

    def rules(self) -> RuleConfig:
        """The consistency rules' thresholds and transition tables (engineers' view)."""
        extra = parse_transitions(self.rule_allow_transitions)
        return RuleConfig(
            min_yellow_ms=round(self.rule_min_yellow_s * 1000),
            countdown_jump_ms=self.rule_countdown_jump_ms,
            cycle_tolerance_ms=self.rule_cycle_tolerance_ms,
            repeat_ms=round(self.rule_repeat_s * 1000),
            vehicle_transitions=with_allowed(VEHICLE_TRANSITIONS, extra),
            pedestrian_transitions=with_allowed(PEDESTRIAN_TRANSITIONS, extra),
        )

    def hub(self) -> HubConfig:
        """The fan-out's per-client limits."""
        return HubConfig(
            max_buffered_bytes=self.ws_max_buffered_bytes,
            stall_timeout_ms=round(self.ws_stall_timeout_s * 1000),
        )

    def broker_url(self) -> BrokerURL:
        """The parsed broker URL."""
        return BrokerURL.parse(self.broker)

    def origins(self) -> frozenset[str]:
        """The Origin allowlist (empty: any origin)."""
        return frozenset(o.strip() for o in self.allowed_origins.split(",") if o.strip())

    @property
    def registry_path(self) -> Path:
        """The registry path as a Path."""
        return Path(self.intersections)


def load_settings(
    overrides: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None
) -> Settings:
    """Defaults, then ``SIGNAL_GATEWAY_*`` variables, then non-None ``overrides`` (CLI flags)."""
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for spec in fields(Settings):
        raw = environ.get(ENV_PREFIX + spec.name.upper())
        if raw is not None:
            values[spec.name] = _coerce(spec.name, spec.type, raw)
    for key, value in (overrides or {}).items():
        if value is not None:
            values[key] = value
    settings = replace(Settings(), **values)
    _check(settings)
    return settings


def _coerce(name: str, kind: object, raw: str) -> Any:
    env = ENV_PREFIX + name.upper()
    if kind in (bool, "bool"):
        lowered = raw.strip().lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        raise SettingsError(f"{env}: {raw!r} is not true or false")
    try:
        if kind in (int, "int"):
            return int(raw)
        if kind in (float, "float"):
            return float(raw)
    except ValueError:
        raise SettingsError(f"{env}: {raw!r} is not a number") from None
    return raw


def _check(settings: Settings) -> None:
    positive = (
        "stale_after_s",
        "flush_ms",
        "max_payload_bytes",
        "mqtt_keepalive_s",
        "reconnect_min_s",
        "reconnect_max_s",
        "mqtt_slow_link_ms",
        "ws_handshake_timeout_s",
        "ws_max_frame_bytes",
        "ws_max_buffered_bytes",
        "ws_max_connections",
        "ws_max_connections_per_ip",
        "ws_ops_per_s",
        "ws_ops_burst",
        "event_queue_size",
        "engineer_push_ms",
        "engineer_auth_timeout_s",
        "history_minutes",
    )
    for name in positive:
        value = getattr(settings, name)
        if value <= 0:
            raise SettingsError(f"{name}: {value!r} must be greater than 0")
    if not 0 < settings.port < 65536 and settings.port != 0:
        raise SettingsError(f"port: {settings.port} is not a TCP port")
    if settings.reconnect_max_s < settings.reconnect_min_s:
        raise SettingsError("reconnect_max_s: must not be below reconnect_min_s")
    if settings.log_level.lower() not in ("debug", "info", "warning", "error"):
        raise SettingsError(f"log_level: {settings.log_level!r} is not debug/info/warning/error")
    settings.broker_url()
    for name in ("event_retention_days", "event_retention_rows", "rule_min_yellow_s"):
        if getattr(settings, name) < 0:
            raise SettingsError(f"{name}: {getattr(settings, name)!r} must not be negative")
    try:
        parse_transitions(settings.rule_allow_transitions)
    except ValueError as exc:
        raise SettingsError(f"rule_allow_transitions: {exc}") from None


def describe() -> list[tuple[str, str, str]]:
    """(environment variable, default, description) for every setting, for the docs."""
    return [
        (ENV_PREFIX + spec.name.upper(), repr(spec.default), str(spec.metadata.get("doc", "")))
        for spec in fields(Settings)
    ]
