"""Chats started elsewhere, followed in Slack: `/coder follow`, and chats labelled with a channel.

Both ways once followed (output in the thread, replies as follow-ups), once per chat (a second
command, a restart, a reconnect of the watch), and only as the access policy allows.
"""

from __future__ import annotations

import asyncio
import json
import uuid

from pydantic import SecretStr

from bridge.relay.chat_commands import FOLLOW_UNSUPPORTED
from bridge.sim.coder_agent import Gate, Step, Text
from bridge.sim.slack_state import SimMessage
from tests.integration.conftest import CODER_TOKEN, World, user_texts
from tests.integration.test_identity import KEY, link

GUEST = "U0GUEST"
OUTSIDER = "U0OUTSIDER"
QUIET = "C0QUIET"
"""A channel the bot is not a member of."""
ELSEWHERE = "C0ELSEWHERE"


def _roots(world: World, channel: str | None = None) -> list[SimMessage]:
    """The bot's top-level messages in a channel: one per thread it started."""
    return [m for m in world.slack.history(channel or world.slack.general) if m.bot_id]


def _root_of(world: World, chat_id: str) -> SimMessage | None:
    """The thread root the bot posted for a chat (its first message links the chat)."""
    found = [m for m in _roots(world) if chat_id in m.visible_text]
    assert len(found) <= 1, f"{len(found)} threads for chat {chat_id}"
    return found[0] if found else None


async def _coder(world: World, text: str, *, user: str | None = None, channel: str | None = None) -> str:
    """Run `/coder text`; the private answer, wherever it came (ack or response_url)."""
    user = user or world.slack.alice
    before = len(world.slack.ephemerals(user))
    response = await world.slack.slash_command(user, channel or world.slack.general, "/coder", text)
    body = response.body.strip()
    answer = str(json.loads(body)["text"]) if body else ""
    if answer.startswith("⏳"):
        await world.until(lambda: len(world.slack.ephemerals(user)) > before + 1)
        last = world.slack.ephemerals(user)[-1]
        return last.markdown_text or last.text
    return answer


def _echo(world: World) -> asyncio.Event:
    """The agent answers "Echo: …" at once, except "long job", which waits for the returned gate."""
    gate = asyncio.Event()

    def script(prompt: str) -> list[Step]:
        return (
            [Text("Working, "), Gate(gate), Text("done.")]
            if prompt == "long job"
            else [Text(f"Echo: {prompt}")]
        )

    world.coder.agent = script
    return gate


async def test_follow_posts_a_thread_that_works_both_ways_once(world: World) -> None:
    """`/coder follow <link>` of a chat started in Coder: a new thread shows what the agent does from
    then on, a reply there is a follow-up, and following it again points to that thread."""
    if not world.capabilities.watch:
        assert await _coder(world, f"follow {uuid.uuid4()}") == FOLLOW_UNSUPPORTED
        assert not _roots(world)
        return
    _echo(world)
    chat = world.coder.create_elsewhere("alice", "fix the login bug")
    await world.until(lambda: chat.status not in ("pending", "running"))
    assert world.bridge is not None
    assert world.bridge.backend is not None
    answer = await _coder(world, f"follow {world.bridge.backend.chat_url(chat.id)}")
    assert "Following that chat in [a new thread]" in answer
    root = _root_of(world, chat.id)
    assert root is not None
    assert f"<@{world.slack.alice}> follows the Coder chat" in root.visible_text
    await world.until(
        lambda: any("Replies in this thread go to the agent" in t for t in world.bot_texts(root.ts))
    )
    await world.reply(root.ts, "and the logout one")
    await world.until(lambda: "Echo: and the logout one" in world.bot_texts(root.ts))
    assert user_texts(chat) == ["fix the login bug", "and the logout one"]
    assert not any("Echo: fix the login bug" in t for t in world.bot_texts(root.ts)), (
        "its past stays in Coder"
    )
    again = await _coder(world, f"follow {chat.id}", user=world.slack.bob)
    assert "followed in [this thread]" in again
    assert root.ts.replace(".", "") in again
    assert len(_roots(world)) == 1


async def test_follow_refusals(world: World) -> None:
    """What `/coder follow` refuses, privately, posting nothing: no chat named, a chat unknown or
    someone else's, a guest, a Slack Connect outsider, a channel the bot is not in."""
    world.require("watch")
    world.coder.add_token("tok-carol", "carol")
    carols = world.coder.create_elsewhere("carol", "her own work")
    mine = world.coder.create_elsewhere("alice", "fix the login bug")
    world.slack.add_user(GUEST, "guest", is_restricted=True)
    world.slack.add_user(OUTSIDER, "outsider", team_id="T0PARTNER")
    world.slack.add_channel(QUIET, "quiet", members=(world.slack.alice,))
    assert "Which chat?" in await _coder(world, "follow the login one")
    assert "can't find that chat" in await _coder(world, f"follow {uuid.uuid4()}")
    assert "can't find that chat" in await _coder(world, f"follow {carols.id}")
    assert "Guests of this workspace" in await _coder(world, f"follow {mine.id}", user=GUEST)
    assert "other organizations" in await _coder(world, f"follow {mine.id}", user=OUTSIDER)
    assert "invite me to it first" in await _coder(world, f"follow {mine.id}", channel=QUIET)
    assert not _roots(world)
    assert not _roots(world, QUIET)
    assert user_texts(mine) == ["fix the login bug"], "nothing reached the chat"


async def test_labelled_chat_is_followed_in_its_channel_exactly_once(world: World) -> None:
    """A chat made in Coder with a `slack_channel` label gets one thread there, its output streams
    in, replies are follow-ups. A thread root whose answer from Slack was lost, a reconnect of the
    watch and a restart find that thread instead of posting another."""
    world.require("watch")
    gate = _echo(world)
    world.slack.fail_next("chat.postMessage", error="service_unavailable", status=503, applied=True)
    chat = world.coder.create_elsewhere("alice", "long job", labels={"slack_channel": world.slack.general})
    await world.until(lambda: _root_of(world, chat.id) is not None)  # posted, and the bridge not told
    world.coder.drop_watches()  # the reconnect's catch-up considers the chat again
    root = _root_of(world, chat.id)
    assert root is not None
    assert "🔗 Following, as its labels ask," in root.visible_text
    await world.until(lambda: "Working, " in world.bot_texts(root.ts))
    gate.set()
    await world.until(lambda: any("done." in t for t in world.bot_texts(root.ts)))
    await world.until(lambda: chat.status not in ("pending", "running"))
    await world.reply(root.ts, "now the tests")
    await world.until(lambda: "Echo: now the tests" in world.bot_texts(root.ts))

    await world.stop_bridge()
    await world.start_bridge()
    # Watch events are handled in order: once a chat labelled after the restart has its thread,
    # the restart's catch-up is over.
    title = "<!channel> ask <@U0BOB> later"  # a title is someone else's words: shown, never notifying
    later = world.coder.create_elsewhere("alice", title, labels={"slack_channel": world.slack.general})
    await world.until(lambda: _root_of(world, later.id) is not None)
    later_root = _root_of(world, later.id)
    assert later_root is not None
    assert not later_root.notifies
    assert _root_of(world, chat.id) == root
    assert len(_roots(world)) == 2


async def test_labelled_thread_is_followed_unless_it_is_taken(world: World) -> None:
    """A `slack_thread` label puts the chat in that thread; a thread another chat follows, a channel
    the bot is not in, a direct message, a channel off the allow-list and another workspace are
    refused."""
    world.require("watch")
    _echo(world)
    started = await world.mention("fix the login bug")
    await world.until_idle_and_shown(started)
    world.slack.add_channel(QUIET, "quiet", members=(world.slack.alice,))
    general = world.slack.general
    refused = [
        world.coder.create_elsewhere(
            "alice", "taken", labels={"slack_channel": general, "slack_thread": started}
        ),
        world.coder.create_elsewhere("alice", "not a member", labels={"slack_channel": QUIET}),
        world.coder.create_elsewhere(
            "alice", "a direct message", labels={"slack_channel": world.slack.alice_dm}
        ),
        world.coder.create_elsewhere(
            "alice", "elsewhere", labels={"slack_channel": general, "slack_team": "T0X"}
        ),
    ]
    report = await world.slack.user_says(world.slack.alice, general, "CI run 42 failed")
    chat = world.coder.create_elsewhere(
        "alice", "why did CI fail", labels={"slack_channel": general, "slack_thread": report}
    )
    await world.until(lambda: "Echo: why did CI fail" in world.bot_texts(report))
    assert all(c.id not in "".join(world.bot_texts(started)) for c in refused)
    assert not _roots(world)
    assert not _roots(world, QUIET)
    assert not _roots(world, world.slack.alice_dm)
    assert world.chat_of(report) is chat

    await world.stop_bridge()
    world.slack.add_channel(ELSEWHERE, "elsewhere")
    await world.start_bridge(allowed_channels=(ELSEWHERE,))
    off_list = world.coder.create_elsewhere("alice", "off the list", labels={"slack_channel": general})
    allowed = world.coder.create_elsewhere("alice", "on the list", labels={"slack_channel": ELSEWHERE})
    await world.until(
        lambda: (
            "Echo: on the list"
            in "".join(t for m in _roots(world, ELSEWHERE) for t in world.bot_texts(m.ts, ELSEWHERE))
        )
    )
    assert _root_of(world, off_list.id) is None
    assert allowed.id in _roots(world, ELSEWHERE)[0].visible_text


async def test_labelled_chat_needs_an_owner_the_policy_admits_in_linked_mode(world: World) -> None:
    """In linked mode the chat's Coder owner must be a linked Slack person the policy lets use the
    channel: nobody linked, or a guest, and the chat is skipped; a member, and it is followed for them."""
    world.require("watch")
    await world.stop_bridge()
    await world.start_bridge(identity_mode="linked", encryption_key=SecretStr(KEY))
    _echo(world)
    general = world.slack.general
    nobody = world.coder.create_elsewhere("alice", "nobody's", labels={"slack_channel": general})
    world.slack.add_user(GUEST, "guest", is_restricted=True)
    await world.stop_bridge()
    await world.start_bridge(identity_mode="linked", encryption_key=SecretStr(KEY), allow_guests=True)
    await link(world, GUEST, CODER_TOKEN)
    await world.stop_bridge()
    await world.start_bridge(identity_mode="linked", encryption_key=SecretStr(KEY))
    guests = world.coder.create_elsewhere("alice", "a guest's", labels={"slack_channel": general})
    await link(world, world.slack.bob, CODER_TOKEN)
    bobs = world.coder.create_elsewhere(
        "alice", "bob's", labels={"slack_channel": general, "slack_user": world.slack.bob}
    )
    await world.until(lambda: _root_of(world, bobs.id) is not None)
    root = _root_of(world, bobs.id)
    assert root is not None
    await world.until(lambda: any(t.startswith(f"<@{world.slack.bob}> ✅") for t in world.bot_texts(root.ts)))
    assert _root_of(world, nobody.id) is None
    assert _root_of(world, guests.id) is None
