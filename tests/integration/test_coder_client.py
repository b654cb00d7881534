"""The Coder client (G1 experimental and G2 promoted backends) against the simulator over loopback."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import socket
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any, get_args

import pytest
from aiohttp import web

from bridge.coder.aisdk import AiSdkBackend
from bridge.coder.backend import ChatStream, connect_backend
from bridge.coder.backoff import Backoff
from bridge.coder.errors import (
    CoderApiMissing,
    CoderAuthError,
    CoderError,
    CoderNotFound,
    CoderRejected,
    CoderUnavailable,
    CoderUnreadable,
)
from bridge.coder.experimental import ExperimentalBackend
from bridge.coder.rest import RetryPolicy
from bridge.coder.stream import ReconnectPolicy
from bridge.coder.types import (
    Chat,
    ChatId,
    ChatPhase,
    ConnectedEvent,
    ErrorKind,
    InputPart,
    MessageEvent,
    PartEvent,
    StatusEvent,
    StreamEvent,
    WatchEvent,
    WatchKind,
)
from bridge.coder.v2 import V2Backend
from bridge.sim.coder import CoderSim
from bridge.sim.coder_agent import Fail, Gate, Step, Text, ToolCall
from bridge.sim.coder_state import Framing, Generation
from bridge.tasks import TaskGroup

TOKEN = "sim-token"
FAST_RETRY = RetryPolicy(attempts=3, delays=Backoff(initial=0.01, cap=0.02).delays)
FAST_RECONNECT = ReconnectPolicy(max_failures=3, delays=lambda: itertools.repeat(0.01), open_timeout=2.0)
TIMEOUT = 5.0
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
FRAMINGS = get_args(Framing)


class RecordingObserver:
    """Keeps every observer report, to check what metrics would see."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []
        self.opened = 0
        self.closed = 0
        self.reconnects = 0

    def call_finished(self, operation: str, outcome: str, seconds: float) -> None:
        self.calls.append((operation, outcome))

    def stream_opened(self) -> None:
        self.opened += 1

    def stream_closed(self) -> None:
        self.closed += 1

    def stream_reconnecting(self) -> None:
        self.reconnects += 1


@pytest.fixture(params=["experimental", "v2", "v2-late"])
async def sim(request: pytest.FixtureRequest) -> AsyncIterator[CoderSim]:
    """A simulator of each implemented generation (and G2 as the newest source behaves): generic
    client tests run against each."""
    async with CoderSim(generation=request.param, part_interval=0.001) as sim:
        yield sim


@pytest.fixture
async def g1_sim() -> AsyncIterator[CoderSim]:
    """A simulator of the experimental API only, for G1-specific behaviour."""
    async with CoderSim(part_interval=0.001) as sim:
        yield sim


@pytest.fixture
def observer() -> RecordingObserver:
    return RecordingObserver()


def make_backend(sim: CoderSim, token: str = TOKEN, **options: Any) -> ExperimentalBackend:
    """The backend of the simulator's generation (V2Backend is an ExperimentalBackend)."""
    options = {"retry": FAST_RETRY, "reconnect": FAST_RECONNECT, **options}
    backend = V2Backend if sim.dialect.promoted else ExperimentalBackend
    return backend(sim.url, token, **options)


def chats(sim: CoderSim) -> str:
    """The chats base path the simulator's generation serves first (and the backend uses)."""
    return sim.dialect.bases[0]


@pytest.fixture
async def backend(sim: CoderSim, observer: RecordingObserver) -> AsyncIterator[ExperimentalBackend]:
    client = make_backend(sim, observer=observer)
    yield client
    await client.aclose()


def gated(gate: asyncio.Event, *after: Step) -> Callable[[str], list[Step]]:
    """A script that holds every turn at ``gate`` (keeping the chat busy), then plays ``after``."""
    return lambda prompt: [Gate(gate), *(after or [Text(f"Echo: {prompt}")])]


async def new_chat(backend: ExperimentalBackend, text: str = "Fix the login bug") -> Chat:
    return await backend.create_chat([InputPart.of_text(text)], labels={"source": "test"})


def paths(sim: CoderSim, method: str, path: str) -> list[dict[str, list[str]]]:
    """The query strings of the requests made to one method and path."""
    return [r.query for r in sim.requests if r.method == method and r.path == path]


class Reader:
    """Reads a stream in a background task, so tests wait on what arrived instead of sleeping."""

    def __init__(self, stream: ChatStream) -> None:
        self.stream = stream
        self.batches: list[list[StreamEvent]] = []
        self.changed = asyncio.Condition()
        self.task = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        async for batch in self.stream:
            async with self.changed:
                self.batches.append(batch)
                self.changed.notify_all()

    @property
    def events(self) -> list[StreamEvent]:
        return [event for batch in self.batches for event in batch]

    def messages(self) -> list[MessageEvent]:
        return [e for e in self.events if isinstance(e, MessageEvent)]

    async def until(self, predicate: Callable[[list[StreamEvent]], bool], timeout: float = TIMEOUT) -> None:
        async with asyncio.timeout(timeout), self.changed:
            await self.changed.wait_for(lambda: predicate(self.events) or self.task.done())
        if self.task.done():
            self.task.result()  # surface the stream's exception
            assert predicate(self.events), "stream ended early"

    async def close(self) -> None:
        await self.stream.aclose()
        async with asyncio.timeout(TIMEOUT):
            await self.task


def turn_finished(events: Iterable[StreamEvent], turns: int = 1) -> bool:
    """Whether ``turns`` assistant replies were persisted and the chat went idle after the last."""
    replies = 0
    idle_after_reply = False
    for event in events:
        if isinstance(event, MessageEvent) and event.message.role == "assistant":
            replies += 1
            idle_after_reply = False
        elif isinstance(event, StatusEvent):
            idle_after_reply = replies >= turns and event.status.phase is ChatPhase.IDLE
    return idle_after_reply


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# Detection ---------------------------------------------------------------------------------------


EXPERIMENTAL_FOUND = "GET /api/experimental/chats answered 200 with a chat list of the experimental Chats API"
V2_FOUND = "GET /api/v2/chats answered 200 with a chat list of the graduated Chats API of Coder 2.37+"


@pytest.mark.parametrize(
    ("generation", "expected", "findings"),
    [
        ("experimental", "experimental", [EXPERIMENTAL_FOUND, "GET /api/v2/chats answered 404"]),
        ("v2", "v2", ["GET /api/experimental/chats answered 404", V2_FOUND]),
        ("v2.37", "v2", [EXPERIMENTAL_FOUND, V2_FOUND]),
    ],
)
async def test_auto_detects_each_generation(
    generation: Generation, expected: str, findings: list[str]
) -> None:
    """'auto' probes both prefixes, prefers G2, and the reason names what each probe found."""
    async with CoderSim(generation=generation) as sim:
        creator = make_backend(sim)
        await new_chat(creator)
        await creator.aclose()
        backend, reason = await connect_backend(sim.url, TOKEN, retry=FAST_RETRY)
        try:
            assert backend.generation == expected
            assert (await backend.whoami()).username == "alice"
        finally:
            await backend.aclose()
    assert reason == "; ".join(findings)


@pytest.mark.parametrize(
    ("generation", "expected", "experimental_answer"),
    [("v2", "v2", "404"), ("v2.37", "v2", "200 with a chat list of the experimental Chats API")],
)
async def test_empty_v2_chat_list_is_resolved_by_the_models_route(
    generation: Generation, expected: str, experimental_answer: str
) -> None:
    """No chats yet: the org-scoped models route (v2.37+), found via /users/me, identifies G2."""
    async with CoderSim(generation=generation) as sim:
        backend, reason = await connect_backend(sim.url, TOKEN, retry=FAST_RETRY)
        await backend.aclose()
        models = f"/api/v2/organizations/{sim.organization_id}/chats/models"
    assert backend.generation == expected
    assert reason == (
        f"GET /api/experimental/chats answered {experimental_answer}; "
        f"GET /api/v2/chats answered 200 with an empty chat list; GET {models} answered 200, "
        "so the graduated Chats API of Coder 2.37+"
    )


async def test_configured_organization_is_used_for_the_models_probe() -> None:
    """With an organization configured, detection asks no /users/me."""
    async with CoderSim(generation="v2") as sim:
        backend, _ = await connect_backend(sim.url, TOKEN, organization_id=sim.organization_id)
        await backend.aclose()
        assert backend.generation == "v2"
        assert paths(sim, "GET", "/api/v2/users/me") == []


@pytest.mark.parametrize("api", ["experimental", "v2"])
async def test_forced_api_skips_probing(g1_sim: CoderSim, api: str) -> None:
    """api='experimental' or 'v2' builds that backend without a probe request."""
    backend, reason = await connect_backend(g1_sim.url, TOKEN, api=api)
    await backend.aclose()
    assert backend.generation == api
    assert "configuration" in reason
    assert g1_sim.requests == []


@pytest.mark.parametrize(
    ("generation", "path"),
    [("experimental", "/api/experimental/chats"), ("v2", "/api/v2/chats"), ("ai-sdk", "/api/v2/chats")],
)
async def test_no_chats_api_anywhere(generation: Generation, path: str) -> None:
    """When both probed paths answer 404 the error names what was probed and what answered."""
    async with CoderSim(generation=generation) as sim:
        sim.fail_next("GET", f"^{path}$", 404, "Route not found.")
        with pytest.raises(CoderApiMissing) as caught:
            await connect_backend(sim.url, TOKEN, retry=FAST_RETRY)
    assert "No Coder Chats API found" in caught.value.message
    assert caught.value.detail == "GET /api/experimental/chats answered 404; GET /api/v2/chats answered 404"


async def test_disabled_experiment_is_explained(g1_sim: CoderSim) -> None:
    """A 403 naming the experiment says how to enable it."""
    g1_sim.fail_next(
        "GET",
        r"^/api/experimental/chats$",
        403,
        "Chat functionality requires enabling the 'agents' experiment.",
    )
    with pytest.raises(CoderApiMissing, match="CODER_EXPERIMENTS=agents"):
        await connect_backend(g1_sim.url, TOKEN, retry=FAST_RETRY)


AI_SDK_FOUND = "GET /api/v2/chats answered 200 with a chat list of the 2025 AI-SDK chat API"


@pytest.mark.parametrize("with_chat", [True, False], ids=["chats", "no-chats"])
async def test_auto_detects_the_ai_sdk_api(with_chat: bool) -> None:
    """The 2025 API is told by its four-key chats, or with none yet by the agentic-chat experiment on a
    server without the G2 models route; the model checked at start ends the reason."""
    async with CoderSim(generation="ai-sdk", part_interval=0.001) as sim:
        if with_chat:
            creator = AiSdkBackend(sim.url, TOKEN, spawn=TaskGroup("test").spawn)
            await creator.create_chat([InputPart.of_text("hi")], labels={})
            await creator.aclose()
        backend, reason = await connect_backend(
            sim.url, TOKEN, retry=FAST_RETRY, spawn=TaskGroup("test").spawn
        )
        await backend.aclose()
        models = f"/api/v2/organizations/{sim.organization_id}/chats/models"
    assert backend.generation == "v2-legacy"
    found = (
        AI_SDK_FOUND
        if with_chat
        else f"GET /api/v2/chats answered 200 with an empty chat list; GET {models} answered 404; "
        "GET /api/v2/experiments lists agentic-chat, so the 2025 AI-SDK chat API"
    )
    assert reason == f"GET /api/experimental/chats answered 404; {found}; model claude-3-7-sonnet-latest"


async def test_disabled_ai_sdk_experiment_is_explained() -> None:
    """A 403 from the 2025 API's experiment gate names that experiment and what was probed."""
    async with CoderSim(generation="ai-sdk") as sim:
        sim.fail_next(
            "GET",
            r"^/api/v2/chats$",
            403,
            "Agentic Chat functionality requires enabling the 'agentic-chat' experiment.",
        )
        with pytest.raises(CoderApiMissing, match="CODER_EXPERIMENTS=agentic-chat") as caught:
            await connect_backend(sim.url, TOKEN, retry=FAST_RETRY)
    assert caught.value.detail == (
        "GET /api/experimental/chats answered 404; GET /api/v2/chats answered 403 (experiment disabled)"
    )


async def test_disabled_experimental_prefix_does_not_hide_v2() -> None:
    """A 403 on the experimental prefix is only noted when /api/v2/chats serves G2."""
    async with CoderSim(generation="v2.37") as sim:
        creator = make_backend(sim)
        await new_chat(creator)
        await creator.aclose()
        sim.fail_next("GET", r"^/api/experimental/chats$", 403, "Requires enabling the 'agents' experiment.")
        backend, reason = await connect_backend(sim.url, TOKEN, retry=FAST_RETRY)
        await backend.aclose()
    assert backend.generation == "v2"
    assert reason.startswith(
        "GET /api/experimental/chats answered 403 (experiment disabled); GET /api/v2/chats"
    )


async def test_detection_with_a_bad_token(sim: CoderSim) -> None:
    """Probing with a wrong token is an auth error, not a missing API."""
    with pytest.raises(CoderAuthError):
        await connect_backend(sim.url, "wrong-token", retry=FAST_RETRY)


async def test_detection_of_an_unreachable_server() -> None:
    """Nothing listening: CoderUnavailable naming the probed URL."""
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(CoderUnavailable, match=f"{url}/api/experimental/chats"):
        await connect_backend(url, TOKEN, retry=FAST_RETRY)


async def test_unknown_api_setting() -> None:
    """An unsupported api value lists the supported ones."""
    with pytest.raises(CoderApiMissing, match="auto, experimental"):
        await connect_backend("http://127.0.0.1:1", TOKEN, api="v3")


# REST --------------------------------------------------------------------------------------------


async def test_create_chat_sends_labels_and_the_users_organization(
    sim: CoderSim, backend: ExperimentalBackend
) -> None:
    """create_chat sends content, labels and the organization looked up from /users/me (once)."""
    sim.agent = gated(asyncio.Event())
    first = await new_chat(backend, "Fix the login bug")
    await new_chat(backend, "Another one")
    stored = sim.chats[first.id]
    assert stored.labels == {"source": "test"}
    assert first.title.startswith("Fix the login bug")
    assert first.status.phase in (ChatPhase.STARTING, ChatPhase.WORKING)
    bodies = [r.json for r in sim.requests if r.method == "POST" and r.path == chats(sim)]
    assert [b["organization_id"] for b in bodies] == [sim.organization_id] * 2
    assert bodies[0]["content"] == [{"type": "text", "text": "Fix the login bug"}]
    assert len(paths(sim, "GET", "/api/v2/users/me")) == 1


@pytest.mark.parametrize("options", [{"framing": "bare"}, {"generation": "v2"}], ids=["g1-bare", "v2"])
async def test_organization_is_required(options: dict[str, Any]) -> None:
    """Later G1 builds and G2 reject a create without organization_id; an explicit one is used as given."""
    async with CoderSim(**options) as sim:
        client = make_backend(sim, organization_id=str(uuid.uuid4()))
        try:
            with pytest.raises(CoderRejected, match="not a member"):
                await new_chat(client)
            chat = await client.create_chat(
                [InputPart.of_text("hi")], labels={}, organization_id=sim.organization_id
            )
            assert chat.id in sim.chats
        finally:
            await client.aclose()


async def test_send_is_queued_while_busy_and_delivered_when_idle(
    sim: CoderSim, backend: ExperimentalBackend
) -> None:
    """A follow-up to a busy chat is queued; one to an idle chat becomes a message."""
    gate = asyncio.Event()
    sim.agent = gated(gate)
    chat = await new_chat(backend)
    queued = await backend.send_message(chat.id, [InputPart.of_text("and the tests")])
    assert queued.queued
    assert queued.queued_message is not None
    assert queued.queued_message.text == "and the tests"
    gate.set()
    await sim.wait_for(lambda: sim.chats[chat.id].status == "waiting" and not sim.chats[chat.id].queue)
    delivered = await backend.send_message(chat.id, [InputPart.of_text("thanks")])
    assert not delivered.queued
    assert delivered.message is not None
    assert (delivered.message.role, delivered.message.text) == ("user", "thanks")


async def test_recent_messages_are_oldest_first(sim: CoderSim, backend: ExperimentalBackend) -> None:
    """Coder pages newest first; recent_messages returns the newest ones in id order."""
    chat = await new_chat(backend, "first")
    await sim.wait_for(lambda: sim.chats[chat.id].status == "waiting")
    messages = await backend.recent_messages(chat.id)
    ids = [m.id for m in messages]
    assert ids == sorted(ids)
    assert messages[0].role == "user"
    assert messages[0].text == "first"
    assert messages[-1].role == "assistant"
    assert [m.id for m in await backend.recent_messages(chat.id, limit=2)] == ids[-2:]


async def test_list_chats_filters_by_labels(sim: CoderSim, backend: ExperimentalBackend) -> None:
    """list_chats passes every label as a key:value filter."""
    mine = await backend.create_chat([InputPart.of_text("a")], labels={"team": "T1", "thread": "1"})
    await backend.create_chat([InputPart.of_text("b")], labels={"team": "T1", "thread": "2"})
    found = await backend.list_chats(labels={"team": "T1", "thread": "1"})
    assert [c.id for c in found] == [mine.id]
    assert len(await backend.list_chats()) == 2


async def test_list_chats_keeps_only_labelled_chats_when_coder_ignores_the_filter(
    sim: CoderSim, backend: ExperimentalBackend
) -> None:
    """An early build that lists every chat whatever the label filter: only the chats whose own
    labels match come back, so a lookup by a thread's labels never finds another thread's chat."""
    mine = await backend.create_chat([InputPart.of_text("a")], labels={"slack_thread": "1"})
    await backend.create_chat([InputPart.of_text("b")], labels={"slack_thread": "2"})
    sim.ignore_label_filters = True
    assert [c.id for c in await backend.list_chats(labels={"slack_thread": "1"})] == [mine.id]
    assert await backend.list_chats(labels={"slack_thread": "3"}) == []


# Builds that differ (reference 0a) ---------------------------------------------------------------


async def test_promote_answers_the_message_or_only_accepts_it(
    sim: CoderSim, backend: ExperimentalBackend
) -> None:
    """Older builds answer a promote with the message (200); the newest only accept it (202), and
    the message comes on the stream: both are a promotion, neither an unreadable answer."""
    gate = asyncio.Event()
    sim.agent = gated(gate)
    chat = await new_chat(backend)
    queued = await backend.send_message(chat.id, [InputPart.of_text("do this next")])
    assert queued.queued_message is not None
    promoted = await backend.promote_queued(chat.id, queued.queued_message.id)
    if sim.dialect.late:
        assert promoted is None
    else:
        assert promoted is not None
        assert (promoted.role, promoted.text) == ("user", "do this next")
    assert [m.text for m in await backend.recent_messages(chat.id) if m.role == "user"][-1] == "do this next"
    assert (await backend.facts()).promote_accepted == ("yes" if sim.dialect.late else "no")


async def test_mcp_servers_are_listed_where_the_build_lists_them(
    sim: CoderSim, backend: ExperimentalBackend
) -> None:
    """The newest build lists MCP servers per organization, older ones at the experimental path
    (a G2 client tries the organization first, then remembers what answered); a disabled server is
    listed as such."""
    sim.catalog.add_mcp_server("github", "GitHub")
    sim.catalog.add_mcp_server("legacy", enabled=False)
    for _ in range(2):
        servers = {c.name: c.unavailable for c in await backend.choices("mcp")}
        assert (servers["github"], servers["legacy"]) == ("", "disabled")
    organization = f"/api/v2/organizations/{sim.organization_id}/mcp-servers"
    asked = [r.path for r in sim.requests if "mcp" in r.path]
    if sim.dialect.late:
        assert asked == [organization, organization]
    elif sim.dialect.promoted:
        assert asked == [organization, "/api/experimental/mcp/servers", "/api/experimental/mcp/servers"]
    else:
        assert asked == ["/api/experimental/mcp/servers"] * 2


async def test_models_of_an_unavailable_provider_carry_its_reason() -> None:
    """The newest model listing names each provider's availability: a model whose provider has no
    key is listed with the provider's reason, the others are usable."""
    async with CoderSim(generation="v2-late") as sim:
        backend = make_backend(sim)
        try:
            models = {c.name: c.unavailable for c in await backend.choices("model")}
        finally:
            await backend.aclose()
    assert models == {
        "Claude Sonnet 4": "",
        "GPT-5": "",
        "Gemini 2.5 Pro": "missing_api_key",
    }


async def test_send_and_edit_answers_carry_messages_warnings_and_removed_ids() -> None:
    """The newest send answer lists the messages it inserted and Coder's warnings; an edit answer
    names the messages it removed."""
    async with CoderSim(generation="v2-late", part_interval=0.001) as sim:
        backend = make_backend(sim)
        try:
            chat = await new_chat(backend, "first")
            await sim.wait_for(lambda: sim.chats[chat.id].status == "waiting")
            sim.warnings = ['MCP server "jira" is unavailable.']
            sent = await backend.send_message(chat.id, [InputPart.of_text("second")])
            await sim.wait_for(lambda: sim.chats[chat.id].status == "waiting")
            assert sent.message is not None
            assert [m.id for m in sent.messages] == [sent.message.id]
            assert sent.warnings == ('MCP server "jira" is unavailable.',)
            later = [m["id"] for m in sim.chats[chat.id].messages if m["id"] >= sent.message.id]
            edited = await backend.edit_message(chat.id, sent.message.id, [InputPart.of_text("2nd")])
        finally:
            await backend.aclose()
    assert edited.message.text == "2nd"
    assert edited.deleted_message_ids == tuple(later)
    assert edited.warnings == ('MCP server "jira" is unavailable.',)


async def test_queued_send_on_a_failed_chat_promotes_the_queue_head() -> None:
    """The newest build: a chat that failed with a queue takes its head when the next message comes,
    and the answer lists it (the new message waits behind it)."""
    async with CoderSim(generation="v2-late", part_interval=0.001) as sim:
        gate = asyncio.Event()
        sim.agent = lambda prompt: [Gate(gate), Fail("model exploded")] if prompt == "go" else [Text("ok")]
        backend = make_backend(sim)
        try:
            chat = await new_chat(backend, "go")
            await backend.send_message(chat.id, [InputPart.of_text("head")])
            gate.set()
            await sim.wait_for(lambda: sim.chats[chat.id].status == "error")
            sent = await backend.send_message(chat.id, [InputPart.of_text("tail")])
        finally:
            await backend.aclose()
    assert sent.queued
    assert sent.queued_message is not None
    assert sent.queued_message.text == "tail"
    assert [m.text for m in sent.messages] == ["head"]


@pytest.mark.parametrize(
    ("status", "fields", "kind"),
    [
        (403, {"kind": "hook_denied"}, ErrorKind.HOOK_DENIED),
        (
            502,
            {"detail": "Lifecycle hook dispatch d1 failed (timeout).", "kind": "hook_dispatch_failed"},
            ErrorKind.HOOK_DISPATCH_FAILED,
        ),
        (
            409,
            {"spent_micros": 5230000, "limit_micros": 5000000, "resets_at": "2025-08-01T00:00:00Z"},
            ErrorKind.USAGE_LIMIT,
        ),
        (409, {}, ErrorKind.GENERIC),
        (400, {"kind": "from_the_future"}, ErrorKind.GENERIC),
    ],
    ids=["hook-denied", "hook-dispatch", "usage-limit", "plain-conflict", "unknown-kind"],
)
async def test_rest_errors_keep_their_kind(
    sim: CoderSim, backend: ExperimentalBackend, status: int, fields: dict[str, Any], kind: ErrorKind
) -> None:
    """An error body's kind (newer builds) or an older usage-limit body is kept on the error; an
    unknown kind reads as generic."""
    sim.fail_next("POST", f"^{chats(sim)}$", status, "Refused.", fields=fields)
    with pytest.raises(CoderError) as raised:
        await new_chat(backend)
    assert (raised.value.status, raised.value.kind) == (status, kind)


async def test_unreadable_answer_is_logged_with_an_id_and_told_without_internals(
    sim: CoderSim, backend: ExperimentalBackend, caplog: pytest.LogCaptureFixture
) -> None:
    """A 2xx answer of the wrong shape is a CoderUnreadable: the parser's text goes to the log under
    an error id, and the error's text carries the id and nothing of the parser."""
    chat = await new_chat(backend)
    sim.fail_next("GET", f"^{chats(sim)}/{chat.id}$", 200, "Surprise.", fields={"id": 7, "status": []})
    with pytest.raises(CoderUnreadable) as raised:
        await backend.get_chat(chat.id)
    error_id = raised.value.error_id
    assert str(raised.value) == f"Coder sent a chat this bridge could not read (error id {error_id})"
    logged = [r.getMessage() for r in caplog.records if error_id in r.getMessage()]
    assert len(logged) == 1
    assert "validation error" in logged[0]


async def test_facts_are_found_by_reading_only(sim: CoderSim, backend: ExperimentalBackend) -> None:
    """The doctor's look at the server: its version, where MCP servers are listed, whether label
    filters work and errors are classified; only GETs are made."""
    sim.agent = lambda prompt: [Fail("model exploded", kind="overloaded")]
    chat = await new_chat(backend)
    await sim.wait_for(lambda: sim.chats[chat.id].status == "error")
    before = len(sim.requests)
    facts = await backend.facts()
    assert {r.method for r in sim.requests[before:]} == {"GET"}
    assert facts.version == sim.dialect.version
    late = f"/api/v2/organizations/{sim.organization_id}/mcp-servers"
    assert facts.mcp_servers == (late if sim.dialect.late else "/api/experimental/mcp/servers")
    assert facts.promote_accepted == "unknown"
    assert facts.label_filters == "yes"
    assert facts.classified_errors == ("yes" if sim.dialect.promoted else "no")
    if sim.dialect.late:
        assert (facts.provider_availability, facts.unavailable_providers) == (
            "yes",
            ("Google (missing_api_key)",),
        )
    else:
        assert facts.provider_availability == "no"
    sim.ignore_label_filters = True
    assert (await backend.facts()).label_filters == "no"


async def test_bad_token_is_an_auth_error(sim: CoderSim) -> None:
    """A wrong token gives CoderAuthError, and the token appears in no error text."""
    client = make_backend(sim, token="wrong-token")
    try:
        with pytest.raises(CoderAuthError) as caught:
            await client.list_chats()
    finally:
        await client.aclose()
    assert caught.value.status == 401
    assert "wrong-token" not in str(caught.value)


async def test_unknown_chat_is_not_found(backend: ExperimentalBackend) -> None:
    """Operations on a chat that does not exist raise CoderNotFound."""
    missing = ChatId(str(uuid.uuid4()))
    with pytest.raises(CoderNotFound):
        await backend.get_chat(missing)
    with pytest.raises(CoderNotFound):
        await backend.send_message(missing, [InputPart.of_text("hello?")])
    with pytest.raises(CoderNotFound):
        await backend.set_archived(missing, True)


async def test_get_is_retried_after_a_server_error(
    sim: CoderSim, backend: ExperimentalBackend, observer: RecordingObserver
) -> None:
    """A 500 on GET is retried, and both attempts are reported to the observer."""
    chat = await new_chat(backend)
    sim.fail_next("GET", f"^{chats(sim)}/{chat.id}$", 500, "Failed to get chat.")
    assert (await backend.get_chat(chat.id)).id == chat.id
    assert len(paths(sim, "GET", f"{chats(sim)}/{chat.id}")) == 2
    assert [c for c in observer.calls if c[0] == "get_chat"] == [
        ("get_chat", "CoderUnavailable"),
        ("get_chat", "ok"),
    ]


async def test_retries_are_bounded(sim: CoderSim, backend: ExperimentalBackend) -> None:
    """A GET failing every time gives up after the configured attempts with Coder's message."""
    sim.set_unavailable(True)
    with pytest.raises(CoderUnavailable, match="Chat processor is unavailable"):
        await backend.list_chats()
    assert len(paths(sim, "GET", chats(sim))) == FAST_RETRY.attempts


async def test_create_is_not_retried(sim: CoderSim, backend: ExperimentalBackend) -> None:
    """A 500 on POST /chats is raised at once: a retry could create a second chat."""
    await backend.whoami()  # resolve the organization first, so only the create is counted
    sim.fail_next("POST", f"^{chats(sim)}$", 500, "Failed to create chat.")
    with pytest.raises(CoderUnavailable, match="Failed to create chat"):
        await new_chat(backend)
    assert len(paths(sim, "POST", chats(sim))) == 1
    assert sim.chats == {}


async def test_send_that_failed_before_coder_acted_is_retried(
    sim: CoderSim, backend: ExperimentalBackend
) -> None:
    """A 5xx on POST /messages that Coder did not act on is sent again, after checking the chat."""
    chat = await new_chat(backend)
    await sim.wait_for(lambda: sim.chats[chat.id].status == "waiting")
    sim.fail_next("POST", "/messages$", 502, "Bad gateway.")
    result = await backend.send_message(chat.id, [InputPart.of_text("and add a test")])
    assert result.message is not None or result.queued_message is not None
    users = [m for m in sim.chats[chat.id].messages if m["role"] == "user"]
    assert [m["content"][0]["text"] for m in users] == ["Fix the login bug", "and add a test"]
    assert len(paths(sim, "POST", f"{chats(sim)}/{chat.id}/messages")) == 2


async def test_send_whose_answer_was_lost_is_not_sent_twice(
    sim: CoderSim, backend: ExperimentalBackend
) -> None:
    """A send Coder carried out but whose answer was a 5xx is found in the chat, not repeated."""
    chat = await new_chat(backend)
    await sim.wait_for(lambda: sim.chats[chat.id].status == "waiting")
    sim.fail_next("POST", "/messages$", 504, "Gateway timeout.", after=True)
    result = await backend.send_message(chat.id, [InputPart.of_text("and add a test")])
    users = [m for m in sim.chats[chat.id].messages if m["role"] == "user"]
    assert [m["content"][0]["text"] for m in users] == ["Fix the login bug", "and add a test"]
    assert len(paths(sim, "POST", f"{chats(sim)}/{chat.id}/messages")) == 1
    sent = result.message if result.message is not None else result.queued_message
    assert sent is not None
    assert sent.text == "and add a test"


async def test_archive_is_idempotent(sim: CoderSim, backend: ExperimentalBackend) -> None:
    """Archiving or unarchiving twice succeeds; Coder's 'already' 400 counts as done."""
    chat = await new_chat(backend)
    await sim.wait_for(lambda: sim.chats[chat.id].status == "waiting")
    await backend.set_archived(chat.id, True)
    await backend.set_archived(chat.id, True)
    assert sim.chats[chat.id].archived
    await backend.set_archived(chat.id, False)
    await backend.set_archived(chat.id, False)
    assert not sim.chats[chat.id].archived
    assert [r.json for r in sim.requests if r.method == "PATCH"] == [
        {"archived": True},
        {"archived": True},
        {"archived": False},
        {"archived": False},
    ]


async def test_rename_returns_the_chat_as_coder_keeps_it(sim: CoderSim, backend: ExperimentalBackend) -> None:
    """rename PATCHes the title, then reads the chat: G2 takes it, G1 (as the sim plays it) keeps its own."""
    chat = await new_chat(backend)
    renamed = await backend.rename(chat.id, "Login bug")
    assert [r.json for r in sim.requests if r.method == "PATCH"] == [{"title": "Login bug"}]
    assert renamed.title == ("Login bug" if sim.dialect.promoted else chat.title)
    assert backend.capabilities.rename == ("coder" if sim.dialect.promoted else "try")


async def test_interrupt_stops_the_turn(sim: CoderSim, backend: ExperimentalBackend) -> None:
    """interrupt returns the chat idle (G1) or interrupting (G2, still working), and it ends waiting."""
    sim.agent = gated(asyncio.Event())
    chat = await new_chat(backend)
    await sim.wait_for(lambda: sim.chats[chat.id].status == "running")
    interrupted = await backend.interrupt(chat.id)
    expected = ("interrupting", ChatPhase.WORKING) if sim.dialect.promoted else ("waiting", ChatPhase.IDLE)
    assert (interrupted.status.name, interrupted.status.phase) == expected
    await sim.wait_for(lambda: sim.chats[chat.id].status == "waiting")
    assert (await backend.interrupt(chat.id)).status.phase is ChatPhase.IDLE


async def test_v2_archiving_an_active_chat_interrupts_it_first() -> None:
    """G2 answers 409 to archiving a running chat; the backend interrupts, waits for idle, archives."""
    async with CoderSim(generation="v2", part_interval=0.001) as sim:
        sim.agent = gated(asyncio.Event())
        client = make_backend(sim)
        try:
            chat = await new_chat(client)
            await client.set_archived(chat.id, True)
        finally:
            await client.aclose()
        stored = sim.chats[chat.id]
        assert (stored.archived, stored.status) == (True, "waiting")
        assert [r.path for r in sim.requests if r.method in ("PATCH", "POST")][-3:] == [
            f"/api/v2/chats/{chat.id}",
            f"/api/v2/chats/{chat.id}/interrupt",
            f"/api/v2/chats/{chat.id}",
        ]


async def test_v2_chat_shape_and_statuses() -> None:
    """A G2 chat parses with its G2 status names; the org route served its models (no /models)."""
    async with CoderSim(generation="v2", part_interval=0.001) as sim:
        sim.agent = gated(asyncio.Event())
        client = make_backend(sim)
        try:
            chat = await new_chat(client)
            assert (chat.status.name, chat.status.phase) == ("running", ChatPhase.WORKING)
            assert chat.last_error is None
            listed = await client.list_chats(labels={"source": "test"})
        finally:
            await client.aclose()
    assert [c.id for c in listed] == [chat.id]


async def test_upload_and_use_a_file(sim: CoderSim, backend: ExperimentalBackend) -> None:
    """An uploaded image (any file name) gets an id that a chat message can reference."""
    organization = (await backend.whoami()).organization_ids[0]
    file_id = await backend.upload_file(organization, PNG, "image/png", 'skärmbild "1".png')
    upload = next(r for r in sim.requests if r.path == f"{chats(sim)}/files")
    assert upload.query == {"organization": [organization]}
    chat = await backend.create_chat(
        [InputPart.of_text("What is this?"), InputPart.of_file(file_id)], labels={}
    )
    content = sim.chats[chat.id].messages[0]["content"]
    assert [(p["type"], p.get("file_id")) for p in content][1] == ("file", file_id)


async def test_upload_of_an_unsupported_type_is_rejected(backend: ExperimentalBackend) -> None:
    """Coder's 400 for a non-image upload arrives with its message and detail."""
    organization = (await backend.whoami()).organization_ids[0]
    with pytest.raises(CoderRejected, match="Unsupported file type") as caught:
        await backend.upload_file(organization, b"plain text", "text/html", "a.html")
    assert "image/png" in caught.value.detail


class OldBuild:
    """A few routes answering like builds the simulator does not imitate, on loopback port 0."""

    CHAT = "11111111-1111-1111-1111-111111111111"

    def __init__(self, *, retry_after: str = "0", v2_chats: list[dict[str, Any]] | None = None) -> None:
        self.retry_after = retry_after
        self.v2_chats = v2_chats or []
        self.seen: list[tuple[str, str]] = []
        self.app = web.Application()
        self.app.add_routes(
            [
                web.get("/api/v2/users/me", self._me),
                web.get("/api/experimental/chats/{chat}", self._chat),
                web.patch("/api/experimental/chats/{chat}", self._method_not_allowed),
                web.post("/api/experimental/chats/{chat}/archive", self._no_content),
                web.get("/api/v2/chats", self._v2_chats),
            ]
        )
        self.runner = web.AppRunner(self.app, access_log=None)

    async def __aenter__(self) -> OldBuild:
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self.runner.addresses[0][1]}"
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.runner.cleanup()

    def _record(self, request: web.Request) -> None:
        self.seen.append((request.method, request.path))

    async def _me(self, request: web.Request) -> web.Response:
        """429 with Retry-After the first time, then the user."""
        self._record(request)
        if len(self.seen) == 1:
            return web.json_response(
                {"message": "Too many requests."}, status=429, headers={"Retry-After": self.retry_after}
            )
        return web.json_response({"id": "u1", "username": "alice", "organization_ids": ["o1"]})

    async def _chat(self, request: web.Request) -> web.Response:
        self._record(request)
        if request.match_info["chat"] != self.CHAT:
            return web.json_response(
                {"message": "Resource not found or you do not have access to this resource"}, status=404
            )
        return web.json_response({"id": self.CHAT, "title": "t", "status": "waiting", "last_error": None})

    async def _v2_chats(self, request: web.Request) -> web.Response:
        self._record(request)
        return web.json_response(self.v2_chats)

    async def _method_not_allowed(self, request: web.Request) -> web.Response:
        self._record(request)
        return web.Response(status=405, text="Method Not Allowed")

    async def _no_content(self, request: web.Request) -> web.Response:
        self._record(request)
        return web.Response(status=204)


V2_CHAT = {
    "id": "c1",
    "title": "t",
    "created_at": "2026-09-01T00:00:00Z",
    "updated_at": "2026-09-01T00:00:00Z",
}


async def test_v2_only_build_is_detected_from_its_chat_list() -> None:
    """A server with G2 chat objects on /api/v2/chats and no experimental API is v2."""
    chat = {**V2_CHAT, "status": "requires_action", "last_model_config_id": "m1"}
    async with OldBuild(v2_chats=[chat]) as server:
        backend, reason = await connect_backend(server.url, TOKEN, retry=FAST_RETRY)
        await backend.aclose()
    assert backend.generation == "v2"
    assert reason == f"GET /api/experimental/chats answered 404; {V2_FOUND}"


@pytest.mark.parametrize(
    ("v2_chats", "message"),
    [
        ([{**V2_CHAT, "status": "waiting", "owner_id": "u1"}], "chat-daemon prototype"),
    ],
)
async def test_other_generations_are_named_but_unsupported(
    v2_chats: list[dict[str, Any]], message: str
) -> None:
    """A server without the experimental API but with another /api/v2/chats says which one it has."""
    async with OldBuild(v2_chats=v2_chats) as server:
        with pytest.raises(CoderApiMissing, match=message) as caught:
            await connect_backend(server.url, TOKEN, retry=FAST_RETRY)
    assert "not support yet" in caught.value.message
    assert caught.value.detail.startswith(
        "GET /api/experimental/chats answered 404; GET /api/v2/chats answered 200"
    )


async def test_empty_v2_chat_list_is_unrecognisable() -> None:
    """An empty /api/v2/chats list without the org models route (a pre-2026 build) identifies nothing."""
    async with OldBuild() as server:
        with pytest.raises(CoderApiMissing, match="No Coder Chats API found") as caught:
            await connect_backend(server.url, TOKEN, retry=FAST_RETRY)
    assert caught.value.detail == (
        "GET /api/experimental/chats answered 404; GET /api/v2/chats answered 200 with an empty chat list; "
        "GET /api/v2/organizations/o1/chats/models answered 404"
    )


async def test_archive_falls_back_to_the_oldest_route() -> None:
    """Without a PATCH route (405) archiving uses POST /archive once the chat is known to exist."""
    async with OldBuild() as server:
        client = ExperimentalBackend(server.url, TOKEN, retry=FAST_RETRY)
        try:
            await client.set_archived(ChatId(OldBuild.CHAT), True)
            with pytest.raises(CoderNotFound):
                await client.set_archived(ChatId(str(uuid.uuid4())), True)
        finally:
            await client.aclose()
    chat_path = f"/api/experimental/chats/{OldBuild.CHAT}"
    assert server.seen[:3] == [("PATCH", chat_path), ("GET", chat_path), ("POST", chat_path + "/archive")]


async def test_rename_without_a_patch_route_leaves_the_chat_as_it_is() -> None:
    """The earliest G1 builds have no PATCH (405): rename answers the chat unchanged; a gone chat is 404."""
    async with OldBuild() as server:
        client = ExperimentalBackend(server.url, TOKEN, retry=FAST_RETRY)
        try:
            assert (await client.rename(ChatId(OldBuild.CHAT), "Login bug")).title == "t"
            with pytest.raises(CoderNotFound):
                await client.rename(ChatId(str(uuid.uuid4())), "Login bug")
        finally:
            await client.aclose()


async def test_retry_after_is_honoured() -> None:
    """A 429 with Retry-After delays the retry by that long, not by the (tiny) backoff."""
    async with OldBuild(retry_after="0.3") as server:
        client = ExperimentalBackend(server.url, TOKEN, retry=FAST_RETRY)
        try:
            started = time.monotonic()
            assert (await client.whoami()).username == "alice"
            assert time.monotonic() - started >= 0.3
        finally:
            await client.aclose()


async def test_too_long_retry_after_ends_retrying() -> None:
    """A Retry-After beyond max_retry_after is left to the caller: the 429 is raised at once."""
    async with OldBuild(retry_after="3600") as server:
        client = ExperimentalBackend(server.url, TOKEN, retry=FAST_RETRY)
        try:
            with pytest.raises(CoderUnavailable, match="Too many requests") as caught:
                await client.whoami()
        finally:
            await client.aclose()
    assert caught.value.status == 429
    assert len(server.seen) == 1


async def test_chat_url(sim: CoderSim) -> None:
    """Chats open in Coder's UI under /agents/{id}."""
    client = make_backend(sim)
    await client.aclose()
    assert client.chat_url(ChatId("c1")) == f"{sim.url}/agents/c1"


# Streams -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "options",
    [*({"framing": framing} for framing in FRAMINGS), {"generation": "v2"}],
    ids=[*FRAMINGS, "v2"],
)
async def test_stream_in_every_framing(options: dict[str, Any], observer: RecordingObserver) -> None:
    """Connected, then the snapshot (status, user message), live parts, and the final reply."""
    async with CoderSim(**options, part_interval=0.001) as sim:
        # Held until the snapshot arrived: a turn finished before the socket opened would stream no parts.
        gate = asyncio.Event()
        sim.agent = lambda prompt: [Gate(gate), Text("Hello there, friend.")]
        client = make_backend(sim, observer=observer, organization_id=sim.organization_id)
        chat = await new_chat(client, "hi")
        reader = Reader(client.stream(chat.id))
        try:
            await reader.until(lambda events: len(reader.messages()) == 1)
            gate.set()
            await reader.until(turn_finished)
        finally:
            await reader.close()
            await client.aclose()
    assert reader.batches[0] == [ConnectedEvent(after_id=None)]
    events = reader.events
    assert isinstance(events[1], StatusEvent)
    assert any(isinstance(e, PartEvent) and e.part.type == "text" for e in events)
    reply = reader.messages()[-1].message
    assert (reply.role, reply.text) == ("assistant", "Hello there, friend.")
    assert reader.messages()[0].message.text == "hi"
    streamed = "".join(e.part.text for e in events if isinstance(e, PartEvent) and e.part.type == "text")
    assert streamed == reply.text
    assert (observer.opened, observer.closed) == (1, 1)


async def test_stream_resumes_after_a_drop_without_repeats(
    sim: CoderSim, backend: ExperimentalBackend, observer: RecordingObserver
) -> None:
    """After a dropped socket the stream reconnects with after_id and no message comes twice."""
    gate = asyncio.Event()
    sim.agent = lambda prompt: [
        ToolCall("execute", {"command": "ls"}, {"output": "a\n", "exit_code": 0}),
        Gate(gate),
        Text("Done."),
    ]
    chat = await new_chat(backend)
    await sim.wait_for(lambda: len(sim.chats[chat.id].messages) == 3)  # user, tool call, tool result
    reader = Reader(backend.stream(chat.id))
    try:
        await reader.until(lambda events: len(reader.messages()) == 3)
        last_id = reader.messages()[-1].message.id
        sim.drop_streams(chat.id)
        await reader.until(lambda events: ConnectedEvent(after_id=last_id) in events)
        gate.set()
        await reader.until(turn_finished)
    finally:
        await reader.close()
    ids = [m.message.id for m in reader.messages()]
    assert len(ids) == len(set(ids)) == 4
    stream_path = f"{chats(sim)}/{chat.id}/stream"
    assert paths(sim, "GET", stream_path) == [{}, {"after_id": [str(last_id)]}]
    assert observer.opened == observer.closed == 2
    assert observer.reconnects == 1


async def test_silent_stream_is_dropped_and_resumed_from_the_cursor(
    sim: CoderSim, observer: RecordingObserver
) -> None:
    """A socket on which Coder goes silent is cut after the silence timeout and resumed after the cursor."""
    gate = asyncio.Event()
    sim.agent = lambda prompt: [
        ToolCall("execute", {"command": "ls"}, {"output": "a\n", "exit_code": 0}),
        Gate(gate),
        Text("Done."),
    ]
    policy = dataclasses.replace(FAST_RECONNECT, silence_timeout=0.3)
    backend = make_backend(sim, reconnect=policy, observer=observer)
    try:
        chat = await new_chat(backend)
        await sim.wait_for(lambda: len(sim.chats[chat.id].messages) == 3)
        reader = Reader(backend.stream(chat.id))
        try:
            await reader.until(lambda events: len(reader.messages()) == 3)
            last_id = reader.messages()[-1].message.id
            sim.silence_streams(chat.id)
            gate.set()
            await reader.until(lambda events: ConnectedEvent(after_id=last_id) in events)
            await reader.until(turn_finished)
        finally:
            await reader.close()
    finally:
        await backend.aclose()
    ids = [m.message.id for m in reader.messages()]
    assert len(ids) == len(set(ids)) == 4
    assert paths(sim, "GET", f"{chats(sim)}/{chat.id}/stream")[:2] == [{}, {"after_id": [str(last_id)]}]
    assert observer.opened == observer.closed >= 2
    assert observer.reconnects >= 1


async def test_stream_starts_after_a_given_cursor(sim: CoderSim, backend: ExperimentalBackend) -> None:
    """Opening with after_id skips the messages the caller already has."""
    chat = await new_chat(backend)
    await sim.wait_for(lambda: sim.chats[chat.id].status == "waiting")
    newest = sim.chats[chat.id].messages[-1]["id"]
    reader = Reader(backend.stream(chat.id, after_id=newest - 1))
    try:
        await reader.until(lambda events: len(reader.messages()) == 1)
    finally:
        await reader.close()
    assert reader.batches[0] == [ConnectedEvent(after_id=newest - 1)]
    assert [m.message.id for m in reader.messages()] == [newest]


async def test_stream_of_unknown_chat_is_not_found(backend: ExperimentalBackend) -> None:
    """A 404 on the upgrade ends the stream with CoderNotFound, without retrying."""
    with pytest.raises(CoderNotFound):
        async for _ in backend.stream(ChatId(str(uuid.uuid4()))):
            pass


async def test_stream_with_bad_token_is_an_auth_error(sim: CoderSim, backend: ExperimentalBackend) -> None:
    """A 401 on the upgrade ends the stream with CoderAuthError."""
    chat = await new_chat(backend)
    client = make_backend(sim, token="wrong-token")
    try:
        with pytest.raises(CoderAuthError):
            async for _ in client.stream(chat.id):
                pass
    finally:
        await client.aclose()


async def test_stream_gives_up_after_repeated_failures(sim: CoderSim, backend: ExperimentalBackend) -> None:
    """While Coder answers 500, the stream retries max_failures times, then raises CoderUnavailable."""
    chat = await new_chat(backend)
    sim.set_unavailable(True)
    with pytest.raises(CoderUnavailable, match="3 failed connection attempts"):
        async for _ in backend.stream(chat.id):
            pass
    assert len(paths(sim, "GET", f"{chats(sim)}/{chat.id}/stream")) == 3


async def test_stream_recovers_when_coder_comes_back(sim: CoderSim, backend: ExperimentalBackend) -> None:
    """Failed attempts below the limit are retried until Coder answers again."""
    chat = await new_chat(backend)
    await sim.wait_for(lambda: sim.chats[chat.id].status == "waiting")
    stored = len(sim.chats[chat.id].messages)
    sim.fail_next("GET", "/stream$", 503, "Service unavailable.", count=2)
    reader = Reader(backend.stream(chat.id))
    try:
        await reader.until(lambda events: len(reader.messages()) == stored)
    finally:
        await reader.close()
    assert reader.batches[0] == [ConnectedEvent(after_id=None)]
    assert len(paths(sim, "GET", f"{chats(sim)}/{chat.id}/stream")) == 3


async def test_aclose_from_another_task_ends_the_stream(
    sim: CoderSim, backend: ExperimentalBackend, observer: RecordingObserver
) -> None:
    """aclose() while another task waits for events ends that task's iteration promptly."""
    sim.agent = gated(asyncio.Event())
    chat = await new_chat(backend)
    reader = Reader(backend.stream(chat.id))
    await reader.until(lambda events: len(events) > 1)
    await reader.close()
    assert reader.task.done()
    assert observer.opened == observer.closed == 1
    await sim.wait_for(lambda: sim.active_streams(chat.id) == 0)


async def test_aclose_during_backoff_is_prompt(sim: CoderSim) -> None:
    """aclose() while waiting to reconnect does not wait out the delay."""
    client = make_backend(sim, reconnect=ReconnectPolicy(delays=lambda: itertools.repeat(60.0)))
    sim.set_unavailable(True)
    reader = Reader(client.stream(ChatId(str(uuid.uuid4()))))
    try:
        await sim.wait_for(lambda: any(r.path.endswith("/stream") for r in sim.requests))
        await reader.close()
    finally:
        await client.aclose()
    assert reader.events == []


# Watch and diff ----------------------------------------------------------------------------------


def watched(events: Iterable[Any], kind: WatchKind) -> list[WatchEvent]:
    return [e for e in events if isinstance(e, WatchEvent) and e.kind is kind]


@pytest.mark.parametrize("framing", FRAMINGS)
async def test_watch_reports_status_title_and_diff_changes(framing: Framing) -> None:
    """The watch socket, in every G1 framing, yields typed status, title and diff changes."""
    async with CoderSim(part_interval=0.001, framing=framing) as sim:
        backend = make_backend(sim)
        watch = backend.watch()
        assert watch is not None
        reader = Reader(watch)  # type: ignore[arg-type]
        try:
            await reader.until(lambda events: ConnectedEvent() in events)
            await sim.wait_for(lambda: sim.active_watches() == 1)
            chat = await new_chat(backend)
            await reader.until(
                lambda events: any(
                    e.chat.status.phase is ChatPhase.IDLE for e in watched(events, WatchKind.STATUS_CHANGE)
                )
            )
            sim.set_title(chat.id, "Login bug")
            sim.set_diff(chat.id, {"url": "https://github.com/o/r/pull/3", "pull_request_state": "open"})
            await reader.until(lambda events: watched(events, WatchKind.DIFF_STATUS_CHANGE) != [])
        finally:
            await reader.close()
            await backend.aclose()
    assert [e.chat.title for e in watched(reader.events, WatchKind.TITLE_CHANGE)] == ["Login bug"]
    diff_status = watched(reader.events, WatchKind.DIFF_STATUS_CHANGE)[0].chat.diff_status
    assert diff_status is not None
    assert diff_status.url == "https://github.com/o/r/pull/3"
    assert watched(reader.events, WatchKind.CREATED)[0].chat.id == chat.id


async def test_watch_reconnects_after_a_drop(sim: CoderSim, backend: ExperimentalBackend) -> None:
    """A dropped watch socket comes back, announced by a new ConnectedEvent, and delivers again."""
    watch = backend.watch()
    assert watch is not None
    reader = Reader(watch)  # type: ignore[arg-type]
    try:
        await sim.wait_for(lambda: sim.active_watches() == 1)
        sim.drop_watches()
        await reader.until(lambda events: events.count(ConnectedEvent()) == 2)
        await sim.wait_for(lambda: sim.active_watches() == 1)
        chat = await new_chat(backend)
        await reader.until(
            lambda events: any(e.chat.id == chat.id for e in watched(events, WatchKind.CREATED))
        )
    finally:
        await reader.close()
    assert len(paths(sim, "GET", f"{chats(sim)}/watch")) == 2


async def test_diff_lists_the_chats_changed_files(sim: CoderSim, backend: ExperimentalBackend) -> None:
    """GET /diff gives the branch, the PR link and the changed files with their line counts."""
    chat = await new_chat(backend)
    diff_text = "diff --git a/app.py b/app.py\n--- a/app.py\n+++ b/app.py\n@@ -1 +1,2 @@\n-a\n+b\n+c\n"
    sim.set_diff(
        chat.id,
        {"additions": 2},
        {"branch": "fix", "pull_request_url": "https://x/pull/1", "diff": diff_text},
    )
    diff = await backend.get_diff(chat.id)
    assert diff.chat_id == chat.id
    assert (diff.branch, diff.pull_request_url) == ("fix", "https://x/pull/1")
    assert [(f.path, f.additions, f.deletions) for f in diff.files] == [("app.py", 2, 1)]
    assert (await backend.get_diff(ChatId((await new_chat(backend, "other")).id))).files == ()
