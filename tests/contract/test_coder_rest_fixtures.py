"""Coder's own REST payloads (tests/fixtures/coder) against the client and the simulator.

Each fixture is parsed to the typed value it must become; then the simulator is driven into the same
situation and its answer must have the fixture's shape (the same keys, the same JSON types), apart from
keys that are present only for some values (``omitempty``) or that the simulator has no use for.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from bridge.coder import v2_wire
from bridge.coder.catalog import parse_mcp_servers, parse_models, provider_problems
from bridge.coder.errors import CoderError, CoderRejected, CoderUnavailable
from bridge.coder.experimental_wire import (
    parse_edit_result,
    parse_message,
    parse_promoted,
    parse_send_result,
    parse_stream_event,
)
from bridge.coder.failures import read_failure
from bridge.coder.rest import error_from_response
from bridge.coder.types import (
    ChatCost,
    ChatFailure,
    ChatPhase,
    Choice,
    EditResult,
    ErrorKind,
    Message,
    Part,
    QueuedMessage,
    RetryEvent,
    SendResult,
)
from bridge.sim.coder import CoderSim
from bridge.sim.coder_agent import Attach, Delegate, Fail, Gate, Summary, Text
from bridge.slack.blocks import render_usage
from bridge.slack.failures import render_coder_error, render_failure

FIXTURES = Path(__file__).parents[1] / "fixtures" / "coder"
TOKEN = {"Coder-Session-Token": "sim-token"}
V2 = "/api/v2/chats"
_COMMIT = re.compile(r"^[0-9a-f]{40}$")
_HELLO = datetime(2024, 1, 1, tzinfo=UTC)
_WARNING = 'MCP server "jira" is unavailable.'


def fixture(name: str) -> Any:
    """A fixture's payload."""
    return json.loads((FIXTURES / f"{name}.json").read_text())["payload"]


def _text(text: str) -> Part:
    return Part(type="text", text=text)


MOCK_MESSAGE = Message(id=1, role="user", content=(_text("Hello"),), created_at=_HELLO)


# What each fixture parses to ---------------------------------------------------------------------


def _rest_error(
    status: int, kind: ErrorKind, said: str, cls: type[CoderError] = CoderRejected
) -> Callable[[Any], None]:
    def check(payload: Any) -> None:
        error = error_from_response(status, json.dumps(payload).encode())
        assert isinstance(error, cls)
        assert (error.status, error.kind, error.message) == (status, kind, payload["message"])
        assert said in render_coder_error(error)

    return check


def _chat_error(advice: str) -> Callable[[Any], None]:
    def check(payload: Any) -> None:
        failure = read_failure(payload)
        assert failure == ChatFailure(
            message=payload["message"],
            kind=ErrorKind(payload["kind"]),
            provider=payload["provider"],
            retryable=payload["retryable"],
            status_code=payload.get("status_code"),
        )
        assert advice in render_failure(failure)

    return check


def _promote_accepted(payload: Any) -> None:
    assert parse_promoted(payload) is None


def _promote_message(payload: Any) -> None:
    assert parse_promoted(payload) == MOCK_MESSAGE


def _send_delivered(payload: Any) -> None:
    assert parse_send_result(payload) == SendResult(
        queued=False, message=MOCK_MESSAGE, messages=(MOCK_MESSAGE,)
    )


def _send_queued_promoting_head(payload: Any) -> None:
    queued = QueuedMessage(id=2, content=(_text("Queued message"),), created_at=_HELLO)
    assert parse_send_result(payload) == SendResult(
        queued=True, queued_message=queued, messages=(MOCK_MESSAGE,), warnings=(_WARNING,)
    )


def _edit_answer(payload: Any) -> None:
    edited = Message(id=4, role="user", content=(_text("Hello again"),), created_at=_HELLO)
    assert parse_edit_result(payload) == EditResult(
        message=edited, deleted_message_ids=(1, 2, 3), warnings=(_WARNING,)
    )


def _retry_payload_generic(payload: Any) -> None:
    event = parse_stream_event({"type": "retry", "chat_id": "chat-1", "retry": payload})
    assert event == RetryEvent(
        attempt=2,
        delay_ms=3000,
        error="OpenAI returned an unexpected error.",
        error_kind="generic",
        provider="openai",
        status_code=503,
    )


def _mcp_servers_org(payload: Any) -> None:
    assert parse_mcp_servers(payload) == [
        Choice(id="mcp-1", name="mcp-server", aliases=("MCP Server",)),
        Choice(id="mcp-2", name="disabled-mcp", aliases=("Disabled MCP Server",), unavailable="disabled"),
    ]


def _models_org_unavailable_provider(payload: Any) -> None:
    assert parse_models(payload, key="models") == [
        Choice(id="model-1", name="gpt-5", aliases=("gpt-5",)),
        Choice(id="model-2", name="Claude Sonnet", aliases=("claude-sonnet",), unavailable="missing_api_key"),
    ]
    assert provider_problems(payload) == (True, ("Anthropic (missing_api_key)",))


def _chat_with_labels(payload: Any) -> None:
    chat = v2_wire.parse_chat(payload)
    assert (chat.id, chat.status.phase, chat.last_error) == ("chat-1", ChatPhase.IDLE, None)
    assert chat.labels["slack_thread"] == "1700000000.000100"
    assert chat.owner_id == "8b0f3d2e-1d1e-4c1e-9f1e-1d1e4c1e9f1e", "whose chat it is: the access policy asks"


def _chat_summarized(payload: Any) -> None:
    chat = v2_wire.parse_chat(payload)
    assert chat.last_turn_summary == "Fixed the login bug and added a regression test."
    assert chat.summary.startswith("Fixing the login bug")


def _chat_with_child(payload: Any) -> None:
    chat = v2_wire.parse_chat(payload)
    [child] = chat.children
    assert (child.id, child.parent_chat_id, child.title) == ("chat-2", "chat-1", "Run the tests")
    assert (chat.parent_chat_id, child.status.phase, child.children) == ("", ChatPhase.IDLE, ())


def _chat_cost(payload: Any) -> None:
    cost = ChatCost.model_validate(payload)
    assert cost == ChatCost(total_cost_micros=1_234_567, request_count=3, unpriced_request_count=1)
    assert render_usage((), cost) == "🪙 $1.23 so far, 1 call(s) unpriced"


def _chat_plan_mode(payload: Any) -> None:
    chat = v2_wire.parse_chat(payload)
    assert (chat.id, chat.status.phase, chat.plan_mode) == ("chat-1", ChatPhase.WORKING, True)
    assert not v2_wire.parse_chat({**payload, "plan_mode": ""}).plan_mode


def _chat_failed(payload: Any) -> None:
    chat = v2_wire.parse_chat(payload)
    assert chat.status.phase is ChatPhase.ERROR
    assert chat.last_error == ChatFailure(
        message="Azure OpenAI is rate limiting requests.",
        kind=ErrorKind.RATE_LIMIT,
        provider="azure",
        retryable=True,
        status_code=429,
    )


def _message_file_part(payload: Any) -> None:
    message = parse_message(payload)
    assert message.text == "Here is the report"
    file = message.content[1]
    assert (file.type, file.file_name, file.media_type) == ("file", "report.pdf", "application/pdf")
    assert file.file_id == "9a2f6e0c-7c43-4f1e-8a3d-2b9c6f1d4e57"


def _message_attached_file(payload: Any) -> None:
    message = parse_message(payload)
    call, file = message.content
    assert (call.type, call.tool_name, call.args) == (
        "tool-call",
        "attach_file",
        {"path": "/home/coder/build.log"},
    )
    assert (file.type, file.file_name, file.media_type) == ("file", "build.log", "text/plain")
    assert file.file_id == "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"
    assert message.usage is not None
    assert (message.usage.input_tokens, message.usage.context_limit) == (1200, 200000)


EXPECTED: dict[str, Callable[[Any], None]] = {
    "promote_accepted": _promote_accepted,
    "promote_message": _promote_message,
    "send_delivered": _send_delivered,
    "send_queued_promoting_head": _send_queued_promoting_head,
    "edit_answer": _edit_answer,
    "error_hook_denied": _rest_error(403, ErrorKind.HOOK_DENIED, "A Coder hook refused it"),
    "error_hook_dispatch_failed": _rest_error(
        502, ErrorKind.HOOK_DISPATCH_FAILED, "A Coder hook could not run", CoderUnavailable
    ),
    "error_usage_limit_409": _rest_error(409, ErrorKind.USAGE_LIMIT, "A usage limit is used up"),
    "error_usage_limit_newest": _rest_error(409, ErrorKind.GENERIC, "The usage quota for Anthropic"),
    "chat_error_rate_limit": _chat_error("Azure OpenAI is rate limiting requests"),
    "chat_error_usage_limit": _chat_error("A usage limit is used up"),
    "chat_error_missing_key": _chat_error("The model provider's API key is missing"),
    "chat_error_provider_disabled": _chat_error("start the task with another model"),
    "chat_error_auth": _chat_error("The model provider refused its API key"),
    "chat_error_config": _chat_error("The provider rejected the model's settings"),
    "retry_payload_generic": _retry_payload_generic,
    "mcp_servers_org": _mcp_servers_org,
    "models_org_unavailable_provider": _models_org_unavailable_provider,
    "chat_with_labels": _chat_with_labels,
    "chat_plan_mode": _chat_plan_mode,
    "chat_failed": _chat_failed,
    "chat_summarized": _chat_summarized,
    "chat_cost": _chat_cost,
    "chat_with_child": _chat_with_child,
    "message_file_part": _message_file_part,
    "message_attached_file": _message_attached_file,
}


def test_every_fixture_names_its_source() -> None:
    """Each fixture file is ``{"source": {repo, path, commit, note}, "payload"}``: the commit the
    look-up tool reported, or null with the content id it was read by."""
    files = sorted(FIXTURES.glob("*.json"))
    assert files
    for path in files:
        body = json.loads(path.read_text())
        assert set(body) == {"source", "payload"}, path.name
        source = body["source"]
        assert set(source) == {"repo", "path", "commit", "note"}, path.name
        assert source["repo"] == "coder/coder", path.name
        assert source["path"], path.name
        assert source["note"], path.name
        commit = source["commit"]
        assert (commit is None and "content id" in source["note"]) or _COMMIT.match(commit), path.name


def test_every_rest_fixture_is_checked() -> None:
    """No REST fixture goes without an expectation (stream fixtures have their own suite)."""
    names = {p.stem for p in FIXTURES.glob("*.json") if not p.stem.startswith("stream_")}
    assert names == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_fixture_parses_to_its_typed_value(name: str) -> None:
    """Coder's payload reads as the typed value the bridge acts on."""
    EXPECTED[name](fixture(name))


# The simulator in the same situation -------------------------------------------------------------

Scenario = Callable[[CoderSim, httpx.AsyncClient], Awaitable[Any]]

_MESSAGE_EXTRAS = frozenset({"created_by", "model_config_id", "usage", "skill_name"})
"""ChatMessage keys present only for some messages (omitempty pointers), and ``skill_name``, the newest
part's zero-valued key of ``skill`` parts, which the simulator's parts do not carry."""
_CHAT_EXTRAS = frozenset(
    {"root_chat_id", "owner_username", "owner_name", "last_error", "workspace_id", "diff_status"}
)
"""Chat keys present only when set; MockChat leaves out the ones the simulator always fills."""


def _shape(value: Any, optional: frozenset[str]) -> Any:
    """The JSON types of a value, keys in ``optional`` dropped at any depth; a list by its first item."""
    if isinstance(value, dict):
        return {key: _shape(item, optional) for key, item in value.items() if key not in optional}
    if isinstance(value, list):
        return [_shape(value[0], optional)] if value else []
    return type(value).__name__


def _same_shape(real: Any, simulated: Any, optional: Iterable[str] = ()) -> None:
    keep = frozenset(optional)
    real_shape, sim_shape = _shape(real, keep), _shape(simulated, keep)
    _prune_empty_lists(real_shape, sim_shape)
    assert sim_shape == real_shape


def _prune_empty_lists(real: Any, simulated: Any) -> None:
    """An empty list on either side says nothing of its items: both sides are compared as empty."""
    if isinstance(real, dict) and isinstance(simulated, dict):
        for key in real.keys() & simulated.keys():
            if real[key] == [] or simulated[key] == []:
                real[key] = simulated[key] = []
            else:
                _prune_empty_lists(real[key], simulated[key])
    elif isinstance(real, list) and isinstance(simulated, list) and real and simulated:
        _prune_empty_lists(real[0], simulated[0])


async def _chat(
    sim: CoderSim, client: httpx.AsyncClient, prompt: str, labels: dict[str, str] | None = None
) -> str:
    body = {"content": [{"type": "text", "text": prompt}], "organization_id": sim.organization_id}
    if labels:
        body["labels"] = labels
    response = await client.post(V2, json=body)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def _idle(sim: CoderSim, chat_id: str) -> None:
    await sim.wait_for(lambda: sim.chats[chat_id].status == "waiting")


async def _promote(sim: CoderSim, client: httpx.AsyncClient) -> Any:
    gate = asyncio.Event()
    sim.agent = lambda prompt: [Gate(gate)] if prompt == "busy" else [Text("ok")]
    chat_id = await _chat(sim, client, "busy")
    queued = (
        await client.post(f"{V2}/{chat_id}/messages", json={"content": [{"type": "text", "text": "Hi"}]})
    ).json()
    response = await client.post(f"{V2}/{chat_id}/queue/{queued['queued_message']['id']}/promote")
    gate.set()
    assert response.status_code == (202 if sim.dialect.late else 200)
    return response.json()


async def _send_delivered(sim: CoderSim, client: httpx.AsyncClient) -> Any:
    chat_id = await _chat(sim, client, "first")
    await _idle(sim, chat_id)
    return (
        await client.post(f"{V2}/{chat_id}/messages", json={"content": [{"type": "text", "text": "Hi"}]})
    ).json()


async def _send_queued_promoting_head(sim: CoderSim, client: httpx.AsyncClient) -> Any:
    gate = asyncio.Event()
    sim.agent = lambda prompt: [Gate(gate), Fail("model exploded")] if prompt == "go" else [Text("ok")]
    chat_id = await _chat(sim, client, "go")
    await client.post(f"{V2}/{chat_id}/messages", json={"content": [{"type": "text", "text": "head"}]})
    gate.set()
    await sim.wait_for(lambda: sim.chats[chat_id].status == "error")
    sim.warnings = [_WARNING]
    return (
        await client.post(f"{V2}/{chat_id}/messages", json={"content": [{"type": "text", "text": "tail"}]})
    ).json()


async def _edit(sim: CoderSim, client: httpx.AsyncClient) -> Any:
    chat_id = await _chat(sim, client, "first")
    await _idle(sim, chat_id)
    first = sim.chats[chat_id].messages[0]["id"]
    sim.warnings = [_WARNING]
    body = {"content": [{"type": "text", "text": "Hello again"}]}
    return (await client.patch(f"{V2}/{chat_id}/messages/{first}", json=body)).json()


async def _chat_with_labels(sim: CoderSim, client: httpx.AsyncClient) -> Any:
    chat_id = await _chat(sim, client, "first", labels=fixture("chat_with_labels")["labels"])
    await _idle(sim, chat_id)
    return (await client.get(f"{V2}/{chat_id}")).json()


async def _chat_summarized(sim: CoderSim, client: httpx.AsyncClient) -> Any:
    sim.agent = lambda prompt: [Text("Done."), Summary("Fixed the login bug.")]
    chat_id = await _chat(sim, client, "fix the login bug")
    await sim.wait_for(lambda: sim.chats[chat_id].summary is not None)
    return (await client.get(f"{V2}/{chat_id}")).json()


async def _chat_with_child(sim: CoderSim, client: httpx.AsyncClient) -> Any:
    gate = asyncio.Event()
    sim.agent = lambda prompt: [Delegate("Run the tests", "Run pytest.", [Text("42 passed.")]), Gate(gate)]
    chat_id = await _chat(sim, client, "check")
    await sim.wait_for(lambda: any(c.status == "waiting" for c in sim.chats[chat_id].children))
    try:
        return (await client.get(f"{V2}/{chat_id}")).json()
    finally:
        gate.set()


async def _chat_cost(sim: CoderSim, client: httpx.AsyncClient) -> Any:
    chat_id = await _chat(sim, client, "first")
    await _idle(sim, chat_id)
    return (await client.get(f"{V2}/{chat_id}/cost")).json()


async def _chat_in_plan_mode(sim: CoderSim, client: httpx.AsyncClient) -> Any:
    sim.agent = lambda prompt: [Gate(asyncio.Event())]  # still planning when read
    body = {"content": [{"type": "text", "text": "plan it"}], "organization_id": sim.organization_id}
    created = await client.post(V2, json={**body, "plan_mode": "plan"})
    assert created.status_code == 201, created.text
    return (await client.get(f"{V2}/{created.json()['id']}")).json()


async def _chat_failed(sim: CoderSim, client: httpx.AsyncClient) -> Any:
    sim.agent = lambda prompt: [
        Fail("Azure OpenAI is rate limiting requests.", kind="rate_limit", provider="azure")
    ]
    chat_id = await _chat(sim, client, "go")
    await sim.wait_for(lambda: sim.chats[chat_id].status == "error")
    return (await client.get(f"{V2}/{chat_id}")).json()


async def _mcp_servers(sim: CoderSim, client: httpx.AsyncClient) -> Any:
    sim.catalog.add_mcp_server("mcp-server", "MCP Server")
    return (await client.get(f"/api/v2/organizations/{sim.organization_id}/mcp-servers")).json()


async def _models(sim: CoderSim, client: httpx.AsyncClient) -> Any:
    return (await client.get(f"/api/v2/organizations/{sim.organization_id}/chats/models")).json()


async def _message_with_a_file(sim: CoderSim, client: httpx.AsyncClient) -> Any:
    upload = await client.post(
        "/api/v2/chats/files",
        params={"organization": sim.organization_id},
        content=b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n",
        headers={
            "Content-Type": "application/pdf",
            "Content-Disposition": 'attachment; filename="report.pdf"',
        },
    )
    assert upload.status_code == 201, upload.text
    content = [
        {"type": "text", "text": "Here is the report"},
        {"type": "file", "file_id": upload.json()["id"]},
    ]
    body = {"content": content, "organization_id": sim.organization_id}
    chat_id = (await client.post(V2, json=body)).json()["id"]
    await _idle(sim, chat_id)
    return sim.chats[chat_id].messages[0]


async def _message_attached_file(sim: CoderSim, client: httpx.AsyncClient) -> Any:
    sim.agent = lambda prompt: [Attach("/home/coder/build.log", b"build succeeded\n", "text/plain")]
    chat_id = await _chat(sim, client, "attach the log")
    await _idle(sim, chat_id)
    return next(m for m in sim.chats[chat_id].messages if m["role"] == "assistant")


SITUATIONS: dict[str, tuple[str, Scenario, frozenset[str]]] = {
    "promote_accepted": ("v2-late", _promote, frozenset()),
    "promote_message": ("v2", _promote, _MESSAGE_EXTRAS),
    "send_delivered": ("v2-late", _send_delivered, _MESSAGE_EXTRAS),
    "send_queued_promoting_head": ("v2-late", _send_queued_promoting_head, _MESSAGE_EXTRAS),
    "edit_answer": ("v2-late", _edit, _MESSAGE_EXTRAS),
    "chat_with_labels": ("v2-late", _chat_with_labels, _CHAT_EXTRAS),
    "chat_summarized": ("v2-late", _chat_summarized, _CHAT_EXTRAS),
    "chat_cost": ("v2-late", _chat_cost, frozenset()),
    "chat_with_child": ("v2-late", _chat_with_child, _CHAT_EXTRAS - {"root_chat_id"}),
    "chat_plan_mode": ("v2-late", _chat_in_plan_mode, _CHAT_EXTRAS),
    "chat_failed": ("v2-late", _chat_failed, _CHAT_EXTRAS - {"last_error"} | {"status_code", "detail"}),
    "mcp_servers_org": ("v2-late", _mcp_servers, frozenset({"has_signing_secret"})),
    "models_org_unavailable_provider": ("v2-late", _models, frozenset({"unavailable_reason"})),
    "message_file_part": ("v2-late", _message_with_a_file, _MESSAGE_EXTRAS),
    "message_attached_file": ("v2-late", _message_attached_file, _MESSAGE_EXTRAS),
}
"""Fixture -> the generation whose simulator meets the same situation, the scenario that brings it
about, and the keys present only for some values or missing on one side (MockMCPServerConfig predates
``has_signing_secret``)."""


@pytest.fixture
async def http() -> AsyncIterator[Callable[[str], Awaitable[tuple[CoderSim, httpx.AsyncClient]]]]:
    """Opens a simulator of a generation and a client to it; both closed at the end."""
    opened: list[tuple[CoderSim, httpx.AsyncClient]] = []

    async def open_sim(generation: str) -> tuple[CoderSim, httpx.AsyncClient]:
        sim = CoderSim(generation=generation, part_interval=0.001)  # type: ignore[arg-type]
        await sim.start()
        client = httpx.AsyncClient(base_url=sim.url, headers=TOKEN)
        opened.append((sim, client))
        return sim, client

    yield open_sim
    for sim, client in opened:
        await client.aclose()
        await sim.close()


@pytest.mark.parametrize("name", sorted(SITUATIONS))
async def test_simulator_answers_with_coders_shape(
    name: str, http: Callable[[str], Awaitable[tuple[CoderSim, httpx.AsyncClient]]]
) -> None:
    """The simulator, in the situation a fixture records, answers with the same keys and JSON types."""
    generation, scenario, optional = SITUATIONS[name]
    sim, client = await http(generation)
    _same_shape(fixture(name), await scenario(sim, client), optional)
