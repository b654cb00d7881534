"""End to end: native streaming and Slack Agent Sessions, and their fallbacks where Slack refuses them."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import pytest

from bridge.sim.coder import CoderSim
from bridge.sim.coder_agent import Gate, Text, ToolCall
from bridge.sim.slack import DEFAULT_SUBSCRIPTIONS, SlackSim
from tests.integration.conftest import CODER_TOKEN, SIGNING_SECRET, World, assistant_texts, make_settings

LONG = "Here is the plan. " * 40


@pytest.fixture
async def agent_world(database_url: str, generation: str) -> AsyncIterator[World]:
    """Like ``world``, with the app subscribed to ``agent_session_stopped`` as manifest.yml asks."""
    async with (
        CoderSim(tokens={CODER_TOKEN: "alice"}, part_interval=0.002, generation=generation) as coder,  # type: ignore[arg-type]
        SlackSim(
            signing_secret=SIGNING_SECRET,
            time_scale=0.05,
            subscriptions=DEFAULT_SUBSCRIPTIONS | {"agent_session_stopped"},
        ) as slack,
    ):
        world = World(slack=slack, coder=coder, settings=make_settings(slack, coder, database_url))
        try:
            yield world
        finally:
            await world.stop_bridge()


def _session(world: World, root: str) -> object:
    return world.slack.agent_sessions.get((world.slack.general, root))


def _streaming(world: World, root: str) -> bool:
    return any(m.streaming for m in world.bot_messages(root))


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
    assert world.replies(root) == assistant_texts(chat)
    replies = [m for m in world.bot_messages(root) if m.visible_text in assistant_texts(chat)]
    assert all(not m.edited for m in replies), "streamed, never replaced with chat.update"
    assert len(world.slack.calls_to("chat.startStream")) == len(replies)
    assert len(world.slack.calls_to("chat.stopStream")) == len(replies)
    assert world.slack.calls_to("chat.appendStream"), "the long reply grew in more than one call"
    assert all(m.metadata for m in replies), "tagged when stopped, so a restart finds them"


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
