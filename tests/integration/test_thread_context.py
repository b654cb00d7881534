"""End to end: a mention late in a thread starts a chat that knows what the thread said before."""

from __future__ import annotations

from typing import Any

from bridge.sim.coder_agent import Text
from tests.integration.conftest import World, message_text, user_texts
from tests.integration.test_files import PNG


def _first_message(world: World, root: str) -> dict[str, Any]:
    return next(m for m in world.chat_of(root).messages if m["role"] == "user")


async def test_mention_in_a_thread_brings_its_earlier_messages_and_images(world: World) -> None:
    """Earlier messages go first, attributed to their authors, with their images; the request last."""
    world.require("stored_files")
    slack = world.slack
    root = await slack.user_says(slack.bob, slack.general, "login fails on Safari")
    image = slack.add_file(PNG, "safari.png", "image/png")
    await slack.user_says(slack.alice, slack.general, "same here", thread_ts=root, files=[image])
    await world.reply(root, f"<@{slack.bot_user_id}> please fix it")
    await world.until_idle_and_shown(root)
    first = _first_message(world, root)
    assert message_text(first) == (
        "Earlier messages in this Slack thread, oldest first:\n"
        f"{slack.bob}: login fails on Safari\n"
        f"{slack.alice}: same here [attached: safari.png]\n\n"
        "please fix it"
    )
    [file_part] = [p for p in first["content"] if p["type"] == "file"]
    assert world.coder.files[file_part["file_id"]].data == PNG
    assert world.chat_of(root).labels["slack_thread"] == root


async def test_thread_context_is_bounded_in_count_and_size(world: World) -> None:
    """Only the newest messages that fit the configured count and size go along; the rest is said."""
    await world.stop_bridge()
    await world.start_bridge(thread_context_messages=3, thread_context_chars=120)
    slack = world.slack
    root = await slack.user_says(slack.bob, slack.general, "message 0")
    for n in range(1, 6):
        await world.reply(root, f"message {n} " + "x" * (40 if n == 3 else 0), user=slack.bob)
    await world.reply(root, f"<@{slack.bot_user_id}> summarise")
    await world.until_idle_and_shown(root)
    text = message_text(_first_message(world, root))
    assert text.endswith(f"{slack.bob}: message 4\n{slack.bob}: message 5\n\nsummarise")
    assert "(4 older messages left out)" in text
    assert "message 2" not in text
    assert len(text) <= 120 + len("\n\nsummarise")


async def test_a_late_message_twin_of_the_starting_mention_is_not_sent_again(world: World) -> None:
    """The ``message`` twin of a mid-thread mention, handled after its ``app_mention``, adds nothing."""
    world.require("stored_files")
    world.coder.agent = lambda prompt: [Text("ok")]
    slack = world.slack
    root = await slack.user_says(slack.bob, slack.general, "CI is red")
    image = slack.add_file(PNG, "ci.png", "image/png")
    mention = await slack.user_says(
        slack.alice, slack.general, f"<@{slack.bot_user_id}> fix it", thread_ts=root, files=[image]
    )
    await world.until_idle_and_shown(root)
    twin = next(
        d.payload["event"]
        for d in slack.deliveries
        if d.event_type == "message" and d.payload["event"].get("ts") == mention
    )
    await slack.deliver_event(twin)  # a fresh event id: the twin arriving late, not a retry
    await world.reply(root, "and the docs")  # handled after the twin: one thread's messages queue
    await world.until_idle_and_shown(root, turns=2)
    texts = user_texts(world.chat_of(root))
    assert [t.rsplit("\n\n", 1)[-1] for t in texts] == ["fix it", "and the docs"]
    assert len(world.coder.files) == 1, "nothing uploaded again"
