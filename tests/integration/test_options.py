"""Options at the start of a task (model=, workspace=, mcp=) and `!now` replies, end to end."""

from __future__ import annotations

import asyncio

import pytest

from bridge.sim.coder_agent import Gate, Text
from tests.integration.conftest import World, user_texts


def _whispered(world: World, user: str, needle: str) -> bool:
    return any(needle in e.markdown_text for e in world.slack.ephemerals(user))


async def test_options_pick_the_model_workspace_and_mcp_servers(world: World) -> None:
    """`model=`, `workspace=` and `mcp=` by name reach Coder as ids, and leave the prompt."""
    world.require("options", frozenset({"model", "workspace", "mcp"}))
    catalog = world.coder.catalog
    alice = world.coder.users["alice"]
    workspace = catalog.add_workspace(alice.id, "alice", "dev-box")
    github, linear = catalog.add_mcp_server("github", "GitHub"), catalog.add_mcp_server("linear")
    gpt = next(m for m in catalog.models if m.model == "gpt-5")
    root = await world.mention("model=GPT-5 workspace=dev-box mcp=github,Linear fix the login bug")
    await world.until(lambda: world.chat_of(root) is not None)
    chat = world.chat_of(root)
    assert (chat.model_config_id, chat.workspace_id) == (gpt.id, workspace)
    assert chat.mcp_server_ids == [github, linear]
    assert user_texts(chat)[0] == "fix the login bug"


async def test_unknown_model_is_answered_privately_and_starts_nothing(world: World) -> None:
    """An unknown model gets a private answer listing the valid ones; no chat, no thread."""
    world.require("options", frozenset({"model", "workspace", "mcp"}))
    root = await world.mention("model=gpt-9 fix the login bug")
    await world.until(lambda: _whispered(world, world.slack.alice, "no model `gpt-9`"))
    answer = world.slack.ephemerals(world.slack.alice)[-1].markdown_text
    assert "`Claude Sonnet 4`" in answer
    assert "`GPT-5`" in answer
    assert "`o1`" not in answer, "a disabled model is not offered"
    assert world.chat_of(root) is None
    assert not world.coder.chats
    assert world.bot_texts(root) == []


async def test_options_coder_cannot_use_now_are_refused_with_its_reason(world: World) -> None:
    """The newest Coder lists a disabled MCP server and a model whose provider has no API key: asking
    for either is answered privately with the reason and the usable ones, and starts nothing."""
    if not world.coder.dialect.late:
        pytest.skip("only the newest builds list disabled MCP servers and unavailable providers")
    world.coder.catalog.add_mcp_server("github", "GitHub")
    await world.mention("mcp=jira fix the login bug")
    refused_mcp = "Coder can't use the mcp `jira` now: an administrator disabled it in Coder"
    await world.until(lambda: _whispered(world, world.slack.alice, refused_mcp))
    assert "Valid: `github`." in world.slack.ephemerals(world.slack.alice)[-1].markdown_text
    await world.mention("model=gemini-2.5-pro fix the login bug")
    refused_model = "Coder can't use the model `Gemini 2.5 Pro` now: its provider has no API key set in Coder"
    await world.until(lambda: _whispered(world, world.slack.alice, refused_model))
    answer = world.slack.ephemerals(world.slack.alice)[-1].markdown_text
    assert "`Claude Sonnet 4`" in answer
    assert "`Gemini 2.5 Pro`" not in answer.split("Valid:")[1]
    assert not world.coder.chats


async def test_malformed_or_unknown_options_start_nothing(world: World) -> None:
    """`colour=`, an empty value, or an option given twice: a private note on how to write them."""
    for text, needle in (
        ("colour=red fix it", "`colour=` is not an option"),
        ("model= fix it", "`model=` needs a value"),
        ("mcp=a,,b fix it", "`mcp=` needs a value"),
        ("model=a model=b fix it", "`model=` is given twice"),
    ):
        await world.mention(text)
        await world.until(lambda needle=needle: _whispered(world, world.slack.alice, needle))
    assert not world.coder.chats


async def test_unknown_workspace_lists_the_callers_workspaces(world: World) -> None:
    """A workspace name Coder does not list is answered with the person's own workspaces."""
    world.require("options", frozenset({"model", "workspace", "mcp"}))
    world.coder.catalog.add_workspace(world.coder.users["alice"].id, "alice", "dev-box")
    await world.mention("workspace=prod fix it")
    await world.until(lambda: _whispered(world, world.slack.alice, "no workspace `prod`. Valid: `dev-box`"))
    assert not world.coder.chats


async def test_a_coder_without_options_says_so(world: World) -> None:
    """The 2025 AI-SDK API takes no per-chat options: a clear private answer and no chat."""
    world.require("options", frozenset())
    await world.mention("model=gpt-5 fix it")
    await world.until(lambda: _whispered(world, world.slack.alice, "cannot set `model=`"))
    assert not world.coder.chats


async def _busy(world: World) -> tuple[str, asyncio.Event]:
    gate = asyncio.Event()
    world.coder.agent = lambda prompt: (
        [Text("Working, "), Gate(gate), Text("never reached.")]
        if prompt == "long job"
        else [Text(f"On it: {prompt}")]
    )
    root = await world.mention("long job")
    await world.until(lambda: "Working, " in world.bot_texts(root))
    return root, gate


async def test_now_stops_the_agent_and_sends_the_message_next(world: World) -> None:
    """`!now …` interrupts the running turn; the agent answers that message next; the thread says so."""
    root, _ = await _busy(world)
    await world.reply(root, "!now use the v2 API instead")
    await world.until(lambda: "On it: use the v2 API instead" in world.bot_texts(root))
    assert any("Stopped the agent at" in t for t in world.bot_texts(root))
    assert user_texts(world.chat_of(root))[-1] == "use the v2 API instead"
    assert await world.queued(root) == 0


async def test_now_with_nothing_running_is_a_normal_reply(world: World) -> None:
    """`!now` while the agent is idle just sends the message, and the thread says nothing was running."""
    world.coder.agent = lambda prompt: [Text(f"On it: {prompt}")]
    root = await world.mention("hello")
    await world.until_idle_and_shown(root)
    await world.reply(root, "!now and this")
    await world.until(lambda: "On it: and this" in world.bot_texts(root))
    await world.until(lambda: any("Nothing was running" in t for t in world.bot_texts(root)))


async def test_now_without_a_message_is_answered_privately(world: World) -> None:
    """A bare `!now` sends nothing and tells its author what to write."""
    root, gate = await _busy(world)
    await world.reply(root, "!now")
    await world.until(lambda: _whispered(world, world.slack.alice, "Write the message after `!now`"))
    assert world.chat_of(root).status == "running"
    gate.set()


async def test_send_now_shortcut_on_a_queued_follow_up(world: World) -> None:
    """“Stop and send this instead” on a queued reply stops the agent and the reply goes next."""
    world.require("queue", "coder")
    root, _ = await _busy(world)
    queued = await world.reply(root, "actually, do the docs")
    await world.until(lambda: any("Queued" in t for t in world.bot_texts(root)))
    response = await world.slack.shortcut(world.slack.alice, world.slack.general, queued, "send_now")
    assert response.status == 200
    await world.until(lambda: "On it: actually, do the docs" in world.bot_texts(root))
    assert any("stopped the agent" in t for t in world.bot_texts(root))


async def test_send_now_shortcut_refusals(world: World) -> None:
    """On a message that is not queued, or by someone who may not control the chat: a private note."""
    root, gate = await _busy(world)
    await world.slack.shortcut(world.slack.alice, world.slack.general, root, "send_now")
    await world.until(
        lambda: _whispered(world, world.slack.alice, "works on a reply the agent has not taken")
    )
    queued = await world.reply(root, "later please")
    await world.until(lambda: any("Queued" in t for t in world.bot_texts(root)))
    await world.slack.shortcut(world.slack.bob, world.slack.general, queued, "send_now")
    await world.until(lambda: _whispered(world, world.slack.bob, "Only <@"))
    assert world.chat_of(root).status == "running"
    gate.set()
