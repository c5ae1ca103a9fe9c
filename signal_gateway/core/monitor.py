"""The engineers' watch over the city: rules, health and timing history fed by every report.

Owns :class:`Monitor` (the rule book, the health book and the timing history, together) and
:class:`MonitoredCity`, a :class:`~signal_gateway.core.city.City` that shows the monitor every
report with the state it replaced. It adds the rules' events to the city's :class:`Outcome`
and never changes what the city decides or what clients see. Pure: no clock, no I/O.

Why a subclass: the rules need the previous *and* the new report of one controller, and an
``Outcome`` does not say which controller it is about. If ``Outcome`` gains
``intersection_id`` and ``previous`` (proposed), the monitor can be fed from the gateway's
``_on_outcome`` instead and this class goes away.
"""

from __future__ import annotations

from dataclasses import replace

from signal_gateway.core.city import City, ControllerState, CoreConfig, Event, Outcome
from signal_gateway.core.health import ControllerHealth, HealthBook, count_statuses
from signal_gateway.core.history import TimingDiagram, TimingHistory
from signal_gateway.core.model import SpatReport, StatusReport
from signal_gateway.core.registry import Registry
from signal_gateway.core.rules import RuleBook, RuleConfig

_RESETS = frozenset({"restart", "clock_step"})


class Monitor:
    """Rules, health and timing history of every controller."""

    def __init__(
        self,
        rules: RuleConfig | None = None,
        *,
        history_ms: int = 15 * 60_000,
        rate_window_ms: int = 10_000,
    ) -> None:
        self.rules = RuleBook(rules)
        self.health_book = HealthBook(rate_window_ms)
        self.history = TimingHistory(window_ms=history_ms)

    def attach(self, registry: Registry) -> None:
        """Make room for every intersection of the registry."""
        self.history.register(registry)

    def after_spat(
        self,
        state: ControllerState,
        previous: SpatReport | None,
        previous_rx_ms: int | None,
        outcome: Outcome,
        now_ms: int,
        config: CoreConfig,
    ) -> tuple[Event, ...]:
        """Take an accepted report (``state.report``); returns the rule events it caused."""
        report = state.report
        if report is None:
            return ()
        iid = state.intersection.id
        self.health_book.on_accepted(iid, now_ms)
        self.history.record(report, now_ms)
        reset = any(event.kind in _RESETS for event in outcome.events)
        continuous = (
            previous is not None
            and not reset
            and report.seq == previous.seq + 1
            and previous_rx_ms is not None
            and now_ms - previous_rx_ms <= config.stale_after_ms
        )
        events = self.rules.evaluate(
            state.intersection, previous, report, now_ms, continuous=continuous
        )
        for event in events:
            self.health_book.on_rule(iid, event.kind, event.severity, event.message, now_ms)
        self.health_book.observe(state, now_ms)
        return events

    def after_health(self, state: ControllerState, now_ms: int) -> None:
        """A status report or the stale rule touched a controller: re-classify it."""
        if not state.online or state.stale:
            self.history.unknown(state.intersection.id, now_ms)
            self.rules.forget(state.intersection.id)
        self.health_book.observe(state, now_ms)

    def row(self, state: ControllerState, now_ms: int) -> ControllerHealth:
        """The health row of one controller."""
        iid = state.intersection.id
        return self.health_book.health(state, now_ms, self.rules.counts(iid))

    def rows(self, city: City, now_ms: int) -> list[ControllerHealth]:
        """Every controller's health row, in registry order."""
        return [self.row(state, now_ms) for state in city.states()]

    def counts(self, city: City, now_ms: int) -> dict[str, int]:
        """The dashboard's header counts."""
        return count_statuses(self.rows(city, now_ms))

    def diagram(
        self, intersection_id: str, now_ms: int, span_ms: int | None = None
    ) -> TimingDiagram:
        """The timing diagram of one intersection (KeyError for unknown ids)."""
        return self.history.diagram(intersection_id, now_ms, span_ms)


class MonitoredCity(City):
    """A City whose every accepted report, status and stale tick is shown to a Monitor."""

    def __init__(
        self, registry: Registry, config: CoreConfig | None = None, monitor: Monitor | None = None
    ) -> None:
        super().__init__(registry, config)
        self.monitor = monitor or Monitor()
        self.monitor.attach(registry)

    def on_spat(self, report: SpatReport, now_ms: int) -> Outcome:
        """The city's judgement, plus the consistency rules' events for an accepted report."""
        if self.registry.get(report.intersection_id) is None:
            return super().on_spat(report, now_ms)
        state = self.state(report.intersection_id)
        previous, previous_rx = state.report, state.last_rx_ms
        outcome = super().on_spat(report, now_ms)
        if outcome.result != "accepted":
            return outcome
        extra = self.monitor.after_spat(state, previous, previous_rx, outcome, now_ms, self.config)
        return replace(outcome, events=outcome.events + extra) if extra else outcome

    def on_status(self, report: StatusReport, now_ms: int) -> Outcome:
        """The city's judgement; the monitor re-classifies the controller."""
        outcome = super().on_status(report, now_ms)
        if outcome.result == "status":
            self.monitor.after_health(self.state(report.intersection_id), now_ms)
        return outcome

    def tick(self, now_ms: int) -> tuple[Event, ...]:
        """The city's stale rule; the monitor notes the gaps it opens."""
        events = super().tick(now_ms)
        for event in events:
            self.monitor.after_health(self.state(event.intersection_id), now_ms)
        return events
