"""OpenTelemetry traces of a running bridge: a mention down to the Coder call that creates its chat,
a Coder stream batch down to the Slack call that shows it; exported over OTLP when configured."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence

import pytest
from aiohttp import web
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from bridge import tracing
from tests.integration.conftest import World

PROMPT = "fix the flaky test"
SLACK_SHOWS = {"slack.chat.postMessage", "slack.chat.update", "slack.chat.startStream"}


@pytest.fixture
async def spans() -> AsyncIterator[InMemorySpanExporter]:
    """Spans of every bridge in this process, kept in memory while the test runs."""
    exporter = InMemorySpanExporter()
    provider = tracing.enable(SimpleSpanProcessor(exporter))
    try:
        yield exporter
    finally:
        await tracing.disable(provider)


def _ancestors(span: ReadableSpan, spans: Sequence[ReadableSpan]) -> list[str]:
    """The names of the span's parent, its parent's parent, and so on up to its trace's root."""
    by_id = {s.context.span_id: s for s in spans if s.context is not None}
    names: list[str] = []
    while span.parent is not None and (parent := by_id.get(span.parent.span_id)) is not None:
        names.append(parent.name)
        span = parent
    return names


async def test_a_mention_and_its_reply_are_traced(world: World, spans: InMemorySpanExporter) -> None:
    """The mention's trace runs from the Slack event through the relay to Coder's create-chat call;
    a stream batch's trace reaches the Slack call that shows its text. No span holds the text."""
    root = await world.mention(PROMPT)
    await world.until_idle_and_shown(root)
    finished = spans.get_finished_spans()

    created = [s for s in finished if s.name == "coder.create_chat"]
    assert len(created) == 1
    assert _ancestors(created[0], finished)[-2:] == ["relay.inbound", "slack.event"]
    trace = created[0].context.trace_id
    event = next(s for s in finished if s.context.trace_id == trace and s.parent is None)
    assert (event.attributes or {}).get("slack.type") == "app_mention"

    shown = [s for s in finished if s.name in SLACK_SHOWS and s.parent is not None]
    from_stream = [s for s in shown if _ancestors(s, finished) == ["coder.stream.batch"]]
    assert from_stream, [(s.name, _ancestors(s, finished)) for s in shown]

    values = [str(v) for s in finished for v in (s.attributes or {}).values()]
    assert not any(PROMPT in v for v in values)


@pytest.mark.parametrize("generation", ["v2"])
async def test_traces_go_to_the_otlp_endpoint(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """With BRIDGE_OTEL_ENABLED the bridge exports its spans to the collector named by the standard
    OTEL_EXPORTER_OTLP_ENDPOINT (OTLP over HTTP), under its service name, by the time it stops."""
    received: list[ExportTraceServiceRequest] = []
    arrived = asyncio.Event()

    async def collect(request: web.Request) -> web.Response:
        received.append(ExportTraceServiceRequest.FromString(await request.read()))
        arrived.set()
        return web.Response(content_type="application/x-protobuf")

    app = web.Application()
    app.router.add_post("/v1/traces", collect)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        port = runner.addresses[0][1]
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{port}")
        await world.stop_bridge()
        await world.start_bridge(otel_enabled=True)
        root = await world.mention(PROMPT)
        await world.until_idle_and_shown(root)
        await world.stop_bridge()  # flushes what the batches still hold
        await asyncio.wait_for(arrived.wait(), 10)
    finally:
        await runner.cleanup()
    assert not tracing.enabled()
    resources = [r for request in received for r in request.resource_spans]
    services = {
        a.value.string_value for r in resources for a in r.resource.attributes if a.key == "service.name"
    }
    assert services == {tracing.SERVICE_NAME}
    names = {s.name for r in resources for scope in r.scope_spans for s in scope.spans}
    assert {"slack.event", "relay.inbound", "coder.create_chat", "coder.stream.batch"} <= names
