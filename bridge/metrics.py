"""Prometheus metrics of one bridge instance (own registry, so tests can run several bridges).

Every metric is listed, with what an alert on it means, in docs/metrics.md; a test holds the two
to the same names, and the dashboard and alert rules in deploy/ to names that exist.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

_ACK_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0)
"""Event acknowledgement: Slack retries an event not acknowledged within 3 s, hence the 2 and 3."""
_WAIT_BUCKETS = (0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
"""Waits that Slack's budgets set: from none at all to minutes when many threads share ``chat.update``."""


class _Budgets(Collector):
    """``bridge_slack_budget_per_minute``, read at each scrape from the budgets as they stand (they
    exist once a method is first called in a workspace, and may change while the bridge runs)."""

    def __init__(self) -> None:
        self.read: Callable[[], Mapping[tuple[str, str], float]] = dict

    def describe(self) -> Iterator[GaugeMetricFamily]:
        yield self._family()

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = self._family()
        for (team, method), per_minute in sorted(self.read().items()):
            family.add_metric([team, method], per_minute)
        yield family

    @staticmethod
    def _family() -> GaugeMetricFamily:
        return GaugeMetricFamily(
            "bridge_slack_budget_per_minute",
            "Calls a minute the workspace's budget allows a Slack Web API method",
            labels=["team", "method"],
        )


class Metrics:
    """Events, Slack and Coder calls and their errors, live streams, Slack budgets and the outbox."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.slack_events = Counter(
            "bridge_slack_events_total",
            "Slack events and interactions received",
            ["type"],
            registry=self.registry,
        )
        self.slack_calls = Counter(
            "bridge_slack_calls_total",
            "Slack Web API calls by method and outcome",
            ["method", "outcome"],
            registry=self.registry,
        )
        self.coder_calls = Counter(
            "bridge_coder_calls_total",
            "Coder API calls by operation and outcome",
            ["operation", "outcome"],
            registry=self.registry,
        )
        self.coder_latency = Histogram(
            "bridge_coder_call_seconds", "Coder API call duration", ["operation"], registry=self.registry
        )
        self.live_streams = Gauge(
            "bridge_live_streams",
            "Coder sockets currently open: chat streams plus the one chat-list watch",
            registry=self.registry,
        )
        self.stream_reconnects = Counter(
            "bridge_coder_stream_reconnects_total",
            "Coder stream and watch sockets lost (or not opened) and tried again",
            registry=self.registry,
        )
        self.slack_event_ack = Histogram(
            "bridge_slack_event_ack_seconds",
            "Time from a Slack event or interaction reaching the bridge to its acknowledgement",
            buckets=_ACK_BUCKETS,
            registry=self.registry,
        )
        self.slack_budget_wait = Histogram(
            "bridge_slack_budget_wait_seconds",
            "Time a Slack Web API call waited for its method's (and channel's) budget",
            ["team", "method"],
            buckets=_WAIT_BUCKETS,
            registry=self.registry,
        )
        self._budgets = _Budgets()
        self.registry.register(self._budgets)
        self.stream_lag = Histogram(
            "bridge_stream_lag_seconds",
            "Time from a change of a thread's text (a Coder stream event) to the Slack call showing it",
            ["kind"],
            buckets=_WAIT_BUCKETS,
            registry=self.registry,
        )
        self.outbox_pending = Gauge(
            "bridge_outbox_pending",
            "Texts and reactions the bridge still has to show in Slack",
            registry=self.registry,
        )
        self.outbox_longest_wait = Gauge(
            "bridge_outbox_longest_wait_seconds",
            "How long the thread waiting longest for Slack to show its text has waited",
            registry=self.registry,
        )
        self.slack_pace = Gauge(
            "bridge_slack_pace_per_minute",
            "Learned workspace-wide pace of a Slack method with no published budget (calls a minute)",
            ["method"],
            registry=self.registry,
        )
        self.slack_pace_ceiling = Gauge(
            "bridge_slack_pace_ceiling_per_minute",
            "The pace Slack refused for such a method, which growth stays under (0: none refused yet)",
            ["method"],
            registry=self.registry,
        )
        self.replicas = Gauge(
            "bridge_replicas_live",
            "Live bridge replicas of the workspace; each uses one over this of Slack's budgets",
            registry=self.registry,
        )

    def watch(
        self,
        *,
        budgets: Callable[[], Mapping[tuple[str, str], float]],
        pending: Callable[[], int],
        longest_wait: Callable[[], float],
    ) -> None:
        """Read the Slack budgets and the outbox's backlog at each scrape (they are state, not events)."""
        self._budgets.read = budgets
        self.outbox_pending.set_function(pending)
        self.outbox_longest_wait.set_function(longest_wait)

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric."""
        return bytes(generate_latest(self.registry))

    # CoderObserver protocol (bridge.coder.observe): wired into the Coder backend by the app.
    def call_finished(self, operation: str, outcome: str, seconds: float) -> None:
        """Count one Coder call."""
        self.coder_calls.labels(operation, outcome).inc()
        self.coder_latency.labels(operation).observe(seconds)

    def stream_opened(self) -> None:
        """A chat stream (or the watch) socket opened."""
        self.live_streams.inc()

    def stream_closed(self) -> None:
        """A chat stream (or the watch) socket closed."""
        self.live_streams.dec()

    def stream_reconnecting(self) -> None:
        """A chat stream (or the watch) socket is tried again."""
        self.stream_reconnects.inc()

    # RelayObserver protocol (bridge.relay.observe): wired into the Slack budgets and the outbox.
    def budget_waited(self, team: str, method: str, seconds: float) -> None:
        """Count one Slack call's wait for its workspace's budget."""
        self.slack_budget_wait.labels(team, method).observe(seconds)

    def text_shown(self, final: bool, seconds: float) -> None:
        """Count how long Slack lagged behind a thread's text."""
        self.stream_lag.labels("final" if final else "progress").observe(seconds)
