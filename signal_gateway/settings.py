"""Settings: one frozen object built from defaults, ``SIGNAL_GATEWAY_*`` environment variables and CLI flags.

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
    topic_prefix: str = _doc("first topic level(s) of controller topics", "signals")
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
    ws_max_frame_bytes: int = _doc("largest client frame; bigger closes with 1009", 4096)
    ws_max_buffered_bytes: int = _doc("send buffer bound; a client over it is evicted", 1 << 20)
    ws_stall_timeout_s: float = _doc("a client unable to take frames this long is evicted", 30.0)
    ws_ping_interval_s: float = _doc("WebSocket ping period", 20.0)
    ws_ping_timeout_s: float = _doc("close a client that does not answer a ping in time", 20.0)
    ws_max_connections: int = _doc("global WebSocket connection limit", 50_000)
    ws_max_connections_per_ip: int = _doc("WebSocket connections per client IP", 200)
    ws_ops_per_s: float = _doc("sustained client ops per second before errors", 5.0)
    ws_ops_burst: int = _doc("client op burst allowance", 20)
    allowed_origins: str = _doc("comma-separated Origin allowlist; empty allows any", "")
    log_level: str = _doc("debug, info, warning or error", "info")

    def core(self) -> CoreConfig:
        """The pure core's thresholds."""
        return CoreConfig(
            stale_after_ms=round(self.stale_after_s * 1000),
            skew_threshold_ms=self.skew_threshold_ms,
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
        "ws_max_frame_bytes",
        "ws_max_buffered_bytes",
        "ws_max_connections",
        "ws_max_connections_per_ip",
        "ws_ops_per_s",
        "ws_ops_burst",
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


def describe() -> list[tuple[str, str, str]]:
    """(environment variable, default, description) for every setting, for the docs."""
    return [
        (ENV_PREFIX + spec.name.upper(), repr(spec.default), str(spec.metadata.get("doc", "")))
        for spec in fields(Settings)
    ]
