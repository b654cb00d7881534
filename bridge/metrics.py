"""Prometheus metrics of one bridge instance (own registry, so tests can run several bridges)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest


class Metrics:
    """Counters for events, Slack and Coder calls and their errors, and live streams."""

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
