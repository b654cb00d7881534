"""Coder's stream as coder/coder's own tests and structs write it (``tests/fixtures/coder/stream_*``):
the client reads every fixture to the right typed events, and the simulator's v2-late frames for the
same situations have the same shape (event order, keys in Go's struct order, payloads)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterable, Sequence
from datetime import UTC, datetime
from itertools import groupby
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect

from bridge.coder.framing import FrameDecoder
from bridge.coder.types import (
    ErrorEvent,
    HistoryResetEvent,
    Message,
    MessageEvent,
    Part,
    PartEvent,
    PreviewResetEvent,
    QueueEvent,
    RetryEvent,
    StatusEvent,
    StreamEvent,
)
from bridge.coder.v2_wire import parse_status, parse_stream_event
from bridge.sim.coder import CoderSim
from bridge.sim.coder_agent import Gate, Retry, Step, Text

FIXTURES = Path(__file__).parent.parent / "fixtures" / "coder"
TOKEN = "sim-token"
V2 = "/api/v2/chats"
Event = dict[str, Any]

# Key orders of the Go structs (coder/coder codersdk/chats.go at 004053e8): encoding/json writes fields
# in declaration order, and omitempty ones only when set, so every event's keys are a subsequence.
EVENT_KEYS = (
    "type",
    "chat_id",
    "message",
    "message_part",
    "status",
    "error",
    "retry",
    "queued_messages",
    "action_required",
)
MESSAGE_PART_KEYS = ("role", "part", "history_version", "generation_attempt", "seq")
MESSAGE_KEYS = ("id", "chat_id", "created_by", "model_config_id", "created_at", "role", "content", "usage")
PART_KEYS = (
    "type",
    "text",
    "tool_call_id",
    "tool_name",
    "mcp_server_config_id",
    "args",
    "args_delta",
    "parsed_commands",
    "result",
    "result_delta",
    "result_reset",
    "is_error",
    "is_media",
    "source_id",
    "url",
    "title",
    "media_type",
    "name",
    "data",
    "file_id",
    "file_name",
    "start_line",
    "end_line",
    "content",
    "provider_metadata",
    "provider_executed",
    "hook_rewritten",
    "created_at",
    "completed_at",
    "context_file_path",
    "context_file_content",
    "context_file_truncated",
    "context_file_agent_id",
    "context_file_os",
    "context_file_directory",
    "skill_name",
    "skill_description",
    "skill_dir",
    "context_file_skill_meta_file",
)
RETRY_KEYS = ("attempt", "delay_ms", "error", "kind", "provider", "status_code", "retrying_at")
ERROR_KEYS = ("message", "detail", "kind", "provider", "retryable", "status_code")
REQUIRED = {
    "event": {"type", "chat_id"},
    "message_part": {"part"},
    "retry": {"attempt", "delay_ms", "error", "retrying_at"},
    "error": {"message", "retryable"},
}


def _text(text: str) -> Part:
    return Part(type="text", text=text)


def _part(text: str, history: int, attempt: int, seq: int) -> PartEvent:
    return PartEvent(
        role="assistant", part=_text(text), history_version=history, generation_attempt=attempt, seq=seq
    )


def _message(id_: int, role: str, text: str) -> MessageEvent:
    at = datetime.fromtimestamp(id_, UTC)
    return MessageEvent(message=Message(id=id_, role=role, content=(_text(text),), created_at=at))


EXPECTED: dict[str, list[StreamEvent]] = {
    "stream_retry_preview_reset.json": [
        _part("Hel", 1, 1, 1),
        RetryEvent(attempt=1, delay_ms=1000, error="rate limited"),
        PreviewResetEvent(),
        _part("Hello", 1, 2, 1),
    ],
    "stream_history_reset.json": [
        HistoryResetEvent(),
        _message(3, "user", "replacement"),
        PreviewResetEvent(),
    ],
    "stream_message_revision.json": [
        _message(2, "assistant", "new"),
        StatusEvent(status=parse_status("running")),
        PreviewResetEvent(),
        _message(1, "user", "edited"),
        PreviewResetEvent(),
    ],
    "stream_part_metadata.json": [_part("a", 7, 3, 1)],
    "stream_sync_order.json": [
        QueueEvent(),
        StatusEvent(status=parse_status("error")),
        ErrorEvent(message="provider failed", error_kind="config"),
        RetryEvent(attempt=2, delay_ms=100, error="retrying"),
        PreviewResetEvent(),
    ],
    "stream_parts_replay.json": [_part("replayed", 1, 1, 1), _part("live", 1, 1, 2)],
}


def _fixture(name: str) -> list[list[Event]]:
    frames: list[list[Event]] = json.loads((FIXTURES / name).read_text())["payload"]
    return frames


def _fixture_events(name: str) -> list[Event]:
    return [event for frame in _fixture(name) for event in frame]


def test_every_stream_fixture_is_expected_here() -> None:
    """Each stream fixture has its expected events below (a new one cannot go unread)."""
    assert sorted(p.name for p in FIXTURES.glob("stream_*.json")) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_the_client_reads_each_stream_fixture(name: str) -> None:
    """Frames as Coder writes them (bare arrays) become exactly the expected typed events."""
    decoder = FrameDecoder()
    events: list[StreamEvent | None] = []
    for frame in _fixture(name):
        for raw in decoder.decode(json.dumps(frame) + "\n"):
            assert isinstance(raw, dict)
            events.append(parse_stream_event(raw))
    assert events == EXPECTED[name]


def _in_order(keys: Iterable[str], order: Sequence[str]) -> bool:
    """Whether ``keys`` are known names in Go's declaration order."""
    positions = [order.index(key) if key in order else -1 for key in keys]
    return -1 not in positions and positions == sorted(positions)


def _shape_errors(event: Event) -> list[str]:
    """Where one event departs from the Go structs' key order or lacks a key they always write."""
    errors: list[str] = []

    def check(what: str, value: Any, order: Sequence[str]) -> None:
        if not _in_order(value, order):
            errors.append(f"{what} keys {list(value)} are not in Go's order")
        if not REQUIRED.get(what, set()) <= set(value):
            errors.append(f"{what} lacks {sorted(REQUIRED[what] - set(value))}")

    check("event", event, EVENT_KEYS)
    payload = event.get("message_part") or {}
    if payload:
        check("message_part", payload, MESSAGE_PART_KEYS)
        check("part", payload["part"], PART_KEYS)
    message = event.get("message") or {}
    if message:
        check("message", message, MESSAGE_KEYS)
        for part in message.get("content", ()):
            check("part", part, PART_KEYS)
    for what, order in (("retry", RETRY_KEYS), ("error", ERROR_KEYS), ("status", ("status",))):
        if what in event:
            check(what, event[what], order)
    return errors


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_fixtures_follow_the_go_structs(name: str) -> None:
    """The transcribed fixtures themselves keep Go's key order (so they can be the yardstick)."""
    assert [e for event in _fixture_events(name) for e in _shape_errors(event)] == []


def _pattern(events: Iterable[Event], *, optional: frozenset[str] = frozenset({"queue_update"})) -> list[str]:
    """The event types in order, repeats collapsed, events a sync adds only when needed left out."""
    return [kind for kind, _ in groupby(e["type"] for e in events if e["type"] not in optional)]


@pytest.fixture
async def sim() -> AsyncIterator[CoderSim]:
    async with CoderSim(
        tokens={TOKEN: "alice"}, generation="v2-late", part_interval=0.0, chunk_words=50
    ) as coder:
        yield coder


def _client(sim: CoderSim) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=sim.url, headers={"Coder-Session-Token": TOKEN}, trust_env=False)


async def _create(sim: CoderSim, client: httpx.AsyncClient, text: str) -> str:
    body = {"content": [{"type": "text", "text": text}], "organization_id": sim.organization_id}
    response = await client.post(V2, json=body)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def _frames(sim: CoderSim, chat_id: str, start: int = 0) -> list[list[Event]]:
    """The frames the simulator wrote on the chat's sockets (one socket open in these tests)."""
    return [events for _, chat, events in sim.frame_log[start:] if chat == chat_id]


def _stream(sim: CoderSim, chat_id: str) -> connect:
    url = sim.url.replace("http://", "ws://") + f"{V2}/{chat_id}/stream"
    return connect(url, additional_headers={"Coder-Session-Token": TOKEN}, proxy=None)


def _events(sim: CoderSim, chat_id: str, start: int = 0) -> list[Event]:
    return [event for frame in _frames(sim, chat_id, start) for event in frame]


WAITING = {"status": "waiting"}


async def test_the_simulator_streams_a_retry_as_the_fixture_does(sim: CoderSim) -> None:
    """A retried model call: numbered parts, retry, preview_reset, the new attempt from seq 1."""
    go = asyncio.Event()
    steps: list[Step] = [
        Gate(go),
        Text("Hel"),
        Retry(attempt=1, delay_ms=1000, error="rate limited"),
        Text("Hello"),
    ]
    sim.agent = lambda prompt: steps
    async with _client(sim) as client:
        chat_id = await _create(sim, client, "go")
        async with _stream(sim, chat_id):
            await sim.wait_for(lambda: bool(_frames(sim, chat_id)))
            start = len(sim.frame_log)
            go.set()
            await sim.wait_for(lambda: WAITING in (e.get("status") for e in _events(sim, chat_id, start)))
    events = _events(sim, chat_id, start)
    parts = [e for e in events if e["type"] == "message_part"]
    assert [p["message_part"]["part"]["text"] for p in parts] == ["Hel", "Hello"]
    fixture = _fixture_events("stream_retry_preview_reset.json")
    window = events[events.index(parts[0]) : events.index(parts[-1]) + 1]
    assert _pattern(window) == _pattern(fixture) == ["message_part", "retry", "preview_reset", "message_part"]
    numbers = [tuple(p["message_part"][k] for k in MESSAGE_PART_KEYS[2:]) for p in parts]
    assert [attempt_and_seq[1:] for attempt_and_seq in numbers] == [(1, 1), (2, 1)]
    assert [e for event in events for e in _shape_errors(event)] == []


async def test_the_simulator_rewrites_and_revises_history_as_the_fixtures_do(sim: CoderSim) -> None:
    """The connect snapshot, an edit's history reset and a revision, each in the fixtures' order."""
    sim.agent = lambda prompt: [Text(f"Echo: {prompt}")]
    async with _client(sim) as client:
        chat_id = await _create(sim, client, "first")
        chat = sim.chats[chat_id]
        await sim.wait_for(lambda: chat.status == "waiting" and len(chat.messages) == 2)
        async with _stream(sim, chat_id):
            await sim.wait_for(lambda: bool(_frames(sim, chat_id)))
            snapshot = _frames(sim, chat_id)[0]
            start = len(sim.frame_log)
            first = chat.messages[0]["id"]
            edit = {"content": [{"type": "text", "text": "first, edited"}]}
            response = await client.patch(f"{V2}/{chat_id}/messages/{first}", json=edit)
            assert response.status_code == 200, response.text
            await sim.wait_for(lambda: WAITING in (e.get("status") for e in _events(sim, chat_id, start)))
            rewrite = _events(sim, chat_id, start)
            start = len(sim.frame_log)
            sim.rewrite_message(chat_id, chat.messages[-1]["id"], "Echo: revised")
            await sim.wait_for(
                lambda: {"type": "preview_reset", "chat_id": chat_id} in _events(sim, chat_id, start)
            )
            revision = _events(sim, chat_id, start)
    revision_fixture = _fixture("stream_message_revision.json")
    assert _pattern(snapshot) == _pattern(revision_fixture[0]) == ["message", "status", "preview_reset"]
    reset = rewrite[: rewrite.index(next(e for e in rewrite if e["type"] == "preview_reset")) + 1]
    fixture = _fixture_events("stream_history_reset.json")
    assert _pattern(reset) == _pattern(fixture) == ["history_reset", "message", "preview_reset"]
    assert [e["message"]["id"] for e in reset if e["type"] == "message"] == [
        m["id"] for m in chat.messages[:1]
    ]
    assert _pattern(revision) == _pattern(revision_fixture[1]) == ["message", "preview_reset"]
    assert [e for event in snapshot + rewrite + revision for e in _shape_errors(event)] == []
