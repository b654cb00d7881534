"""Bolt's app with every Slack request timed to its acknowledgement and traced.

``async_dispatch`` is where both transports (HTTP and Socket Mode) hand Bolt a request and get the
acknowledgement back: an event is acknowledged once the bridge's middleware has recorded it, a click
once its listener acks. Bolt starts the listeners as tasks within it, so the work an event causes
(the relay, the Coder calls) goes on in the event's trace.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.response import BoltResponse

from bridge import tracing
from bridge.metrics import Metrics


def request_kind(body: Mapping[str, Any]) -> str:
    """What a request is, for a span's attribute: its event's type, command or interaction type."""
    event = body.get("event")
    kind = event.get("type") if isinstance(event, Mapping) else None
    return str(kind or body.get("command") or body.get("type") or "unknown")


class ObservedApp(AsyncApp):
    """``AsyncApp`` whose dispatch is timed (``bridge_slack_event_ack_seconds``) and is a trace's root."""

    def __init__(self, *, metrics: Metrics, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._metrics = metrics

    async def async_dispatch(self, req: AsyncBoltRequest) -> BoltResponse:
        started = time.perf_counter()
        try:
            with tracing.span("slack.event", {"slack.type": request_kind(req.body)}, root=True):
                return await super().async_dispatch(req)
        finally:
            self._metrics.slack_event_ack.observe(time.perf_counter() - started)
