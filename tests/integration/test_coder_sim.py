"""The Coder Chats API simulator speaks the G1 and G2 wire formats over real sockets.

Exercised with plain httpx and websockets clients (never the bridge's own client), so these tests pin
the simulator to the reference rather than to our reading of it.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from bridge.sim import scenarios
from bridge.sim.coder import CoderSim
from bridge.sim.coder_agent import ClientToolCall, Fail, Gate, ProposePlan, Step, Text, ToolCall
from bridge.sim.coder_state import SimChat

ALICE = "sim-token"
BOB = "bob-token"
BASE = "/api/experimental/chats"
V2 = "/api/v2/chats"
MAX_INT64 = 2**63 - 1
NIL_UUID = "00000000-0000-0000-0000-000000000000"
OTHER_ORG = "11111111-2222-3333-4444-555555555555"
ZERO_PART_KEYS = {
    "text",
    "url",
    "media_type",
    "file_name",
    "start_line",
    "end_line",
    "content",
    "context_file_path",
}
PNG = b"\x89PNG\r\n\x1a\n" + bytes(64)

Event = dict[str, Any]
MakeSim = Callable[..., Awaitable[CoderSim]]


@pytest.fixture
async def make_sim() -> AsyncIterator[MakeSim]:
    sims: list[CoderSim] = []

    async def make(**options: Any) -> CoderSim:
        sim = CoderSim(**{"tokens": {ALICE: "alice", BOB: "bob"}, "part_interval": 0.0, **options})
        await sim.start()
        sims.append(sim)
        return sim

    yield make
    for sim in sims:
        await sim.close()


@pytest.fixture
async def sim(make_sim: MakeSim) -> CoderSim:
    return await make_sim()


@pytest.fixture
async def client(sim: CoderSim) -> AsyncIterator[httpx.AsyncClient]:
    async with http(sim) as alice:
        yield alice


def http(sim: CoderSim, token: str | None = ALICE) -> httpx.AsyncClient:
    headers = {"Coder-Session-Token": token} if token else {}
    return httpx.AsyncClient(base_url=sim.url, headers=headers, trust_env=False)


def socket(sim: CoderSim, path: str, token: str = ALICE) -> connect:
    url = sim.url.replace("http://", "ws://") + path
    return connect(url, additional_headers={"Coder-Session-Token": token}, proxy=None)


def stream(sim: CoderSim, chat_id: str, after_id: int | None = None, base: str = BASE) -> connect:
    query = "" if after_id is None else f"?after_id={after_id}"
    return socket(sim, f"{base}/{chat_id}/stream{query}")


def events_of(frame: str | bytes) -> list[Event]:
    """Any G1 framing: bare array, envelope with an array, or envelope with one object."""
    value = json.loads(frame)
    if isinstance(value, list):
        return value
    data = value["data"]
    return data if isinstance(data, list) else [data]


async def read_until(
    ws: ClientConnection, stop: Callable[[Event], bool], timeout: float = 3.0
) -> list[Event]:
    events: list[Event] = []
    async with asyncio.timeout(timeout):
        while True:
            for event in events_of(await ws.recv()):
                events.append(event)
                if stop(event):
                    return events


async def read_frames_until(ws: ClientConnection, stop: Callable[[Event], bool]) -> list[str]:
    frames: list[str] = []
    async with asyncio.timeout(3.0):
        while not frames or not any(stop(event) for event in events_of(frames[-1])):
            frames.append(str(await ws.recv()))
    return frames


def summary(event: Event) -> str:
    if event["type"] == "message":
        return "message:" + text_of(event["message"])
    if event["type"] == "status":
        return "status:" + event["status"]["status"]
    if event["type"] == "queue_update":
        return f"queue:{len(event.get('queued_messages', []))}"
    return str(event["type"])


def status_is(status: str) -> Callable[[Event], bool]:
    return lambda event: event["type"] == "status" and event["status"]["status"] == status


def text_of(message: Event) -> str:
    return "".join(p["text"] for p in message.get("content", []) if p["type"] == "text")


async def create(
    client: httpx.AsyncClient, text: str = "fix the login bug", *, base: str = BASE, **extra: Any
) -> Event:
    response = await client.post(base, json={"content": [{"type": "text", "text": text}], **extra})
    assert response.status_code == 201, response.text
    chat: Event = response.json()
    return chat


async def send(
    client: httpx.AsyncClient, chat_id: str, text: str, *, base: str = BASE, **extra: Any
) -> Event:
    response = await client.post(
        f"{base}/{chat_id}/messages", json={"content": [{"type": "text", "text": text}], **extra}
    )
    assert response.status_code == 200, response.text
    answer: Event = response.json()
    return answer


async def answered_chat(sim: CoderSim, client: httpx.AsyncClient, text: str) -> SimChat:
    """A chat whose first turn, played by the echo agent, has ended."""
    sim.agent = scenarios.echo
    chat = sim.chats[(await create(client, text))["id"]]
    await sim.wait_for(lambda: chat.status == "waiting")
    return chat


def gated(gate: asyncio.Event, *then: Step) -> Callable[[str], list[Step]]:
    return lambda prompt: [Text("held"), Gate(gate), *then]


async def test_create_returns_pending_chat_with_omitempty_keys_absent(
    sim: CoderSim, client: httpx.AsyncClient
) -> None:
    """POST /chats answers 201 with a pending Chat whose empty optional keys are absent, not null."""
    sim.agent = scenarios.stuck
    response = await client.post(
        BASE, json={"content": [{"type": "text", "text": "  please fix the login bug in auth today "}]}
    )
    assert response.status_code == 201
    assert response.headers["content-type"] == "application/json; charset=utf-8"
    chat = response.json()
    assert chat["status"] == "pending"
    assert chat["title"] == "please fix the login bug in…"
    assert chat["owner_id"] == sim.users["alice"].id
    assert chat["root_chat_id"] == chat["id"]
    assert chat["last_model_config_id"] == sim.model_config_id
    assert (chat["last_error"], chat["labels"], chat["mcp_server_ids"], chat["pin_order"]) == (
        None,
        {},
        [],
        0,
    )
    assert not {"workspace_id", "build_id", "agent_id", "parent_chat_id", "diff_status"} & chat.keys()
    page = (await client.get(f"{BASE}/{chat['id']}/messages")).json()
    prompt = page["messages"][-1]
    assert prompt["role"] == "user"
    assert prompt["created_by"] == chat["owner_id"]
    assert "usage" not in prompt
    assert prompt["content"] == [
        {
            "type": "text",
            "text": "please fix the login bug in auth today",
            "url": "",
            "media_type": "",
            "file_name": "",
            "start_line": 0,
            "end_line": 0,
            "content": "",
            "context_file_path": "",
        }
    ]


async def test_create_rejects_bad_content_and_labels_with_coder_messages(client: httpx.AsyncClient) -> None:
    """Invalid content, labels and bodies get coderd's exact 400 bodies, with empty keys omitted."""
    cases: list[tuple[Any, Event]] = [
        ({"content": []}, {"message": "Content is required.", "detail": "Content cannot be empty."}),
        (
            {"content": [{"type": "text", "text": "  "}]},
            {"message": "Invalid input part.", "detail": "content[0].text cannot be empty."},
        ),
        (
            {"content": [{"type": "text", "text": "hi"}, {"type": "Video"}]},
            {"message": "Invalid input part.", "detail": 'content[1].type "Video" is not supported.'},
        ),
        (
            {"content": [{"type": "text", "text": "hi"}], "labels": {"ok": "", "bad key": "v"}},
            {
                "message": "Invalid labels.",
                "validations": [
                    {"field": "labels", "detail": 'label value for key "ok" must not be empty'},
                    {
                        "field": "labels",
                        "detail": 'label key "bad key" contains invalid characters; must match '
                        "^[a-zA-Z0-9][a-zA-Z0-9._/-]*$",
                    },
                ],
            },
        ),
    ]
    for body, expected in cases:
        response = await client.post(BASE, json=body)
        assert (response.status_code, response.json()) == (400, expected)
    response = await client.post(BASE, content=b"not json", headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert response.json()["message"] == "Request body must be valid JSON."


async def test_missing_unknown_and_revoked_tokens_are_401(sim: CoderSim) -> None:
    """Every endpoint but buildinfo needs a live token, sent as Coder-Session-Token or Bearer."""
    signed_out = "You are signed out or your session has expired. Please sign in again to continue."
    async with http(sim, token=None) as anonymous, http(sim, token="nope") as stranger:
        missing = await anonymous.get(BASE)
        assert missing.status_code == 401
        assert missing.json() == {
            "message": signed_out,
            "detail": 'Cookie "coder_session_token" or query parameter must be provided.',
        }
        assert (await stranger.get(BASE)).json() == {"message": signed_out, "detail": "API key is invalid."}
        assert (await anonymous.get("/api/v2/buildinfo")).json()["version"] == "v2.36.0-sim"
        assert (await anonymous.get(BASE, headers={"Authorization": f"Bearer {ALICE}"})).status_code == 200
    sim.revoke_token(ALICE)
    async with http(sim) as alice:
        assert (await alice.get(BASE)).status_code == 401


async def test_tokens_issued_at_run_time_name_their_user(sim: CoderSim) -> None:
    """add_token gives a new user (or a second token of a known one) access as that user."""
    carol = sim.add_token("carol-token", "carol")
    sim.add_token("bob-second-token", "bob")
    async with http(sim, "carol-token") as c, http(sim, "bob-second-token") as b:
        assert (await c.get("/api/v2/users/me")).json()["id"] == carol.id
        assert (await b.get("/api/v2/users/me")).json()["id"] == sim.users["bob"].id


async def test_chats_are_visible_only_to_their_owner(sim: CoderSim, client: httpx.AsyncClient) -> None:
    """Another user's chat is 404 everywhere (never 403) and absent from their list; bad ids are 400."""
    chat = await create(client)
    not_found = {"message": "Resource not found or you do not have access to this resource"}
    async with http(sim, BOB) as bob:
        response = await bob.get(f"{BASE}/{chat['id']}")
        assert (response.status_code, response.json()) == (404, not_found)
        assert (await bob.post(f"{BASE}/{chat['id']}/interrupt")).status_code == 404
        assert (await bob.get(BASE)).json() == []
    with pytest.raises(InvalidStatus) as refused:
        async with socket(sim, f"{BASE}/{chat['id']}/stream", token=BOB):
            pass
    assert refused.value.response.status_code == 404
    bad = await client.get(f"{BASE}/not-a-uuid")
    assert bad.status_code == 400
    assert bad.json()["message"] == 'Invalid UUID "not-a-uuid".'


async def test_stream_snapshot_orders_status_parts_messages_queue(
    sim: CoderSim, client: httpx.AsyncClient
) -> None:
    """The snapshot is status, the running turn's parts, messages with id > after_id, then the queue."""
    sim.agent = scenarios.stuck
    chat = await create(client)
    simchat = sim.chats[chat["id"]]
    await sim.wait_for(lambda: len(simchat.parts) == 3)
    await send(client, chat["id"], "and the tests")
    prompt_id = simchat.messages[0]["id"]

    async with stream(sim, chat["id"]) as ws:
        snapshot = events_of(await ws.recv())
    assert [e["type"] for e in snapshot] == ["status", *["message_part"] * 3, "message", "queue_update"]
    assert snapshot[0]["status"] == {"status": "running"}
    assert "".join(e["message_part"]["part"]["text"] for e in snapshot[1:4]) == "Working on it"
    assert snapshot[4]["message"]["id"] == prompt_id
    assert [q["content"][0]["text"] for q in snapshot[5]["queued_messages"]] == ["and the tests"]

    for after_id in (prompt_id, MAX_INT64):
        async with stream(sim, chat["id"], after_id=after_id) as ws:
            assert [e["type"] for e in events_of(await ws.recv())] == [
                "status",
                *["message_part"] * 3,
                "queue_update",
            ]
    bad = await client.get(f"{BASE}/{chat['id']}/stream", params={"after_id": "x"})
    assert (bad.status_code, bad.json()["message"]) == (400, "Invalid after_id parameter.")


async def test_turn_streams_deltas_then_persists_messages_then_waits(
    sim: CoderSim, client: httpx.AsyncClient
) -> None:
    """The default agent streams text and tool-call deltas, persists each step, and ends waiting."""
    chat = await create(client, "fix the login bug")
    async with stream(sim, chat["id"]) as ws:
        events = await read_until(ws, status_is("waiting"))
    messages = [e["message"] for e in events if e["type"] == "message"]
    assert [m["role"] for m in messages] == ["user", "assistant", "tool", "assistant", "tool", "assistant"]
    assert [m["id"] for m in messages] == sorted({m["id"] for m in messages})
    parts = [e["message_part"] for e in events if e["type"] == "message_part"]
    intro = itertools.takewhile(lambda p: p["part"]["type"] == "text", parts)
    assert "".join(p["part"]["text"] for p in intro) == text_of(messages[1])
    calls = [p["part"] for p in parts if p["part"]["type"] == "tool-call"][:4]
    assert all("args_delta" in c for c in calls[:-1])
    assert calls[-1]["args"] == {"command": "grep -rn login src/"}
    assert json.loads("".join(c["args_delta"] for c in calls[:-1])) == calls[-1]["args"]
    assert messages[2]["content"][0]["type"] == "tool-result"
    assert all(p.keys() >= ZERO_PART_KEYS for m in messages for p in m["content"])
    answer = text_of(messages[-1])
    assert "fix the login bug" in answer
    assert "```python" in answer
    assert "**" in answer
    assert "\n- " in answer
    assert "usage" in messages[-1]
    assert "created_by" not in messages[-1]
    assert sim.chats[chat["id"]].status == "waiting"


@pytest.mark.parametrize("framing", ["envelope", "envelope-single", "bare"])
async def test_each_framing_writes_its_own_frames(make_sim: MakeSim, framing: str) -> None:
    """Envelope batches arrays, envelope-single wraps one object, bare sends arrays plus a newline."""
    gate = asyncio.Event()
    sim = await make_sim(framing=framing, agent=gated(gate, Text("done")))
    async with http(sim) as alice, socket(sim, f"{BASE}/watch") as watch:
        if framing != "bare":
            assert json.loads(await watch.recv()) == {"type": "ping", "data": None}
        chat = await create(alice, "hello", organization_id=sim.organization_id)
        first_event = json.loads(await watch.recv())
        created = first_event if framing == "bare" else first_event["data"]
        assert (created["kind"], created["chat"]["id"], created["chat"]["labels"]) == (
            "created",
            chat["id"],
            None,
        )

        async with stream(sim, chat["id"]) as ws:
            gate.set()
            frames = await read_frames_until(ws, status_is("waiting"))
    for frame in frames:
        value = json.loads(frame)
        if framing == "bare":
            assert frame.endswith("\n")
            assert isinstance(value, list)
            assert value
        else:
            assert value["type"] == "data"
            assert isinstance(value["data"], dict if framing == "envelope-single" else list)
    logged = [events for _, chat_id, events in sim.frame_log if chat_id == chat["id"]]
    assert logged == [events_of(frame) for frame in frames]


async def test_queue_holds_twenty_then_answers_429(sim: CoderSim, client: httpx.AsyncClient) -> None:
    """A busy chat queues follow-ups (no message key) up to 20; the 21st gets 429 queue full."""
    sim.agent = scenarios.stuck
    chat = await create(client)
    answers = [await send(client, chat["id"], f"follow-up {n}") for n in range(20)]
    assert all(a["queued"] and "message" not in a for a in answers)
    assert [a["queued_message"]["id"] for a in answers] == sorted(
        {a["queued_message"]["id"] for a in answers}
    )
    full = await client.post(
        f"{BASE}/{chat['id']}/messages", json={"content": [{"type": "text", "text": "one more"}]}
    )
    assert (full.status_code, full.json()) == (
        429,
        {"message": "Message queue is full.", "detail": "Maximum 20 messages can be queued."},
    )
    assert len((await client.get(f"{BASE}/{chat['id']}/messages")).json()["queued_messages"]) == 20


async def test_normal_turn_end_promotes_queue_fifo(sim: CoderSim, client: httpx.AsyncClient) -> None:
    """At the end of a normal turn the oldest queued message becomes the next prompt (FIFO)."""
    gate = asyncio.Event()
    sim.agent = scenarios.echo
    sim.scripts["/hold"] = gated(gate)
    chat = await create(client, "/hold")
    await sim.wait_for(lambda: sim.chats[chat["id"]].status == "running")
    await send(client, chat["id"], "first")
    await send(client, chat["id"], "second")
    async with stream(sim, chat["id"], after_id=MAX_INT64) as ws:
        await ws.recv()  # snapshot
        gate.set()
        events = await read_until(ws, status_is("waiting"))
    relevant = [summary(e) for e in events if e["type"] != "message_part"]
    assert relevant == [
        "message:held",
        "message:first",
        "queue:1",
        "status:pending",
        "status:running",
        "message:Echo: first",
        "message:second",
        "queue:0",
        "status:pending",
        "status:running",
        "message:Echo: second",
        "status:waiting",
    ]
    assert "queued_messages" not in events[relevant.index("queue:0")]


async def test_failed_turn_reports_error_and_keeps_queue(sim: CoderSim, client: httpx.AsyncClient) -> None:
    """A failing turn publishes an error event, ends in status error, and does not promote the queue."""
    gate = asyncio.Event()
    sim.scripts["/boom"] = gated(gate, Fail("model exploded", kind="overloaded", retryable=True))
    chat = await create(client, "/boom")
    await sim.wait_for(lambda: sim.chats[chat["id"]].status == "running")
    await send(client, chat["id"], "later")
    async with stream(sim, chat["id"], after_id=MAX_INT64) as ws:
        await ws.recv()
        gate.set()
        events = await read_until(ws, status_is("error"))
    assert events[-2] == {
        "type": "error",
        "chat_id": chat["id"],
        "error": {"message": "model exploded", "kind": "overloaded", "retryable": True},
    }
    fetched = (await client.get(f"{BASE}/{chat['id']}")).json()
    assert (fetched["status"], fetched["last_error"]) == ("error", "model exploded")
    assert len(sim.chats[chat["id"]].queue) == 1


async def test_interrupt_persists_partial_reply_and_waits(sim: CoderSim, client: httpx.AsyncClient) -> None:
    """Interrupt cancels the turn, keeps the streamed text as a message, goes waiting, keeps the queue."""
    sim.agent = scenarios.stuck
    chat = await create(client)
    simchat = sim.chats[chat["id"]]
    await sim.wait_for(lambda: len(simchat.parts) == 3)
    await send(client, chat["id"], "later")
    response = await client.post(f"{BASE}/{chat['id']}/interrupt")
    assert (response.status_code, response.json()["status"]) == (200, "waiting")
    newest = (await client.get(f"{BASE}/{chat['id']}/messages")).json()["messages"][0]
    assert (newest["role"], text_of(newest)) == ("assistant", "Working on it")
    assert (simchat.status, len(simchat.queue), simchat.parts) == ("waiting", 1, [])


async def test_archive_via_patch_interrupts_and_rejects_same_state(
    sim: CoderSim, client: httpx.AsyncClient
) -> None:
    """PATCH archived interrupts, hides the chat from the default list, and repeats answer 400."""
    sim.agent = scenarios.stuck
    chat = await create(client)
    await sim.wait_for(lambda: sim.chats[chat["id"]].status == "running")
    url = f"{BASE}/{chat['id']}"
    async with socket(sim, f"{BASE}/watch") as watch:
        await watch.recv()  # ping
        assert (await client.patch(url, json={"archived": True})).status_code == 204
        kinds = [events_of(await watch.recv())[0]["kind"] for _ in range(2)]
        assert kinds == ["status_change", "deleted"]
        again = await client.patch(url, json={"archived": True})
        assert (again.status_code, again.json()) == (400, {"message": "Chat is already archived."})
        assert (await client.get(BASE)).json() == []
        archived = (await client.get(BASE, params={"q": "archived:true"})).json()
        assert [(c["id"], c["archived"], c["status"]) for c in archived] == [(chat["id"], True, "waiting")]
        assert (await client.patch(url, json={"archived": False, "title": "ignored"})).status_code == 204
        assert events_of(await watch.recv())[0]["kind"] == "created"
    again = await client.patch(url, json={"archived": False})
    assert again.json() == {"message": "Chat is already not archived."}
    assert (await client.get(url)).json()["title"] == chat["title"]
    bad = await client.get(BASE, params={"q": "archived:maybe"})
    assert (bad.status_code, bad.json()["message"]) == (400, "Invalid chat search query.")


async def test_file_upload_sniffs_content_and_caps_size(sim: CoderSim, client: httpx.AsyncClient) -> None:
    """Uploads need an allowed declared type and sniffed image; the sniffed type is stored; 10 MiB cap."""
    files = f"{BASE}/files"
    org = {"organization": sim.organization_id}
    headers = {"Content-Type": "image/jpeg", "Content-Disposition": 'attachment; filename="shot.png"'}
    uploaded = await client.post(files, params=org, content=PNG, headers=headers)
    assert uploaded.status_code == 201
    assert uploaded.json().keys() == {"id"}
    download = await client.get(f"{files}/{uploaded.json()['id']}")
    assert download.content == PNG
    assert download.headers["content-type"] == "image/png"
    assert download.headers["content-disposition"] == 'inline; filename="shot.png"'

    unsupported = {
        "message": "Unsupported file type.",
        "detail": "Allowed types: image/gif, image/jpeg, image/png, image/webp.",
    }
    for content_type, body in (("image/png", b"<svg/>"), ("image/svg+xml", PNG), ("", PNG)):
        response = await client.post(files, params=org, content=body, headers={"Content-Type": content_type})
        assert (response.status_code, response.json()) == (400, unsupported)
    huge = await client.post(
        files, params=org, content=PNG + bytes(10 << 20), headers={"Content-Type": "image/png"}
    )
    assert (huge.status_code, huge.json()) == (
        413,
        {"message": "File too large.", "detail": "Maximum file size is 10485760 bytes."},
    )
    missing = await client.post(files, content=PNG, headers={"Content-Type": "image/png"})
    assert missing.json() == {"message": "Missing organization query parameter."}

    file_id = uploaded.json()["id"]
    chat = await client.post(BASE, json={"content": [{"type": "file", "file_id": file_id}]})
    assert chat.json()["title"] == "New Chat"
    stored = sim.chats[chat.json()["id"]].messages[0]["content"][0]
    assert (stored["type"], stored["file_id"], stored["media_type"]) == ("file", file_id, "image/png")
    async with http(sim, BOB) as bob:
        foreign = await bob.post(BASE, json={"content": [{"type": "file", "file_id": file_id}]})
    assert foreign.json()["detail"] == "content[0].file_id references a file that does not exist."


async def test_edit_truncates_history_clears_queue_and_restarts(
    sim: CoderSim, client: httpx.AsyncClient
) -> None:
    """Editing a user message drops it and later ones, stores the text under a new id, empties the queue."""
    simchat = await answered_chat(sim, client, "one")
    await send(client, simchat.id, "two")
    await sim.wait_for(lambda: simchat.status == "waiting" and len(simchat.messages) == 4)
    first, reply, second, _ = (m["id"] for m in simchat.messages)
    sim.agent = scenarios.stuck
    await send(client, simchat.id, "three")
    await send(client, simchat.id, "four")
    async with stream(sim, simchat.id, after_id=MAX_INT64) as ws:
        await ws.recv()
        response = await client.patch(
            f"{BASE}/{simchat.id}/messages/{second}",
            json={"content": [{"type": "text", "text": "two, edited"}]},
        )
        events = await read_until(ws, status_is("pending"))
    edited = response.json()
    assert (response.status_code, edited["role"], text_of(edited)) == (200, "user", "two, edited")
    assert edited["id"] > max(first, reply, second)
    assert [m["id"] for m in simchat.messages][:3] == [first, reply, edited["id"]]
    assert [e["message"]["id"] for e in events if e["type"] == "message"] == [first, reply, edited["id"]]
    assert events[-2] == {"type": "queue_update", "chat_id": simchat.id}
    assert simchat.queue == []

    not_user = await client.patch(
        f"{BASE}/{simchat.id}/messages/{reply}", json={"content": [{"type": "text", "text": "x"}]}
    )
    assert (not_user.status_code, not_user.json()) == (400, {"message": "Only user messages can be edited."})
    gone = await client.patch(
        f"{BASE}/{simchat.id}/messages/{second}", json={"content": [{"type": "text", "text": "x"}]}
    )
    assert (gone.status_code, gone.json()) == (
        404,
        {"message": "Chat message not found.", "detail": "Message does not belong to this chat."},
    )
    bad = await client.patch(
        f"{BASE}/{simchat.id}/messages/zero", json={"content": [{"type": "text", "text": "x"}]}
    )
    assert bad.json() == {
        "message": "Invalid chat message ID.",
        "detail": "Message ID must be a positive integer.",
    }


async def test_label_filters_are_anded(sim: CoderSim, client: httpx.AsyncClient) -> None:
    """Repeated label=key:value filters must all match; a malformed filter is 400."""
    sim.agent = scenarios.stuck
    a = await create(client, labels={"team": "a", "channel": "C1"})
    b = await create(client, labels={"team": "a", "channel": "C2"})
    await create(client, labels={"team": "b"})
    team_a = (await client.get(BASE, params={"label": "team:a"})).json()
    assert sorted(c["id"] for c in team_a) == sorted([a["id"], b["id"]])
    both = (await client.get(BASE, params=[("label", "team:a"), ("label", "channel:C1")])).json()
    assert [c["id"] for c in both] == [a["id"]]
    bad = await client.get(BASE, params={"label": "team"})
    assert (bad.status_code, bad.json()) == (
        400,
        {"message": 'Invalid label filter: "team" (expected format key:value, both must be non-empty)'},
    )


async def test_messages_page_newest_first_with_queue_on_first_page(
    sim: CoderSim, client: httpx.AsyncClient
) -> None:
    """GET /messages is newest first, pages with before_id, and lists the queue only on page one."""
    simchat = await answered_chat(sim, client, "one")
    sim.agent = scenarios.stuck
    await send(client, simchat.id, "two")
    await send(client, simchat.id, "queued")
    url = f"{BASE}/{simchat.id}/messages"
    ids = [m["id"] for m in simchat.messages]
    first = (await client.get(url, params={"limit": 2})).json()
    assert ([m["id"] for m in first["messages"]], first["has_more"]) == (ids[::-1][:2], True)
    assert [q["content"][0]["text"] for q in first["queued_messages"]] == ["queued"]
    older = (await client.get(url, params={"limit": 2, "before_id": first["messages"][-1]["id"]})).json()
    assert older == {"messages": [simchat.messages[0]], "queued_messages": [], "has_more": False}
    for limit in ("0", "201"):
        response = await client.get(url, params={"limit": limit})
        assert (response.status_code, response.json()) == (
            400,
            {"message": "Invalid limit parameter (1-200)."},
        )
    invalid = (await client.get(url, params={"limit": "abc"})).json()
    assert invalid["message"] == "Query parameters have invalid values."
    assert invalid["validations"][0]["field"] == "limit"


async def test_drop_streams_cuts_sockets_without_close_frame(
    sim: CoderSim, client: httpx.AsyncClient
) -> None:
    """drop_streams aborts one chat's or every stream socket, as a network failure would."""
    sim.agent = scenarios.stuck
    one, two = await create(client), await create(client)
    async with stream(sim, one["id"]) as ws_one, stream(sim, two["id"]) as ws_two:
        await ws_one.recv()
        await ws_two.recv()
        assert (sim.active_streams(), sim.active_streams(one["id"])) == (2, 1)
        sim.drop_streams(one["id"])
        with pytest.raises(ConnectionClosed) as dropped:
            await read_until(ws_one, lambda event: False)
        assert dropped.value.rcvd is None
        assert sim.active_streams() == 1
        sim.drop_streams()
        with pytest.raises(ConnectionClosed):
            await read_until(ws_two, lambda event: False)
    assert sim.active_streams() == 0


async def test_silenced_stream_sends_nothing_and_answers_no_ping(make_sim: MakeSim) -> None:
    """silence_streams keeps the socket open but sends no frame or ping and leaves pings unanswered."""
    sim = await make_sim(heartbeat=0.05)
    sim.agent = scenarios.stuck
    async with http(sim) as client:
        chat = await create(client)
    async with stream(sim, chat["id"]) as ws:
        await ws.recv()
        sim.silence_streams(chat["id"])
        pong = await ws.ping()
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(asyncio.shield(pong), 0.3)
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(ws.recv(), 0.3)
        assert sim.active_streams(chat["id"]) == 1, "TCP stays open"


async def test_stream_closes_1001_when_its_ping_goes_unanswered(make_sim: MakeSim) -> None:
    """Coder pings every heartbeat and closes with 1001 "Ping failed" when no pong comes back."""
    sim = await make_sim(heartbeat=0.05)
    sim.agent = scenarios.stuck
    async with http(sim) as client:
        chat = await create(client)
    url = sim.url.replace("http://", "ws://") + f"{BASE}/{chat['id']}/stream"
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(url, headers={"Coder-Session-Token": ALICE}, autoping=False) as ws,
    ):
        seen: list[aiohttp.WSMsgType] = []
        async for message in ws:
            seen.append(message.type)
        assert aiohttp.WSMsgType.PING in seen
        assert ws.close_code == 1001


async def test_client_data_frame_closes_stream_with_1002(sim: CoderSim, client: httpx.AsyncClient) -> None:
    """The stream is one-way: an envelope build closes with 1002 when the client writes."""
    sim.agent = scenarios.stuck
    chat = await create(client)
    async with stream(sim, chat["id"]) as ws:
        await ws.recv()
        await ws.send("hello")
        with pytest.raises(ConnectionClosed) as closed:
            await read_until(ws, lambda event: False)
    assert closed.value.rcvd is not None
    assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (
        1002,
        "Clients cannot send messages for one-way WebSockets",
    )


async def test_promote_and_delete_queued_messages(sim: CoderSim, client: httpx.AsyncClient) -> None:
    """Promote turns a queued item into the next prompt; an unknown id is 500; delete answers 204."""
    sim.agent = scenarios.stuck
    chat = await create(client)
    a = (await send(client, chat["id"], "a"))["queued_message"]
    b = (await send(client, chat["id"], "b"))["queued_message"]
    promoted = await client.post(f"{BASE}/{chat['id']}/queue/{b['id']}/promote")
    assert (promoted.status_code, promoted.json()["role"], text_of(promoted.json())) == (200, "user", "b")
    simchat = sim.chats[chat["id"]]
    assert [q["id"] for q in simchat.queue] == [a["id"]]
    assert simchat.status in ("pending", "running")
    unknown = await client.post(f"{BASE}/{chat['id']}/queue/999/promote")
    assert (unknown.status_code, unknown.json()) == (
        500,
        {"message": "Failed to promote queued message.", "detail": "queued message not found"},
    )
    assert (await client.delete(f"{BASE}/{chat['id']}/queue/{a['id']}")).status_code == 204
    assert simchat.queue == []
    bad = await client.delete(f"{BASE}/{chat['id']}/queue/x")
    assert (bad.status_code, bad.json()["message"]) == (400, "Invalid queued message ID.")


async def test_bare_build_requires_organization_and_takes_busy_behavior(make_sim: MakeSim) -> None:
    """Later G1 builds need organization_id, accept busy_behavior, and wrap the edited message."""
    sim = await make_sim(framing="bare", agent=scenarios.stuck)
    async with http(sim) as alice:
        missing = await alice.post(BASE, json={"content": [{"type": "text", "text": "hi"}]})
        assert (missing.status_code, missing.json()) == (400, {"message": "organization_id is required."})
        nil_org = await alice.post(
            BASE, json={"content": [{"type": "text", "text": "hi"}], "organization_id": NIL_UUID}
        )
        assert nil_org.json() == {"message": "organization_id is required."}
        other = await alice.post(
            BASE, json={"content": [{"type": "text", "text": "hi"}], "organization_id": OTHER_ORG}
        )
        assert (other.status_code, other.json()) == (
            403,
            {"message": "You are not a member of the specified organization."},
        )
        chat = await create(alice, "hi", organization_id=sim.organization_id)
        simchat = sim.chats[chat["id"]]
        await sim.wait_for(lambda: len(simchat.parts) == 3)
        invalid = await alice.post(
            f"{BASE}/{chat['id']}/messages",
            json={"content": [{"type": "text", "text": "x"}], "busy_behavior": "later"},
        )
        assert invalid.json() == {
            "message": "Invalid busy_behavior value.",
            "detail": 'Must be "queue" or "interrupt".',
        }
        sent = await send(alice, chat["id"], "now please", busy_behavior="interrupt")
        assert sent["queued"] is False
        assert text_of(sent["message"]) == "now please"
        assert [text_of(m) for m in simchat.messages[-2:]] == ["Working on it", "now please"]
        edited = await alice.patch(
            f"{BASE}/{chat['id']}/messages/{sent['message']['id']}",
            json={"content": [{"type": "text", "text": "later"}]},
        )
        assert edited.json().keys() == {"message"}


async def test_fault_knobs_fail_requests_and_record_everything(
    sim: CoderSim, client: httpx.AsyncClient
) -> None:
    """fail_next answers matching requests once with a Coder body; set_unavailable fails everything."""
    sim.fail_next("GET", r"/chats$", 503, "Try again later.")
    failed = await client.get(BASE, params={"q": "archived:false"})
    assert (failed.status_code, failed.json()) == (503, {"message": "Try again later."})
    assert (await client.get(BASE)).status_code == 200
    sim.set_unavailable(True)
    down = await client.get("/api/v2/buildinfo")
    assert (down.status_code, down.json()) == (
        500,
        {"message": "Chat processor is unavailable.", "detail": "Chat processor is not configured."},
    )
    sim.set_unavailable(False)
    await create(client, "recorded")
    first, _, _, last = sim.requests
    assert (first.method, first.path, first.query, first.token) == (
        "GET",
        BASE,
        {"q": ["archived:false"]},
        ALICE,
    )
    assert last.json == {"content": [{"type": "text", "text": "recorded"}]}


async def test_deployment_endpoints_and_unknown_routes(sim: CoderSim, client: httpx.AsyncClient) -> None:
    """buildinfo, users/me, experiments and models answer like Coder; unknown routes are JSON 404s."""
    me = (await client.get("/api/v2/users/me")).json()
    assert (me["id"], me["username"], me["status"], me["organization_ids"]) == (
        sim.users["alice"].id,
        "alice",
        "active",
        [sim.organization_id],
    )
    assert (await client.get("/api/v2/experiments")).json() == ["agents"]
    assert (await client.get("/api/v2/buildinfo")).json()["external_url"] == sim.url
    models = (await client.get(f"{BASE}/models")).json()
    assert models["providers"][0]["models"][0]["id"] == "anthropic:claude-sonnet-4"
    missing = await client.get("/api/v2/chats")
    assert (missing.status_code, missing.json()) == (404, {"message": "Route not found."})


async def test_wait_for_times_out_with_a_clear_message(sim: CoderSim) -> None:
    """wait_for raises TimeoutError naming the predicate that never held."""
    with pytest.raises(TimeoutError, match=r"still false after 0\.05 s"):
        await sim.wait_for(lambda: False, timeout=0.05)


# G2: the promoted API (generation "v2", and "v2.37" with both prefixes) --------------------------


async def v2_create(sim: CoderSim, client: httpx.AsyncClient, text: str = "fix the login bug") -> Event:
    return await create(client, text, base=V2, organization_id=sim.organization_id)


async def test_v2_serves_only_the_promoted_prefix(make_sim: MakeSim) -> None:
    """v2: chats under /api/v2 only (experimental 404s), models under the organization, newer version."""
    sim = await make_sim(generation="v2")
    async with http(sim) as alice:
        assert (await alice.get(V2)).json() == []
        for gone in (BASE, f"{BASE}/models"):
            missing = await alice.get(gone)
            assert (missing.status_code, missing.json()) == (404, {"message": "Route not found."})
        models = await alice.get(f"/api/v2/organizations/{sim.organization_id}/chats/models")
        assert models.status_code == 200
        [model] = [m for m in models.json()["models"] if m["is_default"]]
        assert (model["id"], model["organization_id"]) == (sim.model_config_id, sim.organization_id)
        other = await alice.get(f"/api/v2/organizations/{OTHER_ORG}/chats/models")
        assert other.status_code == 404
        assert (await alice.get("/api/v2/buildinfo")).json()["version"] == "v2.38.0-sim"
        assert sim.framing == "bare"


async def test_experimental_generation_has_no_org_models_route(
    sim: CoderSim, client: httpx.AsyncClient
) -> None:
    """G1 still lists models under the chats prefix; the organization route is unknown there."""
    assert (await client.get(f"/api/v2/organizations/{sim.organization_id}/chats/models")).status_code == 404
    assert (await client.get(f"{BASE}/models")).status_code == 200


async def test_v2_37_answers_on_both_prefixes(make_sim: MakeSim) -> None:
    """v2.37: the same promoted API on both prefixes; a chat made on one is seen on the other."""
    sim = await make_sim(generation="v2.37", agent=scenarios.stuck)
    async with http(sim) as alice:
        chat = await create(alice, "hello", organization_id=sim.organization_id)
        assert chat["status"] == "running"
        assert [c["id"] for c in (await alice.get(V2)).json()] == [chat["id"]]
        assert (await alice.get(f"{V2}/{chat['id']}")).json()["organization_id"] == sim.organization_id
        async with stream(sim, chat["id"], base=V2) as ws:
            frame = await ws.recv()
        assert isinstance(json.loads(frame), list)
        assert (await alice.get("/api/v2/buildinfo")).json()["version"] == "v2.37.0-sim"


async def test_v2_chat_has_g2_fields_and_starts_running(make_sim: MakeSim) -> None:
    """A G2 Chat: organization_id, last_error omitted, summaries null, children [], status running."""
    sim = await make_sim(generation="v2")
    async with http(sim) as alice:
        missing = await alice.post(V2, json={"content": [{"type": "text", "text": "hi"}]})
        assert (missing.status_code, missing.json()) == (400, {"message": "organization_id is required."})
        chat = await v2_create(sim, alice)
        assert chat["status"] == "running"
        assert "last_error" not in chat
        assert {key: chat[key] for key in ("organization_id", "last_model_config_id", "client_type")} == {
            "organization_id": sim.organization_id,
            "last_model_config_id": sim.model_config_id,
            "client_type": "api",
        }
        assert (chat["last_turn_summary"], chat["summary"], chat["shared"], chat["children"]) == (
            None,
            None,
            False,
            [],
        )
        async with stream(sim, chat["id"], base=V2) as ws:
            events = await read_until(ws, status_is("waiting"))
    statuses = [e["status"]["status"] for e in events if e["type"] == "status"]
    assert statuses == ["running", "waiting"]


async def test_v2_failed_turn_keeps_last_error_as_an_object(make_sim: MakeSim) -> None:
    """G2's last_error is a ChatError object; the error stream event is unchanged."""
    sim = await make_sim(generation="v2")
    sim.scripts["/boom"] = lambda prompt: [Fail("model exploded", kind="overloaded", retryable=True)]
    async with http(sim) as alice:
        chat = await v2_create(sim, alice, "/boom")
        await sim.wait_for(lambda: sim.chats[chat["id"]].status == "error")
        fetched = (await alice.get(f"{V2}/{chat['id']}")).json()
    assert fetched["last_error"] == {"message": "model exploded", "kind": "overloaded", "retryable": True}


async def test_v2_interrupt_goes_through_interrupting(make_sim: MakeSim) -> None:
    """Interrupt answers 'interrupting', then the partial reply is kept and the chat waits; idle is 409."""
    sim = await make_sim(generation="v2", agent=scenarios.stuck)
    async with http(sim) as alice:
        chat = await v2_create(sim, alice)
        simchat = sim.chats[chat["id"]]
        await sim.wait_for(lambda: len(simchat.parts) == 3)
        async with stream(sim, chat["id"], after_id=MAX_INT64, base=V2) as ws:
            await ws.recv()  # snapshot
            response = await alice.post(f"{V2}/{chat['id']}/interrupt")
            assert (response.status_code, response.json()["status"]) == (200, "interrupting")
            events = await read_until(ws, status_is("waiting"))
        assert [summary(e) for e in events] == [
            "status:interrupting",
            "message:Working on it",
            "status:waiting",
        ]
        idle = await alice.post(f"{V2}/{chat['id']}/interrupt")
        assert (idle.status_code, idle.json()) == (409, {"message": "Chat is not running."})


async def test_v2_patch_renames_and_announces_the_title(make_sim: MakeSim) -> None:
    """G2's PATCH applies ``title`` (trimmed, 1-200 characters) and tells watchers; the same one is quiet."""
    sim = await make_sim(generation="v2", agent=scenarios.stuck)
    async with http(sim) as alice:
        chat = await v2_create(sim, alice)
        url = f"{V2}/{chat['id']}"
        async with socket(sim, f"{V2}/watch") as watch:
            assert (await alice.patch(url, json={"title": "  Login bug  "})).status_code == 204
            event = json.loads(await watch.recv())
            assert (event["kind"], event["chat"]["title"]) == ("title_change", "Login bug")
            assert (await alice.patch(url, json={"title": "Login bug"})).status_code == 204
            too_long = "x" * 201
            for title, message in (
                ("  ", "Title cannot be empty."),
                (too_long, "Title must be at most 200 characters."),
            ):
                refused = await alice.patch(url, json={"title": title})
                assert (refused.status_code, refused.json()) == (400, {"message": message})
            assert (await alice.get(url)).json()["title"] == "Login bug"
            assert (await alice.patch(url, json={"title": "Auth fix"})).status_code == 204
            event = json.loads(await watch.recv())  # the next event: nothing came in between
            assert (event["kind"], event["chat"]["title"]) == ("title_change", "Auth fix")


async def test_v2_busy_interrupt_send_queues_then_promotes(make_sim: MakeSim) -> None:
    """busy_behavior=interrupt answers queued, interrupts, keeps the partial reply, runs the message."""
    sim = await make_sim(generation="v2", agent=scenarios.stuck)
    async with http(sim) as alice:
        chat = await v2_create(sim, alice)
        simchat = sim.chats[chat["id"]]
        await sim.wait_for(lambda: len(simchat.parts) == 3)
        async with stream(sim, chat["id"], after_id=MAX_INT64, base=V2) as ws:
            await ws.recv()
            sent = await send(alice, chat["id"], "stop and do this", base=V2, busy_behavior="interrupt")
            assert sent["queued"] is True
            assert "message" not in sent
            events = await read_until(ws, status_is("running"))
    assert [summary(e) for e in events if e["type"] != "message_part"] == [
        "queue:1",
        "status:interrupting",
        "message:Working on it",
        "message:stop and do this",
        "queue:0",
        "status:running",
    ]


async def test_v2_archiving_an_active_chat_is_a_conflict(make_sim: MakeSim) -> None:
    """G2 refuses to archive a running chat (409) and archives it once it waits."""
    sim = await make_sim(generation="v2", agent=scenarios.stuck)
    async with http(sim) as alice:
        chat = await v2_create(sim, alice)
        url = f"{V2}/{chat['id']}"
        busy = await alice.patch(url, json={"archived": True})
        assert (busy.status_code, busy.json()) == (409, {"message": "Cannot archive an active chat."})
        await alice.post(f"{url}/interrupt")
        await sim.wait_for(lambda: sim.chats[chat["id"]].status == "waiting")
        assert (await alice.patch(url, json={"archived": True})).status_code == 204


async def test_v2_uploads_accept_documents_and_text(make_sim: MakeSim) -> None:
    """G2 widens the allow-list to PDF and text types; bytes must still match, SVG stays out."""
    sim = await make_sim(generation="v2")
    files = f"{V2}/files"
    org = {"organization": sim.organization_id}
    accepted = [
        ("application/pdf", b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n"),
        ("text/plain", "notes – ünïcode\n".encode()),
        ("text/csv", b"a,b\n1,2\n"),
        ("text/markdown", b"# Title\n"),
        ("application/json", b'{"a": 1}'),
        ("image/png", PNG),
    ]
    async with http(sim) as alice:
        for media_type, body in accepted:
            uploaded = await alice.post(files, params=org, content=body, headers={"Content-Type": media_type})
            assert uploaded.status_code == 201, media_type
            download = await alice.get(f"{files}/{uploaded.json()['id']}")
            assert download.headers["content-type"].split(";")[0] == media_type
        unsupported = {
            "message": "Unsupported file type.",
            "detail": "Allowed types: application/json, application/pdf, image/gif, image/jpeg, image/png, "
            "image/webp, text/csv, text/markdown, text/plain.",
        }
        for media_type, body in (
            ("image/svg+xml", b"<svg/>"),
            ("text/plain", b"\x00\x01binary"),
            ("application/pdf", b"nope"),
        ):
            response = await alice.post(files, params=org, content=body, headers={"Content-Type": media_type})
            assert (response.status_code, response.json()) == (400, unsupported), media_type


async def test_v2_messages_after_id_ascending_and_edit_wrapped(make_sim: MakeSim) -> None:
    """GET /messages?after_id pages forwards oldest first; an edit answers {"message": ...}."""
    sim = await make_sim(generation="v2", agent=scenarios.echo)
    async with http(sim) as alice:
        chat = await v2_create(sim, alice, "one")
        simchat = sim.chats[chat["id"]]
        await sim.wait_for(lambda: simchat.status == "waiting")
        await send(alice, chat["id"], "two", base=V2)
        await sim.wait_for(lambda: simchat.status == "waiting" and len(simchat.messages) == 4)
        ids = [m["id"] for m in simchat.messages]
        url = f"{V2}/{chat['id']}/messages"
        forward = (await alice.get(url, params={"after_id": ids[0], "limit": 2})).json()
        assert ([m["id"] for m in forward["messages"]], forward["has_more"]) == (ids[1:3], True)
        backward = (await alice.get(url, params={"limit": 2})).json()
        assert [m["id"] for m in backward["messages"]] == ids[:1:-1]
        edited = await alice.patch(f"{url}/{ids[2]}", json={"content": [{"type": "text", "text": "deux"}]})
        assert edited.json().keys() == {"message"}
        assert text_of(edited.json()["message"]) == "deux"


async def test_v2_watch_sends_bare_g2_chats(make_sim: MakeSim) -> None:
    """The G2 watch socket sends bare ChatWatchEvents whose partial chat has G2 keys, no last_error."""
    sim = await make_sim(generation="v2", agent=scenarios.stuck)
    async with http(sim) as alice, socket(sim, f"{V2}/watch") as watch:
        chat = await v2_create(sim, alice)
        created = json.loads(await watch.recv())
    assert created["kind"] == "created"
    assert (created["chat"]["id"], created["chat"]["organization_id"]) == (chat["id"], sim.organization_id)
    assert "last_error" not in created["chat"]


def waits(events: list[Event]) -> list[str]:
    """The G2 wait for a client, in order: statuses, the calls waited on, tool results, replies."""
    shown: list[str] = []
    for event in events:
        if event["type"] == "action_required":
            calls = event["action_required"]["tool_calls"]
            shown.append("action_required:" + ",".join(c["tool_name"] for c in calls))
        elif event["type"] == "message" and event["message"]["role"] == "tool":
            result = event["message"]["content"][0]
            shown.append(f"tool:{result['result']}" + (" (error)" if result.get("is_error") else ""))
        elif event["type"] != "message_part":
            shown.append(summary(event))
    return shown


async def waiting_chat(sim: CoderSim, alice: httpx.AsyncClient, text: str = "/ask first") -> SimChat:
    """A G2 chat whose agent asked the user a question and now waits in requires_action."""
    chat = sim.chats[(await v2_create(sim, alice, text))["id"]]
    await sim.wait_for(lambda: chat.status == "requires_action")
    return chat


async def test_v2_client_tool_waits_until_its_result_comes(make_sim: MakeSim) -> None:
    """A client tool call parks the turn in requires_action (action_required on stream and watch, and
    in a new socket's snapshot); POST /tool-results checks the ids, stores the result and the turn goes on."""
    sim = await make_sim(generation="v2", agent=scenarios.echo)
    async with http(sim) as alice, socket(sim, f"{V2}/watch") as watch:
        chat = sim.chats[(await v2_create(sim, alice, "/ask first"))["id"]]
        async with stream(sim, chat.id, base=V2) as ws:
            events = await read_until(ws, lambda e: e["type"] == "action_required")
        kinds = [json.loads(await watch.recv()) for _ in range(2)]
        assert [(k["kind"], k["chat"]["status"]) for k in kinds] == [
            ("created", "running"),
            ("action_required", "requires_action"),
        ]
        assert waits(events)[-3:] == [
            "message:Before I change anything, I need one answer from you.",
            "status:requires_action",
            "action_required:ask_user_question",
        ]
        (call,) = events[-1]["action_required"]["tool_calls"]
        assert call == {
            "tool_call_id": chat.pending_calls[0]["tool_call_id"],
            "tool_name": "ask_user_question",
            "args": scenarios.ASK_ARGS,
        }
        assert (await alice.get(f"{V2}/{chat.id}")).json()["status"] == "requires_action"
        async with stream(sim, chat.id, after_id=MAX_INT64, base=V2) as ws:
            snapshot = events_of(await ws.recv())
            assert waits(snapshot) == ["status:requires_action", "action_required:ask_user_question"]
            url = f"{V2}/{chat.id}/tool-results"
            wrong = await alice.post(url, json={"results": [{"tool_call_id": "nope", "output": {}}]})
            assert (wrong.status_code, wrong.json()) == (
                400,
                {
                    "message": "Missing tool result.",
                    "detail": f'Missing result for tool call "{call["tool_call_id"]}".',
                },
            )
            no_output = await alice.post(url, json={"results": [{"tool_call_id": call["tool_call_id"]}]})
            assert no_output.json()["message"] == "Tool result output must be valid JSON."
            answer = {"tool_call_id": call["tool_call_id"], "output": {"answers": ["Postgres"]}}
            assert (await alice.post(url, json={"results": [answer]})).status_code == 204
            events = await read_until(ws, status_is("waiting"))
        assert waits(events) == [
            "tool:{'answers': ['Postgres']}",
            "status:running",
            "message:Thanks, I have what I need.",
            "status:waiting",
        ]
        kind = json.loads(await watch.recv())
        assert (kind["kind"], kind["chat"]["status"]) == ("status_change", "running")
        late = await alice.post(url, json={"results": [answer]})
    assert (late.status_code, late.json()["detail"]) == (
        409,
        'chat status is "waiting", expected "requires_action"',
    )


@pytest.mark.parametrize("how", ["interrupt", "message", "timeout"])
async def test_v2_client_tool_cancelled_then_turn_goes_on(make_sim: MakeSim, how: str) -> None:
    """An interrupt, a busy_behavior=interrupt message or the deadline answers the call with chatd's
    cancellation and the model goes on; the message waits in the queue until the turn ends."""
    sim = await make_sim(
        generation="v2", agent=scenarios.echo, action_timeout=0.05 if how == "timeout" else 60
    )
    async with http(sim) as alice:
        chat = await waiting_chat(sim, alice)
        async with stream(sim, chat.id, after_id=MAX_INT64, base=V2) as ws:
            await ws.recv()  # snapshot
            if how == "interrupt":
                interrupted = await alice.post(f"{V2}/{chat.id}/interrupt")
                assert (interrupted.status_code, interrupted.json()["status"]) == (200, "running")
            elif how == "message":
                sent = await send(alice, chat.id, "Postgres", base=V2, busy_behavior="interrupt")
                assert sent["queued"] is True
            events = await read_until(ws, status_is("waiting"))
    reason = {
        "interrupt": "Tool execution interrupted by user",
        "message": "Tool execution interrupted by user message",
        "timeout": "Tool execution timed out",
    }[how]
    queued = ["queue:1"] if how == "message" else []
    taken = ["message:Postgres", "queue:0", "message:Echo: Postgres"] if how == "message" else []
    assert waits(events) == [
        f"tool:{reason} (error)",
        *queued,
        "status:running",
        "message:Thanks, I have what I need.",
        *taken,
        "status:waiting",
    ]


async def test_v2_plain_message_queues_and_promotion_ends_the_wait(make_sim: MakeSim) -> None:
    """A plain send to a waiting chat queues and it keeps waiting; promoting it cancels the call and
    starts a new turn with it (the rest of the asking turn is not played)."""
    sim = await make_sim(generation="v2", agent=scenarios.echo)
    async with http(sim) as alice:
        chat = await waiting_chat(sim, alice)
        async with stream(sim, chat.id, after_id=MAX_INT64, base=V2) as ws:
            await ws.recv()
            queued = (await send(alice, chat.id, "SQLite", base=V2))["queued_message"]
            await read_until(ws, lambda e: e["type"] == "queue_update")
            assert chat.status == "requires_action"
            await alice.post(f"{V2}/{chat.id}/queue/{queued['id']}/promote")
            events = await read_until(ws, status_is("waiting"))
    assert waits(events) == [
        "tool:Tool execution interrupted by queued message promotion (error)",
        "message:SQLite",
        "queue:0",
        "status:running",
        "message:Echo: SQLite",
        "status:waiting",
    ]


@pytest.mark.parametrize("generation", ["experimental", "ai-sdk"])
async def test_client_tool_without_requires_action_fails_the_turn(make_sim: MakeSim, generation: str) -> None:
    """G1 and G0a have no requires_action: a script that waits for a client is broken there."""
    sim = await make_sim(generation=generation, agent=lambda prompt: [ClientToolCall("ask", {})])
    async with http(sim) as alice:
        if generation == "ai-sdk":
            chat = await ai_chat(alice)
            await ai_send(alice, chat["id"], "hi")
        else:
            chat = await create(alice, "hi")
        simchat = sim.chats[chat["id"]]
        await sim.wait_for(lambda: simchat.status == "error")
    assert simchat.last_error is not None
    assert simchat.last_error["message"].startswith("chat processing panicked")


def test_g2_generations_refuse_envelope_framing() -> None:
    """G2 never used envelopes; asking for one is a mistake in the test, not a mode."""
    with pytest.raises(ValueError, match="bare"):
        CoderSim(generation="v2", framing="envelope")


# G0a: the 2025 AI-SDK chat API (generation "ai-sdk") ----------------------------------------------

AI_MODEL = "claude-3-7-sonnet-latest"
Part = tuple[str, Any]


def workspace_lookup(prompt: str) -> list[Step]:
    return [
        Text("Let me look."),
        ToolCall("coder_list_workspaces", {"owner": "me"}, [{"name": "dev"}]),
        Text("You have one workspace."),
    ]


def v1_parts(body: str) -> list[Part]:
    """Data stream protocol v1: one ``<TYPE_ID>:<JSON>`` per line."""
    parts: list[Part] = []
    for line in body.splitlines():
        type_id, sep, value = line.partition(":")
        assert sep, line
        assert len(type_id) == 1, line
        parts.append((type_id, json.loads(value)))
    return parts


def sse_parts(body: str) -> list[Event | str]:
    """The SSE form: ``data: {json}`` events separated by blank lines, then a bare ``[DONE]``."""
    assert body.endswith("\n\n")
    events: list[Event | str] = []
    for chunk in body[:-2].split("\n\n"):
        events.append(json.loads(chunk.removeprefix("data: ")) if chunk.startswith("data: ") else chunk)
    return events


def ai_message(text: str, message_id: str = "m-1") -> Event:
    return {"id": message_id, "role": "user", "content": text, "parts": [{"type": "text", "text": text}]}


async def ai_chat(client: httpx.AsyncClient) -> Event:
    response = await client.post(V2)
    assert response.status_code == 201, response.text
    chat: Event = response.json()
    return chat


async def ai_send(client: httpx.AsyncClient, chat_id: str, text: str, **extra: Any) -> httpx.Response:
    body = {"model": AI_MODEL, "message": ai_message(text), "thinking": False, **extra}
    return await client.post(f"{V2}/{chat_id}/messages", json=body)


async def test_ai_sdk_chats_have_four_keys_and_take_the_first_message_as_title(make_sim: MakeSim) -> None:
    """G0a Chats are id/created_at/updated_at/title only; "New Chat" until the first message."""
    sim = await make_sim(generation="ai-sdk", agent=scenarios.echo)
    async with http(sim) as alice, http(sim, BOB) as bob:
        chat = await ai_chat(alice)
        assert chat.keys() == {"id", "created_at", "updated_at", "title"}
        assert chat["title"] == "New Chat"
        assert (await alice.get(V2)).json() == [chat]
        assert (await alice.get(f"{V2}/{chat['id']}")).json() == chat
        assert (await bob.get(f"{V2}/{chat['id']}")).status_code == 404
        assert (await bob.get(V2)).json() == []
        long_prompt = "please list every workspace I own and tell me which are stopped"
        assert (await ai_send(alice, chat["id"], long_prompt)).status_code == 200
        assert (await ai_send(alice, chat["id"], "and now?")).status_code == 200
        titled = (await alice.get(f"{V2}/{chat['id']}")).json()
        assert titled["title"] == long_prompt[:40]
        assert titled["updated_at"] != chat["updated_at"]
        assert (await alice.get("/api/v2/experiments")).json() == ["agentic-chat"]
        deleted = await alice.delete(f"{V2}/{chat['id']}")
        assert deleted.status_code == 204
        assert (await alice.get(f"{V2}/{chat['id']}")).status_code == 404


async def test_ai_sdk_v1_stream_plays_steps_line_by_line(make_sim: MakeSim) -> None:
    """v1: f/0/b/c/9/a/e/d for the tool step, then f/0/e/d with stop; each step stored as a message."""
    sim = await make_sim(generation="ai-sdk", agent=workspace_lookup)
    async with http(sim) as alice:
        chat = await ai_chat(alice)
        response = await ai_send(alice, chat["id"], "which workspaces do I have?")
        messages = (await alice.get(f"{V2}/{chat['id']}/messages")).json()
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/plain; charset=utf-8"
    assert response.headers["x-vercel-ai-data-stream"] == "v1"
    parts = v1_parts(response.text)
    assert [t for t, _ in parts] == [
        *["f", "0", "0", "0", "b", "c", "c", "c", "9", "a", "e", "d"],
        *["f", "0", "0", "0", "0", "e", "d"],
    ]
    values = [v for _, v in parts]
    assert "".join(values[1:4]) == "Let me look."
    call_id = values[4]["toolCallId"]
    assert values[4] == {"toolCallId": call_id, "toolName": "coder_list_workspaces"}
    assert json.loads("".join(v["argsTextDelta"] for v in values[5:8])) == {"owner": "me"}
    assert values[8] == {"toolCallId": call_id, "toolName": "coder_list_workspaces", "args": {"owner": "me"}}
    assert values[9] == {"toolCallId": call_id, "result": [{"name": "dev"}]}
    assert (values[10]["finishReason"], values[10]["isContinued"], values[11]["finishReason"]) == (
        "tool-calls",
        False,
        "tool-calls",
    )
    assert "".join(values[13:17]) == "You have one workspace."
    assert (values[17]["finishReason"], values[18]["finishReason"]) == ("stop", "stop")
    assert values[18].keys() == {"finishReason", "usage"}
    user, first, second = messages
    assert user == ai_message("which workspaces do I have?")
    assert first == {
        "id": values[0]["messageId"],
        "content": "Let me look.",
        "role": "assistant",
        "parts": [
            {"type": "step-start"},
            {"type": "text", "text": "Let me look."},
            {
                "type": "tool-invocation",
                "toolInvocation": {
                    "state": "result",
                    "toolCallId": call_id,
                    "toolName": "coder_list_workspaces",
                    "args": {"owner": "me"},
                    "result": [{"name": "dev"}],
                },
            },
        ],
    }
    assert second["id"] == values[12]["messageId"]
    assert second["parts"] == [{"type": "step-start"}, {"type": "text", "text": "You have one workspace."}]
    assert sim.chats[chat["id"]].messages == messages


async def test_ai_sdk_sse_stream_carries_the_same_reply(make_sim: MakeSim) -> None:
    """stream_format="sse": data: {json} events with the v2 header, ending in a bare [DONE]."""
    sim = await make_sim(generation="ai-sdk", stream_format="sse", agent=workspace_lookup)
    async with http(sim) as alice:
        chat = await ai_chat(alice)
        response = await ai_send(alice, chat["id"], "which workspaces do I have?")
        stored = (await alice.get(f"{V2}/{chat['id']}/messages")).json()
    assert response.headers["content-type"] == "text/event-stream"
    assert response.headers["x-vercel-ai-data-stream"] == "v2"
    events = sse_parts(response.text)
    assert events[-1] == "[DONE]"
    parts = [e for e in events if isinstance(e, dict)]
    assert [p["type"] for p in parts] == [
        *["start", "start-step", "text-start", "text-delta", "text-delta", "text-delta", "text-end"],
        *["tool-input-start", *["tool-input-delta"] * 3, "tool-input-available", "tool-output-available"],
        *["finish-step", "start-step", "text-start", *["text-delta"] * 4, "text-end", "finish-step"],
        "finish",
    ]
    assert "".join(p["delta"] for p in parts[:7] if p["type"] == "text-delta") == "Let me look."
    assert parts[11]["input"] == {"owner": "me"}
    assert parts[12]["output"] == [{"name": "dev"}]
    assert parts[-1] == {"finishReason": "stop", "type": "finish"}
    assert [m["role"] for m in stored] == ["user", "assistant", "assistant"]


@pytest.mark.parametrize(("stream_format", "tail"), [("v1", ["f", "0"]), ("sse", ["error"])])
async def test_ai_sdk_failure_ends_the_stream_and_stores_no_step(
    make_sim: MakeSim, stream_format: str, tail: list[str]
) -> None:
    """A failed model call ends a v1 body without e/d (no 3: line); SSE adds an error part."""
    sim = await make_sim(generation="ai-sdk", stream_format=stream_format)
    sim.agent = lambda prompt: [Text("Looking."), Fail("Anthropic API error: overloaded (529)")]
    async with http(sim) as alice:
        chat = await ai_chat(alice)
        response = await ai_send(alice, chat["id"], "hi")
    if stream_format == "v1":
        assert [t for t, _ in v1_parts(response.text)] == tail
    else:
        last = sse_parts(response.text)[-1]
        assert last == {"type": "error", "errorText": "Anthropic API error: overloaded (529)"}
    assert [m["role"] for m in sim.chats[chat["id"]].messages] == ["user"]


async def test_ai_sdk_rejects_unknown_models_and_malformed_bodies(make_sim: MakeSim) -> None:
    """Unknown model and undecodable bodies are JSON 400s sent before any stream, storing nothing."""
    sim = await make_sim(generation="ai-sdk", models=["fake-model", AI_MODEL])
    async with http(sim) as alice:
        chat = await ai_chat(alice)
        url = f"{V2}/{chat['id']}/messages"
        unknown = await ai_send(alice, chat["id"], "hi", model="gpt-nope")
        assert (unknown.status_code, unknown.json()) == (400, {"message": "Model not found"})
        malformed = await alice.post(url, content=b"{malformed json}")
        assert malformed.status_code == 400
        assert malformed.json()["message"] == "Failed to decode chat message"
        assert malformed.json()["detail"]
        typed = await alice.post(url, json={"model": 5, "message": {}})
        assert typed.json() == {
            "message": "Failed to decode chat message",
            "detail": "json: cannot unmarshal number into Go struct field CreateChatMessageRequest.model "
            "of type string",
        }
        assert (await alice.post(url, json={"model": "fake-model", "message": "hi"})).status_code == 400
        assert (await alice.get(url)).json() == []
        assert (await alice.get(f"{V2}/{chat['id']}")).json()["title"] == "New Chat"


async def test_ai_sdk_closing_the_response_cancels_the_reply(make_sim: MakeSim) -> None:
    """A client that leaves mid-step stops the script; only fully streamed steps stay stored."""
    gate = asyncio.Event()
    sim = await make_sim(generation="ai-sdk")
    sim.agent = lambda prompt: [*workspace_lookup(prompt)[:2], Text("held"), Gate(gate), Text("never")]
    async with http(sim) as alice:
        chat = await ai_chat(alice)
        body = {"model": AI_MODEL, "message": ai_message("go"), "thinking": False}
        async with alice.stream("POST", f"{V2}/{chat['id']}/messages", json=body) as response:
            lines = []
            async for line in response.aiter_lines():
                lines.append(line)
                if line == '0:"held"':
                    break
        await sim.wait_for(lambda: sim.active_streams(chat["id"]) == 0)
    assert not gate.is_set()
    stored = sim.chats[chat["id"]].messages
    assert [m["role"] for m in stored] == ["user", "assistant"]
    assert stored[1]["parts"][-1]["toolInvocation"]["state"] == "result"
    assert "never" not in json.dumps(stored)


async def test_ai_sdk_second_post_runs_concurrently(make_sim: MakeSim) -> None:
    """No lock per chat, as in coderd: a second POST streams while the first is held; both store."""
    gate = asyncio.Event()
    sim = await make_sim(generation="ai-sdk", agent=gated(gate, Text("first done")))
    async with http(sim) as alice:
        chat = await ai_chat(alice)
        body = {"model": AI_MODEL, "message": ai_message("first"), "thinking": False}
        async with alice.stream("POST", f"{V2}/{chat['id']}/messages", json=body) as first:
            lines = first.aiter_lines()
            assert [await anext(lines), await anext(lines)][1] == '0:"held"'
            assert sim.active_streams(chat["id"]) == 1
            second = await ai_send(alice, chat["id"], "/echo second")
            assert [v for t, v in v1_parts(second.text) if t == "0"] == ["Echo: ", "/echo ", "second"]
            gate.set()
            rest = [line async for line in lines]
        assert rest[-1].startswith("d:")
    contents = [m["content"] for m in sim.chats[chat["id"]].messages]
    assert contents == ["first", "/echo second", "Echo: /echo second", "heldfirst done"]


async def test_ai_sdk_lacks_the_chatd_routes(make_sim: MakeSim) -> None:
    """Queue, interrupt, stream, watch, files and the experimental prefix are not part of G0a."""
    sim = await make_sim(generation="ai-sdk")
    async with http(sim) as alice:
        chat_id = (await ai_chat(alice))["id"]
        route_not_found = (404, {"message": "Route not found."})
        for method, path in [
            ("GET", BASE),
            ("GET", f"{BASE}/models"),
            ("POST", f"{V2}/{chat_id}/interrupt"),
            ("GET", f"{V2}/{chat_id}/stream"),
            ("GET", f"{V2}/{chat_id}/diff"),
            ("DELETE", f"{V2}/{chat_id}/queue/1"),
            ("PATCH", f"{V2}/{chat_id}/messages/1"),
            ("GET", f"{V2}/files/{chat_id}"),
            ("GET", f"/api/v2/organizations/{sim.organization_id}/chats/models"),
        ]:
            response = await alice.request(method, path)
            assert (response.status_code, response.json()) == route_not_found, path
        # A known path with another method is chi's 405, as PATCH (archive) on a chat is here.
        assert (await alice.patch(f"{V2}/{chat_id}", json={"archived": True})).status_code == 405


async def test_ai_sdk_fault_knobs_and_recording(make_sim: MakeSim) -> None:
    """fail_next, set_unavailable and requests work on the G0a routes like on the others."""
    sim = await make_sim(generation="ai-sdk", agent=scenarios.echo)
    async with http(sim) as alice:
        chat = await ai_chat(alice)
        sim.fail_next("POST", r"/messages$", 503, "Try again later.")
        failed = await ai_send(alice, chat["id"], "hi")
        assert (failed.status_code, failed.json()) == (503, {"message": "Try again later."})
        sim.set_unavailable(True)
        assert (await alice.get(V2)).status_code == 500
        sim.set_unavailable(False)
        assert (await ai_send(alice, chat["id"], "hi")).status_code == 200
    last = sim.requests[-1]
    assert (last.method, last.path, last.json["message"]["content"]) == (
        "POST",
        f"{V2}/{chat['id']}/messages",
        "hi",
    )
    assert [m["content"] for m in sim.chats[chat["id"]].messages] == ["hi", "Echo: hi"]


async def test_v2_plan_mode_is_set_on_create_and_cleared_with_a_message(make_sim: MakeSim) -> None:
    """``plan_mode`` "plan" on create is the chat's until a message (or a PATCH) sends ""; an unknown
    value is a 400; a plan the agent proposes is a chat file its owner can read."""
    plan = "# Plan\n\n1. Fix it\n"
    sim = await make_sim(generation="v2", agent=lambda prompt: [ProposePlan(plan)])
    async with http(sim) as alice:
        body = {"content": [{"type": "text", "text": "plan it"}], "organization_id": sim.organization_id}
        created = (await alice.post(V2, json={**body, "plan_mode": "plan"})).json()
        assert created["plan_mode"] == "plan"
        chat = sim.chats[created["id"]]
        await sim.wait_for(lambda: chat.status == "waiting")
        result = chat.messages[-1]["content"][0]
        assert (result["tool_name"], result["result"]["kind"]) == ("propose_plan", "plan")
        file = await alice.get(f"{V2}/files/{result['result']['file_id']}")
        assert file.text == plan
        bad = await alice.post(f"{V2}/{chat.id}/messages", json={**body, "plan_mode": "act"})
        assert bad.status_code == 400
        go = {"content": [{"type": "text", "text": "Implement the plan."}], "plan_mode": ""}
        assert (await alice.post(f"{V2}/{chat.id}/messages", json=go)).status_code == 200
        assert "plan_mode" not in (await alice.get(f"{V2}/{chat.id}")).json()
        assert (await alice.patch(f"{V2}/{chat.id}", json={"plan_mode": "plan"})).status_code == 204
        assert (await alice.get(f"{V2}/{chat.id}")).json()["plan_mode"] == "plan"
