"""Reactions and buttons end to end: what a glance at the channel and the thread's controls tell."""

from __future__ import annotations

import asyncio

from bridge.sim.coder_agent import Gate, Step, Text
from bridge.sim.slack_state import SimMessage
from tests.integration.conftest import World


def reactions(world: World, ts: str) -> set[str]:
    """The bot's reactions on a message of the general channel."""
    message = world.slack.message(world.slack.general, ts)
    assert message is not None
    return {name for name, users in message.reactions.items() if world.slack.bot_user_id in users}


def actions(message: SimMessage) -> list[tuple[str, str]]:
    """The buttons under a message: (action id, value or url)."""
    return [
        (e["action_id"], e.get("value") or e.get("url", ""))
        for block in message.blocks
        if block["type"] == "actions"
        for e in block["elements"]
    ]


def notice(world: World, root: str, words: str) -> SimMessage | None:
    """The bot's message in a thread whose text contains ``words``."""
    return next((m for m in world.bot_messages(root) if words in m.visible_text), None)


async def _busy(world: World, *, later: list[Step] | None = None) -> tuple[str, asyncio.Event]:
    gate = asyncio.Event()

    def script(prompt: str) -> list[Step]:
        if prompt == "first":
            return [Text("Working, "), Gate(gate), Text("done.")]
        return later if later is not None else [Text(f"Echo: {prompt}")]

    world.coder.agent = script
    root = await world.mention("first")
    await world.until(lambda: "Working, " in world.bot_texts(root))
    return root, gate


async def test_turn_message_shows_working_then_done(world: World) -> None:
    """👀 on the message that started a turn while the agent works on it, then ✅ alone."""
    root, gate = await _busy(world)
    await world.until(lambda: reactions(world, root) == {"eyes"})
    gate.set()
    await world.until_idle_and_shown(root)
    await world.until(lambda: reactions(world, root) == {"white_check_mark"})


async def test_follow_up_turn_gets_its_own_reactions(world: World) -> None:
    """A follow-up's message gets 👀 then ✅ for its turn; the first message keeps its own ✅."""
    world.coder.agent = lambda prompt: [Text(f"Echo: {prompt}")]
    root = await world.mention("first")
    await world.until_idle_and_shown(root)
    second = await world.reply(root, "second")
    await world.until_idle_and_shown(root, turns=2)
    await world.until(lambda: reactions(world, second) == {"white_check_mark"})
    await world.until(lambda: reactions(world, root) == {"white_check_mark"})
    removes = [
        c.params["name"]
        for c in world.slack.calls_to("reactions.remove")
        if c.params.get("timestamp") == second
    ]
    # 👀 may never have been shown (coalesced away by a quick turn). A message posted within the
    # outbox's clock-skew margin of the bridge's start may carry reactions of an earlier run as far as
    # the outbox knows, so the turn's other names may be taken off once (Slack: no_reaction); ✅ never.
    assert set(removes) <= {"eyes", "x"}, "only the turn's other names are taken off"
    assert len(removes) == len(set(removes)), "each at most once"


async def test_failed_turn_shows_x(world: World) -> None:
    """A turn that fails ends with ❌ on its message and the thread's first message."""
    root = await world.mention("/fail please")
    await world.until(lambda: reactions(world, root) == {"x"})
    assert world.chat_of(root).status == "error"


async def test_stopped_turn_shows_x(world: World) -> None:
    """A turn stopped by a person did not finish: ❌, not ✅, and no 👀 left."""
    root, _ = await _busy(world)
    await world.until(lambda: "eyes" in reactions(world, root))
    await world.slack.react(world.slack.alice, world.slack.general, root, "octagonal_sign")
    await world.until(lambda: world.chat_of(root).status == "waiting")
    await world.until(lambda: reactions(world, root) == {"x"})


async def test_restart_mid_turn_ends_with_the_final_reaction(world: World) -> None:
    """A bridge stopped while the agent worked sets the turn's final reaction after its restart."""
    root, gate = await _busy(world)
    await world.until(lambda: reactions(world, root) == {"eyes"})
    await world.stop_bridge()
    gate.set()
    await world.until(lambda: world.chat_of(root).status == "waiting")
    await world.start_bridge()
    # Where the reply ended with the bridge's connection, the turn was cut short: ❌.
    final = "white_check_mark" if world.capabilities.replies_outlive_connection else "x"
    await world.until(lambda: reactions(world, root) == {final})


async def test_header_buttons_follow_the_chat(world: World) -> None:
    """The status message carries Stop while busy, Archive (then Unarchive) and Open in Coder."""
    root, gate = await _busy(world)
    chat = world.chat_of(root)
    header = world.bot_messages(root)[0]
    assert world.bridge is not None
    assert world.bridge.backend is not None
    url = world.bridge.backend.chat_url(chat.id)
    archive = [("chat_archive", chat.id)] if world.capabilities.archive != "refuse" else []
    await world.until(lambda: actions(header) == [("chat_stop", chat.id), *archive, ("chat_open", url)])
    assert header.visible_text.startswith("Started a Coder chat"), "the text is the notification fallback"
    gate.set()
    await world.until_idle_and_shown(root)
    await world.until(lambda: actions(header) == [*archive, ("chat_open", url)])
    world.require("archive", "archive")
    await world.slack.react(world.slack.alice, world.slack.general, root, "file_cabinet")
    await world.until(lambda: actions(header) == [("chat_unarchive", chat.id), ("chat_open", url)])


async def test_queue_shows_places_and_buttons_until_taken(world: World) -> None:
    """Two queued follow-ups show ⏳ and "Queued (#1)" / "(#2)" with Send next and Remove; both are
    cleared when Coder takes them."""
    world.require("queue", "coder")
    root, gate = await _busy(world)
    second = await world.reply(root, "second")
    third = await world.reply(root, "third")
    chat = world.chat_of(root)
    await world.until(lambda: len(chat.queue) == 2)
    first_id, second_id = (q["id"] for q in chat.queue)

    def shown(place: int, queued_id: int) -> bool:
        message = notice(world, root, f"Queued (#{place})")
        value = f"{chat.id}:{queued_id}"
        return message is not None and actions(message) == [
            ("queued_send_next", value),
            ("queued_remove", value),
        ]

    await world.until(lambda: shown(1, first_id) and shown(2, second_id))
    await world.until(
        lambda: reactions(world, second) == reactions(world, third) == {"hourglass_flowing_sand"}
    )
    gate.set()
    await world.until_idle_and_shown(root, turns=3)
    await world.until(
        lambda: "hourglass_flowing_sand" not in reactions(world, second) | reactions(world, third)
    )
    await world.until(lambda: sum("took this queued message" in t for t in world.bot_texts(root)) == 2)
    assert not any(actions(m) for m in world.bot_messages(root)[1:]), "no button is left on a notice"
    await world.until(lambda: reactions(world, third) == {"white_check_mark"})


async def test_queue_place_moves_up_when_one_is_removed(world: World) -> None:
    """Removing the first queued follow-up in Coder moves the second to #1 and clears the first."""
    world.require("queue", "coder")
    root, gate = await _busy(world)
    second = await world.reply(root, "second")
    await world.reply(root, "third")
    chat = world.chat_of(root)
    await world.until(lambda: notice(world, root, "Queued (#2)") is not None)
    assert world.bridge is not None
    assert world.bridge.backend is not None
    await world.bridge.backend.delete_queued(chat.id, chat.queue[0]["id"])
    await world.until(lambda: notice(world, root, "Queued (#2)") is None)
    await world.until(lambda: notice(world, root, "Queued (#1)") is not None)
    await world.until(lambda: reactions(world, second) == set())
    assert notice(world, root, "no longer queued") is not None
    gate.set()
    await world.until(lambda: "Echo: third" in world.bot_texts(root))


async def test_rate_limit_storm_on_reactions_loses_nothing(world: World) -> None:
    """Reaction calls answered 429 are retried after Retry-After; every reaction ends as it should."""
    for method in ("reactions.add", "reactions.remove"):
        world.slack.fail_next(method, error="ratelimited", status=429, retry_after=0.05, count=6)
    root, gate = await _busy(world)
    await world.until(lambda: reactions(world, root) == {"eyes"})
    gate.set()
    await world.until(lambda: reactions(world, root) == {"white_check_mark"}, timeout=15)
    limited = [c for c in world.slack.calls_to("reactions.add") if c.status == 429]
    assert limited, "the storm happened"
