"""End to end: what Slack sends in a real workspace reaches the agent as meant.

Slack Connect channels (a partner's replies name their own team; files come as stubs only
``files.info`` describes), a thread's root deleted under its replies (a tombstone, not a deletion),
and the HTML entities Slack writes for ``&``, ``<`` and ``>``.
"""

from __future__ import annotations

from bridge.sim.coder_agent import Text
from tests.integration.conftest import World, message_parts, user_texts

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + bytes(64)
CAROL = "U0CAROL"
SHARED = "C0SHARED"


def _share_a_channel(world: World) -> None:
    """#shared, a Slack Connect channel with Carol from a partner organisation in it."""
    world.slack.add_channel(
        SHARED, "shared", members=(world.slack.alice, world.slack.bot_user_id), is_ext_shared=True
    )
    world.slack.add_user(CAROL, "carol", team_id="T0PARTNER", channels=(SHARED,))


async def test_a_partners_reply_in_a_shared_channel_reaches_the_chat(world: World) -> None:
    """A reply from another organisation (allowed by the operator) reaches the chat Alice started:
    its event names the partner's team outside, the thread is found by the installation's."""
    await world.stop_bridge()
    await world.start_bridge(allow_external_users=True)
    _share_a_channel(world)
    world.coder.agent = lambda prompt: [Text(f"Echo: {prompt}")]
    root = await world.mention("check the deploy", channel=SHARED)
    await world.until(lambda: "Echo: check the deploy" in world.bot_texts(root, SHARED))
    await world.reply(root, "the partner's logs say 502", user=CAROL, channel=SHARED)
    delivered = [d for d in world.slack.deliveries if d.payload.get("event", {}).get("user") == CAROL]
    assert {d.payload["team_id"] for d in delivered} == {"T0PARTNER"}
    await world.until(lambda: "Echo: the partner's logs say 502" in world.bot_texts(root, SHARED))
    assert user_texts(world.chat_of(root, SHARED)) == ["check the deploy", "the partner's logs say 502"]


async def test_a_file_in_a_shared_channel_is_described_by_files_info(world: World) -> None:
    """A Slack Connect channel's events carry file stubs; the bridge asks files.info and sends the image."""
    world.require("stored_files")
    _share_a_channel(world)
    image = world.slack.add_file(PNG, "screen.png", "image/png")
    root = await world.slack.user_says(
        world.slack.alice, SHARED, f"<@{world.slack.bot_user_id}> what is wrong here?", files=[image]
    )
    await world.until(
        lambda: world.chat_of(root, SHARED) is not None and len(world.chat_of(root, SHARED).messages) > 0
    )
    [first] = [m for m in world.chat_of(root, SHARED).messages if m["role"] == "user"]
    files = [p for p in message_parts(first) if p["type"] == "file"]
    assert [world.coder.files[p["file_id"]].data for p in files] == [PNG]
    assert [c.params.get("file") for c in world.slack.calls_to("files.info")] == [image["id"]]


async def test_a_root_deleted_under_its_replies_keeps_the_thread_working(world: World) -> None:
    """Deleting the message that started a chat leaves Slack's tombstone: the agent keeps what it got,
    the thread says so, and replies there still reach the agent."""
    world.coder.agent = lambda prompt: [Text(f"Echo: {prompt}")]
    root = await world.mention("rename the service")
    await world.until_idle_and_shown(root)
    await world.slack.delete(world.slack.alice, world.slack.general, root)
    tombstone = world.slack.message(world.slack.general, root)
    assert tombstone is not None
    assert tombstone.subtype == "tombstone"
    await world.until(lambda: any("stays in the chat" in t for t in world.bot_texts(root)))
    await world.reply(root, "call it billing-api")
    await world.until(lambda: "Echo: call it billing-api" in world.bot_texts(root))
    assert user_texts(world.chat_of(root)) == ["rename the service", "call it billing-api"]


async def test_escaped_characters_reach_the_agent_as_typed(world: World) -> None:
    """Slack writes ``&``, ``<`` and ``>`` as entities in message text; the agent gets the characters."""
    world.coder.agent = lambda prompt: [Text("ok")]
    root = await world.mention("make sure 1 &lt; 2 &amp;&amp; 3 &gt; 2")
    await world.until_idle_and_shown(root)
    await world.reply(root, "and keep &lt;br&gt; &amp; &amp;amp; as they are")
    await world.until_idle_and_shown(root, turns=2)
    assert user_texts(world.chat_of(root)) == [
        "make sure 1 < 2 && 3 > 2",
        "and keep <br> & &amp; as they are",
    ]


async def test_a_tombstoned_root_is_no_part_of_the_thread_context(world: World) -> None:
    """A chat started late in a thread whose root was deleted gets the replies as context, not Slack's
    "This message was deleted." placeholder."""
    world.coder.agent = lambda prompt: [Text("ok")]
    slack = world.slack
    root = await slack.user_says(slack.alice, slack.general, "the build is red")
    await world.reply(root, "red since noon", user=slack.bob)
    await slack.delete(slack.alice, slack.general, root)
    await world.reply(root, f"<@{slack.bot_user_id}> fix it", user=slack.bob)
    await world.until(lambda: world.chat_of(root) is not None and bool(user_texts(world.chat_of(root))))
    [first] = user_texts(world.chat_of(root))
    assert "red since noon" in first
    assert "This message was deleted" not in first
