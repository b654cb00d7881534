"""End to end: native streaming and Slack Agent Sessions, and their fallbacks where Slack refuses them."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import pytest

from bridge.relay.renames import KEPT_IN_SLACK
from bridge.sim.coder import CoderSim
from bridge.sim.coder_agent import Gate, Text, ToolCall
from bridge.sim.slack import ApiCall, SlackSim
from bridge.sim.slack_state import AgentSession, SimMessage
from bridge.slack.blocks import is_card
from bridge.slack.scopes import REQUIRED_EVENTS
from tests.integration.conftest import (
    CODER_TOKEN,
    SIGNING_SECRET,
    World,
    make_settings,
    message_parts,
)
from tests.slack_text import rejoin

LONG = "Here is the plan. " * 40


@pytest.fixture
async def agent_world(database_url: str, generation: str) -> AsyncIterator[World]:
    """Like ``world``, with the app subscribed to the Agent Session events, as manifest.yml asks."""
    async with (
        CoderSim(tokens={CODER_TOKEN: "alice"}, part_interval=0.002, generation=generation) as coder,  # type: ignore[arg-type]
        SlackSim(
            signing_secret=SIGNING_SECRET,
            time_scale=0.05,
            subscriptions=REQUIRED_EVENTS,
        ) as slack,
    ):
        world = World(slack=slack, coder=coder, settings=make_settings(slack, coder, database_url))
        try:
            yield world
        finally:
            await world.stop_bridge()


def _session(world: World, root: str) -> object:
    return world.slack.agent_sessions.get((world.slack.general, root))


def _header(world: World, root: str) -> str:
    """The thread's header: the bot's first message, naming the chat by its title."""
    return world.bot_texts(root)[0]


def _told(world: World, user: str, words: str) -> list[str]:
    """What ``user`` was told privately that contains ``words``."""
    texts = [e.markdown_text or e.text for e in world.slack.ephemerals(user)]
    return [t for t in texts if words in t]


async def _idle_session(world: World, task: str) -> tuple[str, AgentSession]:
    """A thread whose chat finished its first turn, and its Agent Session (active again)."""
    world.coder.agent = lambda prompt: [Text(f"Echo: {prompt}")]
    root = await world.mention(task)
    await world.until_idle_and_shown(root)
    await world.until(lambda: getattr(_session(world, root), "status", None) == "active")
    return root, world.slack.agent_sessions[(world.slack.general, root)]


def _streaming(world: World, root: str) -> bool:
    return any(m.streaming for m in world.bot_messages(root))


def _plans(world: World, root: str) -> list[SimMessage]:
    """The thread's status cards streamed as plans (messages showing task or plan chunks)."""
    return [m for m in world.bot_messages(root) if m.chunks]


def _tasks(message: SimMessage) -> list[tuple[str, str, str]]:
    """A streamed card's tasks as Slack shows them: (id, title, status), in the order first shown."""
    return [(c["id"], c["title"], c["status"]) for c in message.chunks if c["type"] == "task_update"]


def _plan_title(message: SimMessage) -> str | None:
    return next((c["title"] for c in message.chunks if c["type"] == "plan_update"), None)


def _tool_call_ids(world: World, root: str) -> list[str]:
    """Coder's ids of the chat's tool calls, in order (a call part, or the AI-SDK API's invocation)."""
    chat = world.chat_of(root)
    parts = [p for m in chat.messages for p in message_parts(m)]
    ids = [p.get("tool_call_id") or (p.get("toolInvocation") or {}).get("toolCallId") for p in parts]
    return list(dict.fromkeys(i for i in ids if i))


def _card_streams(world: World) -> list[ApiCall]:
    """The calls that started card streams (they set a task display mode), but those answered 429."""
    calls = world.slack.calls_to("chat.startStream")
    return [c for c in calls if "task_display_mode" in c.params and c.status != 429]


def _reply_streams(world: World) -> int:
    """How many reply streams Slack started (card streams set a task display mode)."""
    calls = world.slack.calls_to("chat.startStream")
    return len([c for c in calls if c.ok and "task_display_mode" not in c.params])


async def test_native_streaming_streams_each_reply_and_ends_it(agent_world: World) -> None:
    """Replies go out with startStream/appendStream/stopStream, end as the agent's exact text, unedited."""
    world = agent_world
    await world.start_bridge(native_streaming=True)
    world.coder.agent = lambda prompt: [
        Text(LONG),
        ToolCall("read_file", {"path": "src/auth.ts"}, "ok"),
        Text("All **done**:\n\n```py\nprint('hi')\n```\n\n" + LONG),
    ]
    root = await world.mention("fix the login bug")
    await world.until_idle_and_shown(root)
    await world.until(lambda: not _streaming(world, root))
    chat = world.chat_of(root)
    assert world.replies(root) == world.shown_replies(chat)
    replies = [m for m in world.bot_messages(root) if m.visible_text in world.shown_replies(chat)]
    assert all(not m.edited for m in replies), "streamed, never replaced with chat.update"
    assert _reply_streams(world) == len(replies)
    cards = len(_plans(world, root))  # the card streams too, unless the turn was over before it showed
    assert len([c for c in world.slack.calls_to("chat.stopStream") if c.ok]) == len(replies) + cards
    assert world.slack.calls_to("chat.appendStream"), "the long reply grew in more than one call"
    assert all(m.metadata for m in replies), "tagged when stopped, so a restart finds them"


async def test_a_streamed_table_over_the_limit_goes_on_under_its_header(agent_world: World) -> None:
    """Streamed natively, a table is Markdown text and counts whole: a reply over 12,000 characters
    is cut between its rows, and the next message starts with its header and delimiter rows."""
    world = agent_world
    await world.start_bridge(native_streaming=True)
    rows = [("service", "status")] + [(f"service-{i:03}", "healthy") for i in range(99)]
    lines = ["| " + " | ".join(cell.ljust(56) for cell in row) + " |" for row in rows]
    head = f"{lines[0]}\n|{'-' * 58}|{'-' * 58}|\n"
    text = "Every service:\n\n" + head + "\n".join(lines[1:])
    world.coder.agent = lambda prompt: [Text(text)]
    root = await world.mention("list them")

    def parts() -> list[str]:  # as sent: a table block reads back in normal form
        texts = [m.visible_text for m in world.bot_messages(root)]
        return [t for t in texts if t.startswith(("Every service", head))]

    await world.until(lambda: rejoin(parts()) == text and not _streaming(world, root), timeout=30)
    assert len(parts()) == 2
    assert all(len(part) <= 12_000 for part in parts())
    assert parts()[1].startswith(head + "| service-")


async def test_tool_calls_stream_as_the_tasks_of_the_turns_plan(agent_world: World) -> None:
    """Each tool call is a task of the card's plan, by Coder's call id, ending complete or error; the
    plan ends with the card's first line, no text card is posted beside it, and replies stay exact."""
    world = agent_world
    await world.start_bridge(native_streaming=True)
    gate = asyncio.Event()
    world.coder.agent = lambda prompt: [
        Text("Looking into it."),
        ToolCall("read_file", {"path": "src/auth.ts"}, "export function login() {}"),
        ToolCall("execute", {"command": "npm test"}, "2 failing", is_error=True),
        ToolCall("edit_file", {"path": "src/auth.ts", "content": "fixed"}, "ok"),
        Gate(gate),
        Text("Fixed the **login**."),
    ]
    root = await world.mention("fix the login bug")
    await world.until(lambda: any(len(_tasks(m)) == 3 for m in _plans(world, root)))
    gate.set()
    await world.until_idle_and_shown(root)
    await world.until(lambda: not _streaming(world, root))
    [card] = _plans(world, root)
    ids = _tool_call_ids(world, root)
    assert _tasks(card) == [
        (ids[0], "read_file src/auth.ts", "complete"),
        (ids[1], "execute npm test", "error"),
        (ids[2], "edit_file src/auth.ts", "complete"),
    ]
    assert _plan_title(card) == "Done"
    assert card.visible_text == "✅ Done · 3 tools · touched `auth.ts`"
    assert world.cards(root) == [card.visible_text], "the plan is the card: no text card beside it"
    assert world.replies(root) == world.shown_replies(world.chat_of(root))
    assert [c.params["task_display_mode"] for c in _card_streams(world)] == ["plan"]
    assert card.metadata is not None, "tagged when stopped, like any post"
    assert not [c for c in world.slack.calls_to("chat.update") if c.params["ts"] == card.ts], "never edited"


async def test_workspace_refusing_task_chunks_posts_cards_as_text_once(
    agent_world: World, caplog: pytest.LogCaptureFixture
) -> None:
    """A Slack that streams text but refuses task chunks: one WARNING, cards as text from then on (in
    every thread), replies still streamed, nothing lost."""
    world = agent_world
    world.slack.chunk_types.difference_update({"task_update", "plan_update"})
    # Full style: a reply after a tool call streams natively (compact posts a turn's answer whole).
    await world.start_bridge(native_streaming=True, thread_style="full")
    gates = {"first": asyncio.Event(), "second": asyncio.Event()}
    world.coder.agent = lambda prompt: [
        ToolCall("execute", {"command": f"make {prompt}"}, "ok"),
        Gate(gates[prompt]),
        Text(f"{LONG}Made {prompt}."),
    ]
    roots: list[str] = []
    with caplog.at_level(logging.WARNING, logger="bridge.slack.streaming"):
        for prompt, gate in gates.items():
            root = await world.mention(prompt)
            roots.append(root)
            await world.until(lambda: any(t.startswith("⏳ Working") for t in world.cards(root)))  # noqa: B023
            gate.set()
            await world.until_idle_and_shown(root)
    for root, prompt in zip(roots, gates, strict=True):
        await world.until(lambda: not _streaming(world, root))  # noqa: B023
        assert world.cards(root) == [f"✅ Done · 1 tool\n- ✓ execute `make {prompt}`"]
        assert not _plans(world, root)
        assert world.replies(root) == [f"{LONG}Made {prompt}."]
    assert _reply_streams(world) == 2, "replies still stream"
    assert [c.error for c in _card_streams(world)] == ["invalid_chunks"], "refused once, never tried again"
    assert len([r for r in caplog.records if "task chunks" in r.message]) == 1


async def test_restart_mid_turn_keeps_one_card_and_the_reply(agent_world: World) -> None:
    """A restart while the card streams: the card goes on in place as text, with every tool once, and
    the reply is neither lost nor doubled."""
    world = agent_world
    await world.start_bridge(native_streaming=True, thread_style="full")  # the reply streams beside the card
    gate = asyncio.Event()
    world.coder.agent = lambda prompt: [
        ToolCall("read_file", {"path": "src/a.py"}, "ok"),
        Text("Half of the answer, "),
        Gate(gate),
        ToolCall("execute", {"command": "make"}, "ok"),
        Text("and the rest."),
    ]
    root = await world.mention("go")
    await world.until(
        lambda: (
            any(_tasks(m) and _tasks(m)[0][2] == "complete" for m in _plans(world, root))
            and "Half of the answer, " in world.bot_texts(root)
        )
    )
    await world.stop_bridge()
    gate.set()
    await world.until(lambda: world.chat_of(root).status == "waiting")
    await world.start_bridge(native_streaming=True)
    if not world.capabilities.replies_outlive_connection:
        # The stop closed the request the reply was the answer to: the thread keeps what came and says so.
        await world.until(lambda: any("The bridge restarted while" in t for t in world.bot_texts(root)))
        # The card streams as a plan, a message without text, and may come before or after the reply.
        assert next(t for t in world.replies(root) if t) == "Half of the answer, "
        return
    await world.until_idle_and_shown(root)
    await world.until(lambda: world.cards(root) and world.cards(root)[-1].startswith("✅"))
    assert world.replies(root) == world.shown_replies(world.chat_of(root))
    assert world.cards(root) == [
        "✅ Done · 2 tools · touched `a.py`\n- ✓ read_file `src/a.py`\n- ✓ execute `make`"
    ]
    assert not _plans(world, root), "the card, edited in place, shows its text alone"
    assert len([m for m in world.bot_messages(root) if is_card(m.visible_text)]) == 1


async def test_workspace_without_streaming_falls_back_once(
    agent_world: World, caplog: pytest.LogCaptureFixture
) -> None:
    """Where Slack has no streaming methods, the bridge says so once and edits in place from then on."""
    world = agent_world
    world.slack.unknown_methods.add("chat.startStream")
    await world.start_bridge(native_streaming=True)
    world.coder.agent = lambda prompt: [Text(f"{LONG}Echo: {prompt}")]
    with caplog.at_level(logging.WARNING, logger="bridge.slack.streaming"):
        root = await world.mention("first")
        await world.until_idle_and_shown(root)
        await world.reply(root, "second")
        await world.until_idle_and_shown(root, turns=2)
    assert world.replies(root) == [f"{LONG}Echo: first", f"{LONG}Echo: second"]
    assert len(world.slack.calls_to("chat.startStream")) == 1, "refused once, never tried again"
    assert len([r for r in caplog.records if "refused native streaming" in r.message]) == 1


async def test_session_follows_the_chat_status_and_title(agent_world: World) -> None:
    """The thread's session is processing while the agent works, active after, titled like the chat."""
    world = agent_world
    await world.start_bridge()
    gate = asyncio.Event()
    world.coder.agent = lambda prompt: [Text("Working, "), Gate(gate), Text("done.")]
    root = await world.mention("fix the login bug")
    await world.until(lambda: getattr(_session(world, root), "status", None) == "processing")
    session = world.slack.agent_sessions[(world.slack.general, root)]
    # Where chats carry no labels the chat is found by the header's link: posted a moment later.
    await world.until(lambda: world.chat_of(root) is not None)
    chat = world.chat_of(root)
    assert (session.title, session.initiator_user_id) == (chat.title, world.slack.alice)
    gate.set()
    await world.until_idle_and_shown(root)
    await world.until(lambda: session.status == "active")
    assert session.history[0] == "processing"
    assert "processing" not in session.history[session.history.index("active") :]
    if world.capabilities.watch:
        world.coder.set_title(chat.id, "Login bug: token expiry")
        await world.until(lambda: session.title == "Login bug: token expiry")


async def test_slack_stop_button_interrupts_the_agent(agent_world: World) -> None:
    """Stop on the session interrupts the chat like 🛑; a stream Slack stopped is finished in place."""
    world = agent_world
    await world.start_bridge(native_streaming=True)
    gate = asyncio.Event()
    world.coder.agent = lambda prompt: [Text("Working, "), Gate(gate), Text("never reached.")]
    root = await world.mention("long job")
    await world.until(
        lambda: (
            getattr(_session(world, root), "status", None) == "processing"
            and "Working, " in world.bot_texts(root)
        )
    )
    await world.slack.stop_session(world.slack.alice, world.slack.general, root)
    await world.until(lambda: world.chat_of(root).status == "waiting")
    await world.until(lambda: any("Stopped the agent" in t for t in world.bot_texts(root)))
    session = world.slack.agent_sessions[(world.slack.general, root)]
    await world.until(lambda: session.status == "active")
    assert "Working, " in world.bot_texts(root), "what the agent had written stays"
    assert not _streaming(world, root)


@pytest.mark.parametrize("refusal", ["not_declared", "older_workspace"])
async def test_sessions_refused_fall_back_once(
    agent_world: World, refusal: str, caplog: pytest.LogCaptureFixture
) -> None:
    """An app not declared an agent, or a workspace without sessions: one try, one log line, no noise."""
    world = agent_world
    if refusal == "not_declared":
        world.slack.agent_declared = False
    else:
        world.slack.unknown_methods.add("agents.sessions.setStatus")
    await world.start_bridge()
    world.coder.agent = lambda prompt: [Text(f"Echo: {prompt}")]
    with caplog.at_level(logging.INFO, logger="bridge.relay.sessions"):
        root = await world.mention("first")
        await world.until_idle_and_shown(root)
        await world.reply(root, "second")
        await world.until_idle_and_shown(root, turns=2)
    assert world.replies(root) == ["Echo: first", "Echo: second"]
    assert len(world.slack.calls_to("agents.sessions.setStatus")) == 1
    assert not world.slack.agent_sessions
    lines = [r for r in caplog.records if r.name == "bridge.relay.sessions"]
    assert len(lines) == 1
    assert lines[0].levelno == logging.INFO


async def test_sessions_off_makes_no_session_calls(agent_world: World) -> None:
    """BRIDGE_AGENT_SESSIONS=off: the thread works as before and Slack hears nothing of sessions."""
    world = agent_world
    await world.start_bridge(agent_sessions="off")
    world.coder.agent = lambda prompt: [Text(f"Echo: {prompt}")]
    root = await world.mention("first")
    await world.until_idle_and_shown(root)
    assert world.replies(root) == ["Echo: first"]
    assert not world.slack.calls_to("agents.sessions.setStatus")


async def test_slack_rename_renames_the_chat_in_coder(agent_world: World) -> None:
    """A person's new session title renames the chat in Coder and the header; nothing is sent back."""
    world = agent_world
    await world.start_bridge()
    world.require("rename", "coder")
    root, session = await _idle_session(world, "fix the login bug")
    renames = len(world.slack.calls_to("agents.sessions.rename"))
    await world.slack.rename_session(world.slack.alice, world.slack.general, root, "Auth test fix")
    chat = world.chat_of(root)
    await world.until(lambda: chat.title == "Auth test fix" and "[Auth test fix]" in _header(world, root))
    await world.reply(root, "and add a test")  # Coder's title_change is handled before this turn's end
    await world.until_idle_and_shown(root, turns=2)
    await world.until(lambda: session.status == "active")
    assert session.title == "Auth test fix"
    assert "[Auth test fix]" in _header(world, root)
    assert len(world.slack.calls_to("agents.sessions.rename")) == renames, "Slack has the title already"
    assert not world.slack.ephemerals(world.slack.alice)


async def test_where_coder_keeps_its_title_the_thread_keeps_the_persons(agent_world: World) -> None:
    """Where Coder can't rename (G0a; G1 builds that ignore a title), header and session keep the
    person's title, Coder renaming the chat later doesn't change that, and they are told once."""
    world = agent_world
    await world.start_bridge()
    if world.capabilities.rename == "coder":
        pytest.skip("this Coder generation renames chats")
    root, session = await _idle_session(world, "fix the login bug")
    chat = world.chat_of(root)
    coders = chat.title
    alice, general = world.slack.alice, world.slack.general
    await world.slack.rename_session(alice, general, root, "Auth test fix")
    note = KEPT_IN_SLACK.format(title="Auth test fix")
    await world.until(lambda: "[Auth test fix]" in _header(world, root) and bool(_told(world, alice, note)))
    assert chat.title == coders
    await world.slack.rename_session(alice, general, root, "Auth fix")
    await world.until(lambda: "[Auth fix]" in _header(world, root))
    if world.capabilities.watch:
        world.coder.set_title(chat.id, "Login bug: token expiry")
    await world.reply(root, "and add a test")  # the watch's title_change is handled before this turn's end
    await world.until_idle_and_shown(root, turns=2)
    await world.until(lambda: session.status == "active")
    assert "[Auth fix]" in _header(world, root)
    assert session.title == "Auth fix"
    assert len(_told(world, alice, "Coder keeps its own title")) == 1
    assert world.chat_of(root).title != "Auth fix"


async def test_a_title_kept_in_slack_outlives_a_restart(agent_world: World) -> None:
    """The person's title is stored with the thread: after a restart, a title Coder gave the chat while
    the bridge was away does not replace it."""
    world = agent_world
    await world.start_bridge()
    if world.capabilities.rename == "coder":
        pytest.skip("this Coder generation renames chats")
    root, session = await _idle_session(world, "fix the login bug")
    await world.slack.rename_session(world.slack.alice, world.slack.general, root, "Auth test fix")
    await world.until(lambda: "[Auth test fix]" in _header(world, root))
    await world.stop_bridge()
    if world.capabilities.watch:
        world.coder.set_title(world.chat_of(root).id, "Login bug: token expiry")
    await world.start_bridge()
    await world.until_settled()  # the watch's catch-up compares every chat's title with the thread's
    await world.reply(root, "and add a test")
    await world.until_idle_and_shown(root, turns=2)
    await world.until(lambda: session.status == "active")
    assert "[Auth test fix]" in _header(world, root)
    assert session.title == "Auth test fix"


async def test_the_bridges_own_title_coming_back_changes_nothing(agent_world: World) -> None:
    """A title change Slack reports for a title the bridge set (from the app, or the same title
    again) renames nothing in Coder and says nothing; the person's next rename is handled as usual."""
    world = agent_world
    await world.start_bridge()
    root, session = await _idle_session(world, "fix the login bug")
    if world.capabilities.watch:
        world.coder.set_title(world.chat_of(root).id, "Login bug: token expiry")
        await world.until(lambda: session.title == "Login bug: token expiry")
    renames = len(world.slack.calls_to("agents.sessions.rename"))
    general = world.slack.general
    await world.slack.rename_session(world.slack.bot_user_id, general, root, session.title or "")
    await world.slack.rename_session(world.slack.alice, general, root, session.title or "")
    await world.slack.rename_session(world.slack.alice, general, root, "Auth test fix")  # handled in order
    await world.until(lambda: "[Auth test fix]" in _header(world, root))
    patches = [r.json for r in world.coder.requests if r.method == "PATCH"]
    assert patches == ([] if world.capabilities.rename == "bridge" else [{"title": "Auth test fix"}])
    assert len(world.slack.calls_to("agents.sessions.rename")) == renames
    notes = 0 if world.capabilities.rename == "coder" else 1
    assert len(world.slack.ephemerals(world.slack.alice)) == notes


async def test_someone_the_policy_refuses_cannot_rename(agent_world: World) -> None:
    """Only the requester and admins rename (as for every control): anyone else is told privately,
    the chat keeps its title in Coder and the session gets its title back."""
    world = agent_world
    await world.start_bridge()
    root, session = await _idle_session(world, "fix the login bug")
    chat = world.chat_of(root)
    before, coders = session.title, chat.title
    bob = world.slack.bob
    await world.slack.rename_session(bob, world.slack.general, root, "Bobs title")
    await world.until(lambda: bool(_told(world, bob, "who started this chat")) and session.title == before)
    assert not [r for r in world.coder.requests if r.method == "PATCH"]
    assert chat.title == coders
    assert "Bobs title" not in _header(world, root)
