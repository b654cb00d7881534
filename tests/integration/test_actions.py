"""Control buttons end to end: each click does what the matching reaction does, through the same path.

The buttons here are posted into the thread by the test with the bot's token, shaped as the bridge's
status message and "Queued" notices carry them (action ids and values of the shared contract); the
simulator then delivers a signed ``block_actions`` for a person's click.
"""

from __future__ import annotations

import asyncio
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bridge.db import repo
from bridge.sim.coder_agent import Gate, Text
from tests.integration.conftest import World


def _buttons(*elements: tuple[str, str]) -> list[dict[str, Any]]:
    return [
        {"type": "markdown", "text": "controls"},
        {
            "type": "actions",
            "block_id": "controls",
            "elements": [
                {"type": "button", "action_id": action_id, "text": {"type": "plain_text", "text": action_id}}
                | ({"url": value} if action_id == "chat_open" else {"value": value})
                for action_id, value in elements
            ],
        },
    ]


async def _post_buttons(world: World, root: str, *elements: tuple[str, str]) -> str:
    """A bot message with these buttons in the thread, as the bridge posts its controls; its ts.
    The post shares the channel's budget with the bridge's own, so a 429 is waited out (slack-sdk's
    retry handler reads Retry-After as whole seconds; the time-scaled simulator's are fractions)."""
    client = AsyncWebClient(token=world.slack.bot_token, base_url=world.slack.api_url)
    try:
        while True:
            try:
                response = await client.chat_postMessage(
                    channel=world.slack.general, thread_ts=root, text="controls", blocks=_buttons(*elements)
                )
            except SlackApiError as exc:
                if exc.response.status_code != 429:
                    raise
                await asyncio.sleep(float(exc.response.headers.get("Retry-After", "1")))
            else:
                return str(response["ts"])
    finally:
        if client.session is not None:
            await client.session.close()


async def _busy_chat(world: World) -> tuple[str, str, asyncio.Event]:
    gate = asyncio.Event()
    world.coder.agent = lambda prompt: [Text("Working, "), Gate(gate), Text("never reached.")]
    root = await world.mention("long job")
    await world.until(lambda: "Working, " in world.bot_texts(root))
    return root, world.chat_of(root).id, gate


async def _queued_ids(world: World, root: str) -> list[int]:
    """The ids of the follow-ups waiting in the thread's chat (Coder's queue, or the bridge's)."""
    chat = world.chat_of(root)
    if world.capabilities.queue == "coder":
        return [int(q["id"]) for q in chat.queue]
    assert world.bridge is not None
    async with world.bridge.db.unit() as session:
        return [int(h.id) for h in await repo.find_aisdk_follow_ups(session, chat.id) if h.id is not None]


async def test_stop_button_interrupts_the_agent(world: World) -> None:
    """Stop on the status message interrupts the running turn, acknowledged at once; the thread says so."""
    root, chat_id, _ = await _busy_chat(world)
    ts = await _post_buttons(world, root, ("chat_stop", chat_id))
    answer = await world.slack.click(world.slack.alice, world.slack.general, ts, "chat_stop")
    assert answer.status == 200
    await world.until(lambda: world.chat_of(root).status == "waiting")
    await world.until(lambda: any("Stopped the agent at <@" in t for t in world.bot_texts(root)))


async def test_archive_and_unarchive_buttons(world: World) -> None:
    """Archive archives the chat in Coder and Unarchive takes it back, as the reaction and its removal do."""
    world.require("archive", "archive")
    world.coder.agent = lambda prompt: [Text(f"Echo: {prompt}")]
    root = await world.mention("tidy up")
    await world.until_idle_and_shown(root)
    chat_id = world.chat_of(root).id
    ts = await _post_buttons(world, root, ("chat_archive", chat_id), ("chat_unarchive", chat_id))
    await world.slack.click(world.slack.alice, world.slack.general, ts, "chat_archive")
    await world.until(lambda: world.chat_of(root).archived)
    await world.until(lambda: any("Archived by" in t for t in world.bot_texts(root)))
    await world.reply(root, "are you there?")
    await world.until(
        lambda: any("archived, so your message was not sent" in t for t in world.bot_texts(root))
    )
    await world.slack.click(world.slack.alice, world.slack.general, ts, "chat_unarchive")
    await world.until(lambda: not world.chat_of(root).archived)
    await world.until(lambda: any("Unarchived by" in t for t in world.bot_texts(root)))
    await world.reply(root, "back again")
    await world.until(lambda: "Echo: back again" in world.bot_texts(root))


async def test_open_in_coder_is_only_acknowledged(world: World) -> None:
    """The Open in Coder URL button's click is acknowledged (no warning for the person) and does nothing."""
    world.coder.agent = lambda prompt: [Text(f"Echo: {prompt}")]
    root = await world.mention("hello")
    await world.until_idle_and_shown(root)
    ts = await _post_buttons(world, root, ("chat_open", f"{world.coder.url}/agents/x"))
    requests = len(world.coder.requests)
    answer = await world.slack.click(world.slack.alice, world.slack.general, ts, "chat_open")
    assert answer == (200, "")
    assert [r.path for r in world.coder.requests[requests:] if r.method != "GET"] == []
    assert not world.slack.ephemerals(world.slack.alice)


async def test_someone_else_cannot_click_stop(world: World) -> None:
    """A click by someone the policy refuses changes nothing and is explained to them privately."""
    root, chat_id, gate = await _busy_chat(world)
    ts = await _post_buttons(world, root, ("chat_stop", chat_id))
    assert (await world.slack.click(world.slack.bob, world.slack.general, ts, "chat_stop")).status == 200
    await world.until(
        lambda: any("Only <@" in e.markdown_text for e in world.slack.ephemerals(world.slack.bob))
    )
    assert world.chat_of(root).status == "running"
    gate.set()
    await world.until_idle_and_shown(root)
    assert not any("Stopped" in t for t in world.bot_texts(root))


def _notice(world: World, root: str, place: int) -> str | None:
    """The ts of the thread's Queued notice that shows ``place`` (with its Send next / Remove buttons)."""
    thread = world.slack.thread(world.slack.general, root)
    return next((m.ts for m in thread if m.bot_id and f"(#{place})" in m.visible_text), None)


async def test_send_next_and_remove_buttons_on_queued_follow_ups(world: World) -> None:
    """The Queued notices' buttons: Send next promotes a follow-up ahead of an earlier one, Remove
    takes one out of the queue, and each notice then says its message left the queue."""
    world.require("queue", "coder")
    root, gate = await world.busy_on_first()
    for text in ("second", "third", "fourth"):
        await world.reply(root, text)
    await world.until(lambda: _notice(world, root, 3) is not None)
    second, third, _ = await _queued_ids(world, root)
    fourth_notice = _notice(world, root, 3)
    assert fourth_notice is not None
    await world.slack.click(world.slack.alice, world.slack.general, fourth_notice, "queued_remove")
    await world.until(lambda: any("removed a queued message" in t for t in world.bot_texts(root)))
    assert await _queued_ids(world, root) == [second, third]
    await world.until(lambda: _notice(world, root, 3) is None)  # the removed one's notice says it left
    third_notice = _notice(world, root, 2)
    assert third_notice is not None
    await world.slack.click(world.slack.alice, world.slack.general, third_notice, "queued_send_next")
    await world.until(lambda: any("moved a queued message to the front" in t for t in world.bot_texts(root)))
    gate.set()
    await world.until(lambda: "Echo: second" in world.bot_texts(root), timeout=15)
    texts = world.bot_texts(root)
    assert texts.index("Echo: third") < texts.index("Echo: second")
    assert "Echo: fourth" not in texts
    await world.until(lambda: not any("📥 Queued" in t for t in world.bot_texts(root)))


async def test_a_stale_queued_button_says_the_message_left_the_queue(world: World) -> None:
    """A Remove button whose entry Coder no longer queues (clicked twice, or from an old message)
    is answered with what happened instead of Coder's error."""
    world.require("queue", "coder")
    root, chat_id, gate = await _busy_chat(world)
    await world.reply(root, "later")
    await world.until(lambda: _notice(world, root, 1) is not None)
    [queued] = await _queued_ids(world, root)
    ts = await _post_buttons(world, root, ("queued_remove", f"{chat_id}:{queued}"))
    await world.slack.click(world.slack.alice, world.slack.general, ts, "queued_remove")
    await world.until(lambda: any("removed a queued message" in t for t in world.bot_texts(root)))
    await world.slack.click(world.slack.alice, world.slack.general, ts, "queued_remove")
    await world.until(lambda: any("no longer queued" in t for t in world.bot_texts(root)))
    gate.set()


async def test_malformed_click_values_are_dropped(world: World) -> None:
    """A queued button whose value is not ``<chat id>:<queued id>`` is acknowledged and ignored."""
    root, chat_id, gate = await _busy_chat(world)
    ts = await _post_buttons(world, root, ("queued_remove", chat_id))
    assert (
        await world.slack.click(world.slack.alice, world.slack.general, ts, "queued_remove")
    ).status == 200
    gate.set()
    await world.until_idle_and_shown(root)
    assert not any("removed" in t or "queued" in t.lower() for t in world.bot_texts(root)[1:])
