"""Reaction controls end to end: interrupt, archive and unarchive; refused and ignored reactions."""

from __future__ import annotations

import asyncio
from pathlib import Path

from bridge.sim.coder import CoderSim
from bridge.sim.coder_agent import Gate, Text
from bridge.sim.slack import SlackSim
from tests.integration.conftest import CODER_TOKEN, SIGNING_SECRET, World, make_settings


async def _busy_chat(world: World) -> tuple[str, asyncio.Event]:
    gate = asyncio.Event()
    world.coder.agent = lambda prompt: [Text("Working, "), Gate(gate), Text("never reached.")]
    root = await world.mention("long job")
    await world.until(lambda: "Working, " in world.bot_texts(root))
    return root, gate


async def test_stop_reaction_interrupts_the_agent(world: World) -> None:
    """🛑 on the thread's first message interrupts the running turn and the thread says so."""
    root, _ = await _busy_chat(world)
    await world.slack.react(world.slack.alice, world.slack.general, root, "octagonal_sign")
    await world.until(lambda: world.chat_of(root).status == "waiting")
    await world.until(lambda: any("Stopped the agent" in t for t in world.bot_texts(root)))
    assert "Working, " in world.bot_texts(root), "what the agent had written stays in the thread"
    await world.until(lambda: any("🛑 The agent stopped as asked." in t for t in world.bot_texts(root)))


async def test_stop_reaction_on_a_bot_message_counts_too(world: World) -> None:
    """The same reaction on one of the bot's messages in the thread works as well."""
    root, _ = await _busy_chat(world)
    bot_reply = world.bot_messages(root)[-1]
    await world.slack.react(world.slack.alice, world.slack.general, bot_reply.ts, "octagonal_sign")
    await world.until(lambda: world.chat_of(root).status == "waiting")


async def test_archive_and_unarchive_by_reaction(world: World) -> None:
    """🗄️ archives the chat in Coder; removing the reaction unarchives it; replies while archived wait."""
    world.coder.agent = lambda prompt: [Text(f"Echo: {prompt}")]
    root = await world.mention("tidy up")
    await world.until_idle_and_shown(root)
    await world.slack.react(world.slack.alice, world.slack.general, root, "file_cabinet")
    if world.capabilities.archive == "refuse":
        # This Coder cannot archive: the thread says so and the chat goes on as before.
        await world.until(lambda: any("cannot archive chats" in t for t in world.bot_texts(root)))
        await world.reply(root, "are you there?")
        await world.until(lambda: "Echo: are you there?" in world.bot_texts(root))
        return
    await world.until(lambda: world.chat_of(root).archived)
    await world.until(lambda: any("Archived by" in t for t in world.bot_texts(root)))
    await world.reply(root, "are you there?")
    await world.until(
        lambda: any("archived, so your message was not sent" in t for t in world.bot_texts(root))
    )
    await world.slack.unreact(world.slack.alice, world.slack.general, root, "file_cabinet")
    await world.until(lambda: not world.chat_of(root).archived)
    await world.until(lambda: any("Unarchived by" in t for t in world.bot_texts(root)))
    await world.reply(root, "back again")
    await world.until(lambda: "Echo: back again" in world.bot_texts(root))


async def test_someone_else_cannot_stop_the_agent(world: World) -> None:
    """A reaction by another person changes nothing and is explained to them privately."""
    root, gate = await _busy_chat(world)
    await world.slack.react(world.slack.bob, world.slack.general, root, "octagonal_sign")
    await world.until(
        lambda: any("Only <@" in e.markdown_text for e in world.slack.ephemerals(world.slack.bob))
    )
    assert world.chat_of(root).status == "running"
    gate.set()
    await world.until_idle_and_shown(root)


async def test_unrelated_and_unknown_reactions_are_ignored(world: World) -> None:
    """Other emoji, and reactions on messages outside any chat's thread, do nothing."""
    root, gate = await _busy_chat(world)
    other = await world.slack.user_says(world.slack.alice, world.slack.general, "unrelated")
    await world.slack.react(world.slack.alice, world.slack.general, other, "octagonal_sign")
    await world.slack.react(world.slack.alice, world.slack.general, root, "tada")
    gate.set()
    await world.until_idle_and_shown(root)
    assert not any("Stopped" in t for t in world.bot_texts(root))
    assert world.chat_of(root).messages[-1]["role"] == "assistant"


async def test_promote_reaction_sends_a_queued_follow_up_next(world: World) -> None:
    """⏫ on a queued follow-up makes it the agent's next message, ahead of one queued earlier."""
    root, gate = await world.busy_on_first()
    await world.reply(root, "second")
    third = await world.reply(root, "third")
    await world.until(lambda: sum("Queued" in t for t in world.bot_texts(root)) == 2)
    assert await world.queued(root) == 2
    await world.slack.react(world.slack.alice, world.slack.general, third, "arrow_double_up")
    await world.until(lambda: any("moved a queued message to the front" in t for t in world.bot_texts(root)))
    gate.set()
    await world.until(lambda: "Echo: second" in world.bot_texts(root), timeout=15)
    texts = world.bot_texts(root)
    assert texts.index("Echo: third") < texts.index("Echo: second")


async def test_archive_deletes_an_ai_sdk_chat_where_the_operator_opted_in(tmp_path: Path) -> None:
    """With BRIDGE_AISDK_ARCHIVE_DELETES, 🗄️ deletes a 2025 AI-SDK chat (it cannot archive); the
    thread says so, and later replies are not sent."""
    async with (
        CoderSim(tokens={CODER_TOKEN: "alice"}, part_interval=0.002, generation="ai-sdk") as coder,
        SlackSim(signing_secret=SIGNING_SECRET, time_scale=0.05) as slack,
    ):
        settings = make_settings(slack, coder, f"sqlite:///{tmp_path}/b.db", aisdk_archive_deletes=True)
        world = World(slack=slack, coder=coder, settings=settings)
        await world.start_bridge()
        try:
            coder.agent = lambda prompt: [Text(f"Echo: {prompt}")]
            root = await world.mention("tidy up")
            await world.until_idle_and_shown(root)
            chat_id = world.chat_of(root).id
            await slack.react(slack.alice, slack.general, root, "file_cabinet")
            await world.until(lambda: any("Deleted the chat in Coder" in t for t in world.bot_texts(root)))
            assert chat_id not in coder.chats
            await world.reply(root, "are you there?")
            await world.until(
                lambda: any("deleted in Coder, so your message" in t for t in world.bot_texts(root))
            )
        finally:
            await world.stop_bridge()
