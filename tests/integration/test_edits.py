"""End to end: editing or deleting a relayed Slack message changes the chat in Coder; the thread says so."""

from __future__ import annotations

import asyncio

from bridge.relay.context import HEADING
from bridge.sim.coder_agent import Gate, Step, Text
from tests.integration.conftest import World, user_texts
from tests.integration.test_files import PNG


def _user_texts(world: World, root: str) -> list[str]:
    return user_texts(world.chat_of(root))


def _queue_texts(world: World, root: str) -> list[str]:
    return ["".join(p.get("text", "") for p in q.get("content") or []) for q in world.chat_of(root).queue]


def _said(world: World, root: str, start: str) -> bool:
    return any(t.startswith(start) for t in world.bot_texts(root))


async def _busy_thread(world: World) -> tuple[str, asyncio.Event]:
    """A thread whose agent is held mid-turn until the returned gate is set."""
    gate = asyncio.Event()

    def script(prompt: str) -> list[Step]:
        if prompt == "first":
            return [Text("Working on it."), Gate(gate), Text(" Done.")]
        return [Text(f"Echo: {prompt}")]

    world.coder.agent = script
    root = await world.mention("first")
    await world.until(lambda: "Working on it." in world.bot_texts(root))
    return root, gate


async def test_edit_of_a_delivered_follow_up_edits_it_in_coder(world: World) -> None:
    """Editing a delivered reply edits that message in Coder; the agent answers the new text."""
    world.require("edits")
    world.coder.agent = lambda prompt: [Text(f"Echo: {prompt}")]
    root = await world.mention("first")
    await world.until_idle_and_shown(root)
    reply = await world.reply(root, "secnd")
    await world.until_idle_and_shown(root, turns=2)
    await world.slack.edit(world.slack.alice, world.slack.general, reply, "second")
    await world.until(lambda: _said(world, root, "✏️ Edited in Coder"))
    await world.until(lambda: "Echo: second" in world.bot_texts(root))
    assert _user_texts(world, root) == ["first", "second"]


async def test_edit_of_the_first_message_edits_the_start_of_the_chat(world: World) -> None:
    """Editing the mention that started the chat edits the chat's first message."""
    world.require("edits")
    world.coder.agent = lambda prompt: [Text(f"Echo: {prompt}")]
    root = await world.mention("fix the lgoin bug")
    await world.until_idle_and_shown(root)
    bot = world.slack.bot_user_id
    await world.slack.edit(world.slack.alice, world.slack.general, root, f"<@{bot}> fix the login bug")
    await world.until(lambda: _user_texts(world, root) == ["fix the login bug"])
    await world.until(lambda: "Echo: fix the login bug" in world.bot_texts(root))


async def test_edit_keeps_the_files_and_the_thread_context(world: World) -> None:
    """An edit changes only the words: attached files stay, and so does a first message's context."""
    world.require("edits")
    world.coder.agent = lambda prompt: [Text("ok")]
    slack = world.slack
    root = await slack.user_says(slack.bob, slack.general, "CI is red")
    image = slack.add_file(PNG, "ci.png", "image/png")
    mention = await slack.user_says(
        slack.alice, slack.general, f"<@{slack.bot_user_id}> fix tset", thread_ts=root, files=[image]
    )
    await world.until_idle_and_shown(root)
    [file_id] = [p["file_id"] for p in world.chat_of(root).messages[0]["content"] if p["type"] == "file"]
    await slack.edit(slack.alice, slack.general, mention, f"<@{slack.bot_user_id}> fix test")
    await world.until(lambda: _user_texts(world, root)[0].endswith("fix test"))
    first = world.chat_of(root).messages[0]
    assert _user_texts(world, root)[0].startswith(f"{HEADING}\n> {slack.bob}: CI is red\n")
    assert [p["file_id"] for p in first["content"] if p["type"] == "file"] == [file_id]
    assert len(world.coder.files) == 1, "nothing uploaded again"


async def test_edit_of_a_queued_follow_up_replaces_it_in_place(world: World) -> None:
    """Editing a queued reply replaces it in Coder's queue without losing its place."""
    world.require("queue", "coder")
    root, gate = await _busy_thread(world)
    second = await world.reply(root, "secnd")
    await world.reply(root, "third")
    await world.until(lambda: _queue_texts(world, root) == ["secnd", "third"])
    await world.slack.edit(world.slack.alice, world.slack.general, second, "second")
    await world.until(lambda: _queue_texts(world, root) == ["second", "third"])
    await world.until(lambda: _said(world, root, "✏️ Edit applied"))
    gate.set()
    await world.until_idle_and_shown(root, turns=3)
    assert _user_texts(world, root) == ["first", "second", "third"]


async def test_a_failed_queue_replacement_says_what_must_be_sent_again(world: World) -> None:
    """If Coder fails while the queue is rebuilt, the thread says which messages must be resent."""
    world.require("queue", "coder")
    root, gate = await _busy_thread(world)
    second = await world.reply(root, "secnd")
    await world.reply(root, "third")
    await world.until(lambda: _queue_texts(world, root) == ["secnd", "third"])
    world.coder.fail_next("POST", r"/messages$", 400, "Invalid chat message.")  # a 5xx is retried safely
    await world.slack.edit(world.slack.alice, world.slack.general, second, "second")
    await world.until(lambda: _said(world, root, "⚠️ Your edit was not sent"))
    note = next(t for t in world.bot_texts(root) if t.startswith("⚠️ Your edit"))
    assert "2 queued message(s) were taken out and not queued again" in note
    gate.set()


async def test_deleting_a_queued_follow_up_removes_it_from_the_queue(world: World) -> None:
    """Deleting a queued reply takes it out of Coder's queue; the agent never gets it."""
    world.require("queue", "coder")
    root, gate = await _busy_thread(world)
    second = await world.reply(root, "second")
    await world.until(lambda: _queue_texts(world, root) == ["second"])
    await world.slack.delete(world.slack.alice, world.slack.general, second)
    await world.until(lambda: _queue_texts(world, root) == [])
    await world.until(lambda: _said(world, root, "🗑️ Removed from the queue"))
    gate.set()
    await world.until_idle_and_shown(root)
    assert _user_texts(world, root) == ["first"]


async def test_deleting_a_delivered_message_is_answered(world: World) -> None:
    """Deleting a reply the agent already has leaves the chat alone and says so in the thread."""
    root = await world.mention("first")
    await world.until_idle_and_shown(root)
    reply = await world.reply(root, "second")
    await world.until_idle_and_shown(root, turns=2)
    await world.slack.delete(world.slack.alice, world.slack.general, reply)
    await world.until(lambda: _said(world, root, "ℹ️ A message you deleted had already reached the agent"))
    assert _user_texts(world, root) == ["first", "second"]


async def test_changes_to_messages_never_relayed_are_ignored(world: World) -> None:
    """Edits and deletions of messages the bot never relayed change nothing and post nothing."""
    world.coder.agent = lambda prompt: [Text("ok")]
    slack = world.slack
    plain = await slack.user_says(slack.alice, slack.general, "lunch?")
    await slack.edit(slack.alice, slack.general, plain, "lunch at noon?")
    await slack.delete(slack.alice, slack.general, plain)
    root = await slack.user_says(slack.bob, slack.general, "the build is red")
    await world.reply(root, f"<@{slack.bot_user_id}> please look")
    await world.until_idle_and_shown(root)
    await slack.edit(slack.bob, slack.general, root, "the build is red again")  # context only, not relayed
    await world.reply(root, "thanks")  # handled after the edit: same thread, same order
    await world.until_idle_and_shown(root, turns=2)
    assert not any(t.startswith(("✏️", "⚠️", "ℹ️")) for t in world.bot_texts(root))
    assert world.chat_of(plain) is None
    assert world.bot_texts(plain) == []


async def test_where_coder_cannot_edit_the_edit_is_refused_and_a_held_follow_up_is_deleted(
    world: World,
) -> None:
    """Coder without edits (the 2025 API): an edit is refused in the thread; a follow-up the bridge holds is
    taken out of the bridge's queue when deleted in Slack."""
    world.require("edits", False)
    root, gate = await _busy_thread(world)
    second = await world.reply(root, "second")
    await world.until(lambda: _said(world, root, "📥 Queued"))
    await world.slack.delete(world.slack.alice, world.slack.general, second)
    await world.until(lambda: _said(world, root, "🗑️ Removed from the queue"))
    assert await world.queued(root) == 0
    gate.set()
    await world.until_idle_and_shown(root)
    bot = world.slack.bot_user_id
    await world.slack.edit(world.slack.alice, world.slack.general, root, f"<@{bot}> first, really")
    await world.until(lambda: _said(world, root, "⚠️ Your edit was not sent to the agent"))
    assert _user_texts(world, root) == ["first"]
