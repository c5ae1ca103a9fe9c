"""``/metrics``: the gateway's counters in Prometheus text format, one registry per app.

Owns the metric names and how each is read from the running gateway. A collector reads the
live counters at scrape time (nothing is counted twice and nothing here is on the hot path);
the registry belongs to one app, never the process-global default, so two apps in one process
(tests) do not mix. Reads the gateway and the engineers' runtime; changes nothing.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    Metric,
    SummaryMetricFamily,
)
from prometheus_client.registry import Collector

from signal_gateway.core.health import Status, classify

if TYPE_CHECKING:
    from signal_gateway.api.engineer import EngineerRuntime


class GatewayCollector(Collector):
    """Reads one gateway's counters when Prometheus scrapes."""

    def __init__(self, runtime: EngineerRuntime) -> None:
        self.runtime = runtime

    def collect(self) -> Iterator[Metric]:
        """Every metric family, read now."""
        runtime = self.runtime
        gateway = runtime.gateway
        stats = gateway.ingest.stats

        messages = CounterMetricFamily(
            "signal_gateway_messages",
            "MQTT messages by what the gateway made of them (accepted, status, or a reason)",
            labels=["result"],
        )
        for result, count in sorted(stats.results.items()):
            messages.add_metric([result], count)
        yield messages

        yield GaugeMetricFamily(
            "signal_gateway_mqtt_connected", "1 while connected to the broker", int(stats.connected)
        )

        connections = GaugeMetricFamily(
            "signal_gateway_ws_connections", "open WebSocket connections", labels=["endpoint"]
        )
        connections.add_metric(["public"], len(gateway.hub))
        connections.add_metric(["engineer"], len(runtime.feed))
        yield connections

        frames = CounterMetricFamily(
            "signal_gateway_frames_sent", "WebSocket frames sent by flushes", labels=["endpoint"]
        )
        frames.add_metric(["public"], gateway.frames_sent)
        frames.add_metric(["engineer"], runtime.feed.frames_sent)
        yield frames

        yield SummaryMetricFamily(
            "signal_gateway_flush_duration_seconds",
            "time one flush (city tick + fan-out) took",
            count_value=gateway.flushes,
            sum_value=gateway.flush_seconds,
        )
        yield CounterMetricFamily(
            "signal_gateway_ws_evictions", "slow clients closed with 1013", gateway.evictions
        )

        by_status: Counter[str] = Counter({status.value: 0 for status in Status})
        for state in gateway.city.states():
            by_status[classify(state).value] += 1
        controllers = GaugeMetricFamily(
            "signal_gateway_controllers", "controllers by status", labels=["status"]
        )
        for status, count in sorted(by_status.items()):
            controllers.add_metric([status], count)
        yield controllers

        rules = CounterMetricFamily(
            "signal_gateway_rule_violations",
            "SPaT consistency rule violations (including those not told as events)",
            labels=["rule"],
        )
        for rule, count in sorted(gateway.monitor.rules.totals.items()):
            rules.add_metric([rule], count)
        yield rules

        writer = runtime.writer
        if writer is not None:
            yield CounterMetricFamily(
                "signal_gateway_event_log_written", "events written to SQLite", writer.stats.written
            )
            yield CounterMetricFamily(
                "signal_gateway_event_log_dropped",
                "events dropped because the write queue was full",
                writer.stats.dropped,
            )
            yield CounterMetricFamily(
                "signal_gateway_event_log_errors", "failed event writes", writer.stats.errors
            )
            yield GaugeMetricFamily(
                "signal_gateway_event_log_queued", "events waiting to be written", writer.queued
            )


def metrics_registry(runtime: EngineerRuntime) -> CollectorRegistry:
    """A registry of this app's own (never the global default one)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(GatewayCollector(runtime))
    return registry


def render_metrics(registry: CollectorRegistry) -> tuple[bytes, str]:
    """The exposition text and its content type."""
    return generate_latest(registry), CONTENT_TYPE_LATEST
