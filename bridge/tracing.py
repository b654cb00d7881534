"""Optional OpenTelemetry traces: a Slack event down to the Coder calls it causes, and a Coder stream
event down to the Slack calls that show it.

Off unless ``BRIDGE_OTEL_ENABLED`` (or a test) turns it on; while off every hook returns at once, so
the relay's hot paths pay one comparison. The call sites hold thin hooks only: ``span`` around a
piece of work, ``carried``/``resumed`` where work changes task (a stream batch sets a text that the
outbox's worker sends later), ``detach`` where a long-lived task must not pass as part of the trace
that happened to start it. Coder calls are reported after the fact through ``CoderObserver``, so the
Coder client stays free of this module: their spans are drawn from the reported duration.

No span carries a message's text or a token: only ids, method names and outcomes. Exceptions are
not recorded (their messages may quote a person's words); a failed span says the exception's type.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from opentelemetry import context as otel_context
from opentelemetry.context import Context
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import Status, StatusCode, Tracer

from bridge.coder.observe import CoderObserver

SERVICE_NAME = "slack-coder-bridge"
"""The traces' ``service.name`` unless ``OTEL_SERVICE_NAME`` says otherwise."""

Attribute = str | int


class _State:
    tracer: Tracer | None = None  # None: tracing is off


def enable(processor: SpanProcessor) -> TracerProvider:
    """Trace from now on into ``processor``, this process's own provider (the global one is left to
    the host). ``OTEL_SERVICE_NAME`` and ``OTEL_RESOURCE_ATTRIBUTES`` describe the process."""
    resource = Resource.create()  # what OTEL_RESOURCE_ATTRIBUTES and OTEL_SERVICE_NAME say
    if str(resource.attributes.get("service.name", "")).startswith("unknown_service"):
        resource = resource.merge(Resource({"service.name": SERVICE_NAME}))
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(processor)
    _State.tracer = provider.get_tracer("bridge")
    return provider


def export_otlp() -> TracerProvider:
    """Trace to an OTLP/HTTP collector, configured by the standard ``OTEL_EXPORTER_OTLP_*`` variables
    (endpoint, headers, timeout), spans sent in batches from a thread of their own."""
    return enable(BatchSpanProcessor(OTLPSpanExporter()))


async def disable(provider: TracerProvider) -> None:
    """Stop tracing; the spans not yet exported go out first, from a worker thread (an export is a
    blocking request, which the event loop must not wait on)."""
    _State.tracer = None
    await asyncio.to_thread(provider.shutdown)


def enabled() -> bool:
    """Whether spans are being recorded."""
    return _State.tracer is not None


@contextmanager
def span(
    name: str, attributes: Mapping[str, Attribute] | None = None, *, root: bool = False
) -> Iterator[None]:
    """A span around the block, a child of the current one, or the start of a trace (``root``)."""
    tracer = _State.tracer
    if tracer is None:
        yield
        return
    parent = Context() if root else None
    with tracer.start_as_current_span(
        name, context=parent, attributes=attributes, record_exception=False, set_status_on_exception=False
    ) as current:
        try:
            yield
        except BaseException as exc:
            current.set_status(Status(StatusCode.ERROR, type(exc).__name__))
            raise


def carried() -> Context | None:
    """The current trace context, for work that goes on in another task (None while tracing is off)."""
    return otel_context.get_current() if _State.tracer is not None else None


@contextmanager
def resumed(carried: Context | None) -> Iterator[None]:
    """Make spans within the block children of the ``carried`` context (from ``carried()``)."""
    if carried is None or _State.tracer is None:
        yield
        return
    token = otel_context.attach(carried)
    try:
        yield
    finally:
        otel_context.detach(token)


def detach() -> None:
    """From here on, spans of the current task start traces of their own: for a long-lived task,
    which inherited the context of whatever work happened to start it."""
    if _State.tracer is not None:
        otel_context.attach(Context())


class TracedCoderCalls:
    """A ``CoderObserver`` that draws a span for each Coder call reported, then passes every report
    on to ``inner`` (the metrics). A report comes when the call ends, in the caller's task: the span
    is a child of the caller's current one, and began the reported ``seconds`` before."""

    def __init__(self, inner: CoderObserver) -> None:
        self._inner = inner

    def call_finished(self, operation: str, outcome: str, seconds: float) -> None:
        """Draw the call's span (while tracing is on), then report it on."""
        tracer = _State.tracer
        if tracer is not None:
            end = time.time_ns()
            attributes = {"coder.operation": operation, "coder.outcome": outcome}
            call = tracer.start_span(
                f"coder.{operation}", attributes=attributes, start_time=end - int(seconds * 1e9)
            )
            if outcome != "ok":
                call.set_status(Status(StatusCode.ERROR, outcome))
            call.end(end_time=end)
        self._inner.call_finished(operation, outcome, seconds)

    def stream_opened(self) -> None:
        """Report on."""
        self._inner.stream_opened()

    def stream_closed(self) -> None:
        """Report on."""
        self._inner.stream_closed()

    def stream_reconnecting(self) -> None:
        """Report on."""
        self._inner.stream_reconnecting()
