"""The G0a backend (``v2-legacy``) against the simulator's 2025 AI-SDK chat API, in both stream forms."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from bridge.coder.aisdk import AiSdkBackend, AiSdkOptions
from bridge.coder.aisdk_store import MemoryAiSdkStore
from bridge.coder.backend import ChatStream, connect_backend
from bridge.coder.errors import CoderModelUnknown, CoderRejected
from bridge.coder.types import (
    BackendNotice,
    Chat,
    ChatId,
    ChatPhase,
    ConnectedEvent,
    ErrorEvent,
    InputPart,
    MessageEvent,
    PartEvent,
    QueueEvent,
    StatusEvent,
    StreamEvent,
)
from bridge.sim import scenarios
from bridge.sim.coder import CoderSim
from bridge.sim.coder_agent import Fail, Gate, Step, Text, ToolCall
from bridge.slack.failures import render_failure
from bridge.tasks import TaskGroup

TOKEN = "sim-token"
TIMEOUT = 5.0
Events = list[StreamEvent]


def workspace_lookup(prompt: str) -> list[Step]:
    return [
        Text("Let me look."),
        ToolCall("coder_list_workspaces", {"owner": "me"}, [{"name": "dev"}]),
        Text("You have one workspace."),
    ]


@pytest.fixture(params=["v1", "sse"])
async def sim(request: pytest.FixtureRequest) -> AsyncIterator[CoderSim]:
    """The G0a simulator in each stream form."""
    async with CoderSim(generation="ai-sdk", stream_format=request.param, part_interval=0.001) as sim:
        yield sim


@pytest.fixture
async def backend(sim: CoderSim) -> AsyncIterator[AiSdkBackend]:
    client = AiSdkBackend(sim.url, TOKEN, spawn=TaskGroup("test").spawn)
    yield client
    await client.aclose()


def text(content: str) -> list[InputPart]:
    return [InputPart.of_text(content)]


async def collect(stream: ChatStream, until: Callable[[Events], bool], prior: Events | None = None) -> Events:
    """Events of ``stream`` (after ``prior``) until ``until`` holds for all seen so far."""
    events: Events = list(prior or ())
    async with asyncio.timeout(TIMEOUT):
        async for batch in stream:
            events.extend(batch)
            if until(events):
                return events
    raise AssertionError(f"stream ended early: {events}")


def ended(events: Events) -> bool:
    """The last status seen is not busy, after a busy one."""
    statuses = [e.status.phase for e in events if isinstance(e, StatusEvent)]
    return ChatPhase.WORKING in statuses and not statuses[-1].busy


def messages(events: Events) -> list[Any]:
    return [e.message for e in events if isinstance(e, MessageEvent)]


async def gated_chat(
    sim: CoderSim, backend: AiSdkBackend, steps: Callable[[str], list[Step]]
) -> tuple[Chat, asyncio.Event]:
    gate = asyncio.Event()
    sim.agent = lambda prompt: [Gate(gate), *steps(prompt)]
    chat = await backend.create_chat(text("which workspaces do I have?"), labels={"slack_thread": "1.2"})
    return chat, gate


async def test_first_reply_streams_text_and_tools(sim: CoderSim, backend: AiSdkBackend) -> None:
    """create_chat posts the first message; its reply arrives as deltas, steps and a final idle."""
    chat, gate = await gated_chat(sim, backend, workspace_lookup)
    assert chat.status.phase is ChatPhase.WORKING
    assert chat.labels == {"slack_thread": "1.2"}
    stream = backend.stream(chat.id, after_id=0)
    first = await anext(aiter(stream))
    assert first == [ConnectedEvent(after_id=0)]
    snapshot = await anext(aiter(stream))
    assert snapshot[0] == StatusEvent(status=chat.status)
    gate.set()
    events = await collect(stream, ended, snapshot)
    await stream.aclose()
    deltas = [e.part for e in events if isinstance(e, PartEvent)]
    assert "".join(p.text for p in deltas if p.type == "text") == "Let me look.You have one workspace."
    call = next(p for p in deltas if p.type == "tool-call" and p.args is not None)
    assert (call.tool_name, call.args) == ("coder_list_workspaces", {"owner": "me"})
    assert next(p for p in deltas if p.type == "tool-result").result == [{"name": "dev"}]
    seen = messages(events)
    assert [(m.id, m.role) for m in seen] == [(1, "user"), (2, "assistant"), (3, "assistant")]
    assert [m.text for m in seen] == [
        "which workspaces do I have?",
        "Let me look.",
        "You have one workspace.",
    ]
    stored = await backend.recent_messages(chat.id)
    assert [m.content for m in stored] == [m.content for m in seen]
    assert (await backend.get_chat(chat.id)).status.name == "waiting"


async def test_follow_up_while_streaming_is_queued_then_answered_in_order(
    sim: CoderSim, backend: AiSdkBackend
) -> None:
    """A send during a reply is queued (QueueEvent), then posted when the reply ends."""
    chat, gate = await gated_chat(sim, backend, lambda prompt: [Text(f"Echo: {prompt}")])
    stream = backend.stream(chat.id)
    snapshot = await collect(stream, lambda events: len(events) > 1)
    result = await backend.send_message(chat.id, text("and the stopped ones?"))
    assert result.queued
    assert result.queued_message is not None
    assert result.queued_message.text == "and the stopped ones?"
    gate.set()
    events = await collect(stream, lambda events: ended(events) and len(messages(events)) >= 4, snapshot)
    await stream.aclose()
    queues = [e.queue for e in events if isinstance(e, QueueEvent)]
    assert [len(q) for q in queues] == [1, 0]
    contents = [m.text for m in await backend.recent_messages(chat.id)]
    assert contents == [
        "which workspaces do I have?",
        "Echo: which workspaces do I have?",
        "and the stopped ones?",
        "Echo: and the stopped ones?",
    ]
    assert [m.id for m in messages(events)] == [1, 2, 3, 4]


async def test_interrupt_cancels_the_reply(sim: CoderSim, backend: AiSdkBackend) -> None:
    """interrupt closes the reply body: the chat is idle and the partial step is not stored."""
    chat, _gate = await gated_chat(sim, backend, workspace_lookup)
    stream = backend.stream(chat.id)
    snapshot = await collect(stream, lambda events: len(events) > 1)
    interrupted = await backend.interrupt(chat.id)
    assert interrupted.status.phase is ChatPhase.IDLE
    events = await collect(stream, ended, snapshot)
    await stream.aclose()
    await sim.wait_for(lambda: sim.active_streams(chat.id) == 0)
    assert [m.role for m in await backend.recent_messages(chat.id)] == ["user"]
    assert not any(isinstance(e, ErrorEvent) for e in events)
    assert (await backend.interrupt(chat.id)).status.phase is ChatPhase.IDLE  # nothing streams: no-op


async def test_promote_sends_a_queued_message_now(sim: CoderSim, backend: AiSdkBackend) -> None:
    """Promoting interrupts the reply and posts the queued message, returned with its position."""
    chat, _gate = await gated_chat(sim, backend, lambda prompt: [Text(f"Echo: {prompt}")])
    queued = (await backend.send_message(chat.id, text("second"))).queued_message
    assert queued is not None
    sim.agent = scenarios.echo
    promoted = await backend.promote_queued(chat.id, queued.id)
    assert (promoted.id, promoted.text) == (2, "second")
    await sim.wait_for(lambda: len(sim.chats[chat.id].messages) == 3)
    with pytest.raises(CoderRejected, match="not queued"):
        await backend.promote_queued(chat.id, queued.id)


@pytest.mark.parametrize("steps", [[Text("Looking."), Fail("Anthropic API error: overloaded (529)")]])
async def test_a_failed_reply_is_an_error(sim: CoderSim, backend: AiSdkBackend, steps: list[Step]) -> None:
    """SSE sends an error part; a v1 body just ends early: both end in ErrorEvent and status error."""
    chat, gate = await gated_chat(sim, backend, lambda prompt: steps)
    stream = backend.stream(chat.id)
    snapshot = await collect(stream, lambda events: len(events) > 1)
    gate.set()
    events = await collect(stream, ended, snapshot)
    await stream.aclose()
    assert any(isinstance(e, ErrorEvent) for e in events)
    assert (await backend.get_chat(chat.id)).status.phase is ChatPhase.ERROR


async def test_archive_and_rename_are_refused(backend: AiSdkBackend) -> None:
    """G0a cannot archive or rename, and says so; a title a person gives stays with the bridge."""
    chat_id = ChatId("11111111-1111-1111-1111-111111111111")
    with pytest.raises(CoderRejected, match="cannot archive chats"):
        await backend.set_archived(chat_id, True)
    with pytest.raises(CoderRejected, match="cannot rename chats"):
        await backend.rename(chat_id, "Login bug")
    assert backend.capabilities.rename == "bridge"


async def test_edit_is_refused_and_a_queued_follow_up_can_be_deleted(
    sim: CoderSim, backend: AiSdkBackend
) -> None:
    """G0a cannot edit messages (said plainly); a follow-up held in the queue can be taken out."""
    chat, gate = await gated_chat(sim, backend, lambda prompt: [Text(f"Echo: {prompt}")])
    with pytest.raises(CoderRejected, match="cannot edit messages"):
        await backend.edit_message(chat.id, 1, text("fixed"))
    result = await backend.send_message(chat.id, text("never mind"))
    assert result.queued_message is not None
    assert [q.id for q in await backend.queued_messages(chat.id)] == [result.queued_message.id]
    await backend.delete_queued(chat.id, result.queued_message.id)
    assert await backend.queued_messages(chat.id) == []
    assert backend.accepted_media_types == {"image/gif", "image/jpeg", "image/png", "image/webp"}
    gate.set()


async def test_no_watch_or_diff_in_this_generation(backend: AiSdkBackend) -> None:
    """G0a has no watch socket and no diffs: the backend says so instead of failing."""
    chat = await backend.create_chat(text("hello"), labels={})
    assert backend.watch() is None
    assert await backend.get_diff(chat.id) is None


async def test_configured_model_is_checked_against_the_servers_list(sim: CoderSim) -> None:
    """prepare() refuses a model the deployment does not list, naming the valid ones."""
    client = AiSdkBackend(
        sim.url, TOKEN, spawn=TaskGroup("test").spawn, options=AiSdkOptions(model="gpt-nope")
    )
    try:
        with pytest.raises(CoderModelUnknown, match="gpt-nope") as caught:
            await client.prepare()
    finally:
        await client.aclose()
    assert caught.value.detail == "valid: claude-3-7-sonnet-latest"


async def test_without_a_configured_model_the_servers_first_is_used() -> None:
    """No model configured: the first of GET /api/v2/deployment/llms is sent with every message."""
    async with CoderSim(generation="ai-sdk", models=("m-one", "m-two"), part_interval=0.001) as sim:
        sim.agent = scenarios.echo
        client = AiSdkBackend(sim.url, TOKEN, spawn=TaskGroup("test").spawn)
        try:
            assert await client.prepare() == "m-one"
            await client.create_chat(text("hi"), labels={})
        finally:
            await client.aclose()
        sent = next(r.json for r in sim.requests if r.path.endswith("/messages") and r.method == "POST")
    assert sent["model"] == "m-one"


async def test_a_build_without_the_model_list_sends_the_model_unchecked(sim: CoderSim) -> None:
    """Without the llms route the configured model goes unchecked; Coder's 400 then says it is wrong."""
    sim.fail_next("GET", r"/deployment/llms$", 404, "Route not found.")
    client = AiSdkBackend(
        sim.url, TOKEN, spawn=TaskGroup("test").spawn, options=AiSdkOptions(model="gpt-nope")
    )
    try:
        assert await client.prepare() == "gpt-nope"
        with pytest.raises(CoderRejected, match="Model not found"):
            await client.create_chat(text("hi"), labels={})
    finally:
        await client.aclose()


async def test_stream_snapshot_follows_after_id(sim: CoderSim, backend: AiSdkBackend) -> None:
    """Ids are positions: after_id=n snapshots messages n+1…; recent_messages keeps the last ones."""
    sim.agent = scenarios.echo
    chat = await backend.create_chat(text("hi"), labels={"a": "1"})
    await sim.wait_for(lambda: len(sim.chats[chat.id].messages) == 2)
    for after_id, expected in [(None, [1, 2]), (0, [1, 2]), (1, [2]), (2, [])]:
        stream = backend.stream(chat.id, after_id=after_id)
        events = await collect(stream, lambda events: len(events) > 1)
        await stream.aclose()
        assert events[0] == ConnectedEvent(after_id=after_id)
        assert isinstance(events[1], StatusEvent)
        assert [m.id for m in messages(events)] == expected
    assert [m.text for m in await backend.recent_messages(chat.id, limit=1)] == ["Echo: hi"]
    assert [c.id for c in await backend.list_chats(labels={"a": "1"})] == [chat.id]
    assert await backend.list_chats(labels={"a": "2"}) == []
    assert backend.chat_url(chat.id) == f"{sim.url}/chat/{chat.id}"


async def test_uploaded_files_are_sent_inline(sim: CoderSim, backend: AiSdkBackend) -> None:
    """upload_file keeps the bytes; the message carries them as an aisdk file part."""
    file_id = await backend.upload_file("org", b"\x89PNG", "image/png", "a.png")
    chat = await backend.create_chat([InputPart.of_text("look"), InputPart.of_file(file_id)], labels={})
    sent = next(r.json for r in sim.requests if r.path.endswith("/messages") and r.method == "POST")
    assert sent["message"]["parts"][1] == {
        "type": "file",
        "mimeType": "image/png",
        "data": base64.b64encode(b"\x89PNG").decode(),
    }
    assert chat.title == "New Chat"


async def test_detection_finds_the_ai_sdk_api_with_and_without_chats(sim: CoderSim) -> None:
    """'auto' recognises G0a by its agentic-chat experiment (no chats yet) or its four-key chats."""
    empty, reason = await connect_backend(sim.url, TOKEN, spawn=TaskGroup("test").spawn)
    await empty.aclose()
    assert empty.generation == "v2-legacy"
    assert reason.endswith("lists agentic-chat, so the 2025 AI-SDK chat API; model claude-3-7-sonnet-latest")
    sim.agent = scenarios.echo
    await empty_backend_chat(sim)
    listed, reason = await connect_backend(sim.url, TOKEN, spawn=TaskGroup("test").spawn)
    await listed.aclose()
    assert listed.generation == "v2-legacy"
    assert "GET /api/v2/chats answered 200 with a chat list of the 2025 AI-SDK chat API" in reason
    forced, reason = await connect_backend(sim.url, TOKEN, api="v2-legacy", spawn=TaskGroup("test").spawn)
    await forced.aclose()
    assert (forced.generation, "configuration" in reason) == ("v2-legacy", True)


async def test_an_unknown_model_stops_detection(sim: CoderSim) -> None:
    """connect_backend checks the model at start: CoderModelUnknown, not a failure at the first message."""
    with pytest.raises(CoderModelUnknown, match="valid: claude-3-7-sonnet-latest"):
        await connect_backend(
            sim.url, TOKEN, ai_sdk=AiSdkOptions(model="gpt-nope"), spawn=TaskGroup("test").spawn
        )


async def empty_backend_chat(sim: CoderSim) -> None:
    creator = AiSdkBackend(sim.url, TOKEN, spawn=TaskGroup("test").spawn)
    await creator.create_chat(text("hi"), labels={})
    await creator.aclose()


async def test_held_follow_ups_survive_a_restart_and_go_out_then(sim: CoderSim) -> None:
    """A stop cuts the reply; the next process says so once and sends what was held behind it."""
    store = MemoryAiSdkStore()
    first = AiSdkBackend(sim.url, TOKEN, spawn=TaskGroup("test").spawn, options=AiSdkOptions(store=store))
    chat, _gate = await gated_chat(sim, first, lambda prompt: [Text(f"Echo: {prompt}")])
    held = await first.send_message(chat.id, text("second"))
    assert held.queued
    await first.aclose()
    await sim.wait_for(lambda: sim.chats[chat.id].status == "waiting")
    sim.agent = scenarios.echo
    second = AiSdkBackend(sim.url, TOKEN, spawn=TaskGroup("test").spawn, options=AiSdkOptions(store=store))
    try:
        stream = second.stream(chat.id, after_id=1)
        events = await collect(stream, lambda events: ended(events) and len(messages(events)) >= 2)
        await stream.aclose()
        again = second.stream(chat.id, after_id=3)
        replay = await collect(again, lambda events: len(events) > 1)
        await again.aclose()
    finally:
        await second.aclose()
    assert [e.notice for e in events if isinstance(e, ErrorEvent)] == [BackendNotice.REPLY_CUT_BY_RESTART]
    assert [m.text for m in messages(events)] == ["second", "Echo: second"]
    assert not any(isinstance(e, ErrorEvent) for e in replay), "the cut-off reply is told once"
    assert await store.held(chat.id) == []


async def test_a_creation_cut_short_is_finished_not_repeated(sim: CoderSim) -> None:
    """A chat created but not started (crash before its first message) is found by its labels and
    gets the first message; only started chats are listed by label."""
    store = MemoryAiSdkStore()
    client = AiSdkBackend(sim.url, TOKEN, spawn=TaskGroup("test").spawn, options=AiSdkOptions(store=store))
    sim.agent = scenarios.echo
    try:
        raw_created = await create_raw_chat(client)
        await store.remember_chat(raw_created, {"slack_thread": "1.1"})
        assert await client.list_chats(labels={"slack_thread": "1.1"}) == [], "not started yet"
        chat = await client.create_chat(text("fix it"), labels={"slack_thread": "1.1"})
        await sim.wait_for(lambda: len(sim.chats[chat.id].messages) == 2)
        assert chat.id == raw_created
        assert len(sim.chats) == 1
        listed = await client.list_chats(labels={"slack_thread": "1.1"})
        assert [(c.id, c.labels) for c in listed] == [(chat.id, {"slack_thread": "1.1"})]
    finally:
        await client.aclose()


async def create_raw_chat(client: AiSdkBackend) -> ChatId:
    """POST /chats alone, as a process that died right after it would have left things."""
    async with httpx.AsyncClient(base_url=client.base_url, headers={"Coder-Session-Token": TOKEN}) as http:
        response = await http.post("/api/v2/chats")
    return ChatId(response.json()["id"])


async def test_archive_deletes_the_chat_only_when_opted_in(sim: CoderSim) -> None:
    """Opted in, archiving deletes the chat and forgets it; unarchiving cannot bring it back."""
    store = MemoryAiSdkStore()
    client = AiSdkBackend(
        sim.url, TOKEN, spawn=TaskGroup("test").spawn, options=AiSdkOptions(store=store, archive_deletes=True)
    )
    sim.agent = scenarios.echo
    try:
        assert client.capabilities.archive == "delete"
        chat = await client.create_chat(text("hi"), labels={"slack_thread": "2.2"})
        await client.set_archived(chat.id, True)
        assert chat.id not in sim.chats
        assert await store.get_chat(chat.id) is None
        with pytest.raises(CoderRejected, match="cannot come back"):
            await client.set_archived(chat.id, False)
    finally:
        await client.aclose()


async def test_a_follow_up_is_held_even_when_the_oldest_cannot_go_out(sim: CoderSim) -> None:
    """After an interrupt a new follow-up is held and the oldest sent; if Coder refuses, none is lost."""
    store = MemoryAiSdkStore()
    client = AiSdkBackend(sim.url, TOKEN, spawn=TaskGroup("test").spawn, options=AiSdkOptions(store=store))
    try:
        chat, _gate = await gated_chat(sim, client, lambda prompt: [Text(f"Echo: {prompt}")])
        assert (await client.send_message(chat.id, text("second"))).queued
        await client.interrupt(chat.id)
        sim.fail_next("POST", r"/messages$", 500, "Chat processor is unavailable.")
        assert (await client.send_message(chat.id, text("third"))).queued
        assert [h.queued().text for h in await store.held(chat.id)] == ["second", "third"]
    finally:
        await client.aclose()


async def test_a_held_follow_up_coder_refuses_does_not_block_the_next(sim: CoderSim) -> None:
    """A held follow-up Coder refuses for good is dropped with a notice; the next one still goes."""
    client = AiSdkBackend(
        sim.url, TOKEN, spawn=TaskGroup("test").spawn, options=AiSdkOptions(store=MemoryAiSdkStore())
    )
    try:
        chat, gate = await gated_chat(sim, client, lambda prompt: [Text(f"Echo: {prompt}")])
        stream = client.stream(chat.id)
        snapshot = await collect(stream, lambda events: len(events) > 1)
        await client.send_message(chat.id, text("second"))
        await client.send_message(chat.id, text("third"))
        sim.fail_next("POST", r"/messages$", 400, "Failed to decode chat message")
        gate.set()
        events = await collect(
            stream,
            lambda events: ended(events) and any(m.text == "Echo: third" for m in messages(events)),
            snapshot,
        )
        await stream.aclose()
    finally:
        await client.aclose()
    refused = [e for e in events if isinstance(e, ErrorEvent)]
    assert [e.notice for e in refused] == [BackendNotice.FOLLOW_UP_REFUSED]
    assert render_failure(refused[0].failure).startswith(
        "Coder refused a queued follow-up (Failed to decode chat message)"
    )
    assert [m.text for m in messages(events) if m.role == "user"] == ["which workspaces do I have?", "third"]


async def test_a_streaming_reply_is_read_by_a_task_of_the_group_handed_in(sim: CoderSim) -> None:
    """The reply reader starts through the spawner given (named, kept, watched) and ends with the reply."""
    group = TaskGroup("coder")
    client = AiSdkBackend(sim.url, TOKEN, spawn=group.spawn)
    try:
        chat, gate = await gated_chat(sim, client, lambda prompt: [Text(f"Echo: {prompt}")])
        assert len(group) == 1
        gate.set()
        assert await group.wait(10)
        assert (await client.get_chat(chat.id)).status.phase is not ChatPhase.WORKING
    finally:
        await client.aclose()
