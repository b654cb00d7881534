"""Access policy end to end: channels, people, guests, other organizations, follow-ups and controls.

Every refusal is told privately to the person refused, and nothing reaches Coder.
"""

from __future__ import annotations

import asyncio
from typing import Any

from slack_sdk.web.async_client import AsyncWebClient

from bridge.db import repo
from bridge.db.engine import Database
from bridge.metrics import Metrics
from bridge.relay.limits import SlackLimits
from bridge.sim.coder_agent import Gate, Text
from bridge.sim.slack import SlackSim
from bridge.slack.directory import WebDirectory
from tests.integration.conftest import World

ENG = "C0ENG"
GUEST = "U0GUEST"
OUTSIDER = "U0OUTSIDER"


async def restart(world: World, **settings: Any) -> None:
    """Run the world's bridge again with other access settings."""
    await world.stop_bridge()
    await world.start_bridge(**settings)


def whispered(world: World, user: str, words: str) -> bool:
    """Whether ``user`` was told something containing ``words`` privately."""
    return any(words in (e.markdown_text or e.text) for e in world.slack.ephemerals(user))


async def left_to_replay(world: World) -> list[str]:
    """After a clean stop, the events a restart would handle again (a refused one must not be there)."""
    await world.stop_bridge()
    db = Database(world.settings.database_url)
    try:
        async with db.unit() as session:
            return await repo.find_unfinished_events(session)
    finally:
        await db.dispose()


async def test_channel_allow_list(world: World) -> None:
    """With BRIDGE_ALLOWED_CHANNELS the bot takes tasks only there; elsewhere it explains privately."""
    world.slack.add_channel(ENG, "eng")
    await restart(world, allowed_channels=(ENG,))
    refused = await world.mention("fix it in general")
    await world.until(lambda: whispered(world, world.slack.alice, "I don't take tasks in this channel"))
    assert world.chat_of(refused) is None
    served = await world.mention("fix it in eng", channel=ENG)
    await world.until(lambda: world.chat_of(served) is not None)
    assert await left_to_replay(world) == []


async def test_direct_messages_are_not_limited_by_the_channel_list(world: World) -> None:
    """The channel allow-list is about channels: a DM still starts a chat for an allowed person."""
    await restart(world, allowed_channels=("C0ELSEWHERE",))
    ts = await world.slack.user_says(world.slack.alice, world.slack.alice_dm, "fix the login bug")
    await world.until(lambda: world.chat_of(ts) is not None)


async def test_user_allow_list_with_a_user_group(world: World) -> None:
    """BRIDGE_ALLOWED_USERS may name a user group: its members start chats, others are refused."""
    world.slack.add_usergroup("S0ENG", "eng", [world.slack.alice])
    await restart(world, allowed_users=("S0ENG",))
    refused = await world.mention("fix it", user=world.slack.bob)
    await world.until(lambda: whispered(world, world.slack.bob, "not among the people allowed"))
    assert world.chat_of(refused) is None
    allowed = await world.mention("fix it")
    await world.until(lambda: world.chat_of(allowed) is not None)


async def test_guests_are_refused_unless_allowed(world: World) -> None:
    """Guests can't start chats by default; BRIDGE_ALLOW_GUESTS=true lets them."""
    world.slack.add_user(GUEST, "guest", is_ultra_restricted=True)
    refused = await world.mention("fix it", user=GUEST)
    await world.until(lambda: whispered(world, GUEST, "Guests of this workspace"))
    assert world.chat_of(refused) is None
    await restart(world, allow_guests=True)
    allowed = await world.mention("fix it now", user=GUEST)
    await world.until(lambda: world.chat_of(allowed) is not None)


async def test_people_from_other_organizations_are_refused_unless_allowed(world: World) -> None:
    """A Slack Connect user can't start chats by default; BRIDGE_ALLOW_EXTERNAL_USERS=true lets them."""
    world.slack.add_user(OUTSIDER, "outsider", team_id="T0PARTNER")
    refused = await world.mention("fix it", user=OUTSIDER)
    await world.until(lambda: whispered(world, OUTSIDER, "other organizations"))
    assert world.chat_of(refused) is None
    await restart(world, allow_external_users=True)
    allowed = await world.mention("fix it now", user=OUTSIDER)
    await world.until(lambda: world.chat_of(allowed) is not None)


async def test_follow_up_from_someone_not_allowed_is_refused(world: World) -> None:
    """In shared mode only people allowed to start chats may add to one; others are told privately."""
    await restart(world, allowed_users=(world.slack.alice,))
    root = await world.mention("fix the login bug")
    await world.until_idle_and_shown(root)
    await world.reply(root, "drop the database", user=world.slack.bob)
    await world.until(lambda: whispered(world, world.slack.bob, "not among the people allowed"))
    assert await left_to_replay(world) == []
    assert sum(1 for m in world.chat_of(root).messages if m["role"] == "user") == 1


async def test_anyone_allowed_may_follow_up_in_shared_mode(world: World) -> None:
    """By default a colleague's reply in the thread reaches the agent (shared identity)."""
    world.coder.agent = lambda prompt: [Text(f"Echo: {prompt}")]
    root = await world.mention("start")
    await world.until_idle_and_shown(root)
    await world.reply(root, "from bob", user=world.slack.bob)
    await world.until(lambda: "Echo: from bob" in world.bot_texts(root))


async def _busy_chat(world: World) -> tuple[str, asyncio.Event]:
    gate = asyncio.Event()
    world.coder.agent = lambda prompt: [Text("Working, "), Gate(gate), Text("done.")]
    root = await world.mention("long job")
    await world.until(lambda: "Working, " in world.bot_texts(root))
    return root, gate


async def test_an_admin_may_control_any_chat(world: World) -> None:
    """Someone in BRIDGE_ADMINS (here through a user group) can stop a chat another person started."""
    world.slack.add_usergroup("S0ADMINS", "admins", [world.slack.bob])
    await restart(world, admins=("S0ADMINS",))
    root, _ = await _busy_chat(world)
    await world.slack.react(world.slack.bob, world.slack.general, root, "octagonal_sign")
    await world.until(lambda: world.chat_of(root).status == "waiting")
    await world.until(lambda: any("Stopped the agent at <@U0BOB>" in t for t in world.bot_texts(root)))


async def test_channel_control_lets_colleagues_stop_the_agent(world: World) -> None:
    """With BRIDGE_CONTROL=channel anyone allowed in the channel controls the chat, but not a guest."""
    world.slack.add_user(GUEST, "guest", is_restricted=True)
    await restart(world, control="channel")
    root, _ = await _busy_chat(world)
    await world.slack.react(GUEST, world.slack.general, root, "octagonal_sign")
    await world.until(lambda: whispered(world, GUEST, "Guests of this workspace"))
    assert world.chat_of(root).status == "running"
    await world.slack.react(world.slack.bob, world.slack.general, root, "octagonal_sign")
    await world.until(lambda: world.chat_of(root).status == "waiting")


async def test_a_requester_loses_control_once_the_channel_is_no_longer_served(world: World) -> None:
    """The access policy is asked at the time of the act, for the requester too: once the operator
    takes the channel off BRIDGE_ALLOWED_CHANNELS, the chat's requester can no longer stop it."""
    world.slack.add_channel(ENG, "eng")
    root, gate = await _busy_chat(world)
    requests = len(world.coder.requests)
    await restart(world, allowed_channels=(ENG,))
    await world.slack.react(world.slack.alice, world.slack.general, root, "octagonal_sign")
    await world.until(lambda: whispered(world, world.slack.alice, "I don't take tasks in this channel"))
    assert not any("Stopped" in t for t in world.bot_texts(root))
    assert not any(r.path.endswith("/interrupt") for r in world.coder.requests[requests:])
    gate.set()


async def test_directory_answers_are_cached_for_a_while() -> None:
    """users.info and usergroups.users.list are asked once per person or group per BRIDGE_DIRECTORY_TTL."""
    now = [0.0]
    async with SlackSim() as slack:
        slack.add_usergroup("S0ENG", "eng", [slack.alice])
        client = AsyncWebClient(token=slack.bot_token, base_url=slack.api_url)
        directory = WebDirectory(client, Metrics(), SlackLimits(), ttl=60, clock=lambda: now[0])
        for _ in range(3):
            user = await directory.user(slack.alice)
            assert user is not None
            assert user.team_id == slack.team_id
            assert await directory.group_members("S0ENG") == {slack.alice}
        assert len(slack.calls_to("users.info")) == 1
        assert len(slack.calls_to("usergroups.users.list")) == 1
        now[0] = 61.0
        await directory.user(slack.alice)
        assert len(slack.calls_to("users.info")) == 2
        assert await directory.user("U0NOBODY") is None, "someone Slack doesn't show counts as unknown"
        assert await directory.group_members("S0GONE") == frozenset()


async def test_people_asked_about_together_are_looked_up_once() -> None:
    """Fifty mentions by one person at once, their answer expired: one users.info call, not fifty
    calls queued for Tier 4 tokens (the last one waited 25 s in ``bench/busy.py``)."""
    async with SlackSim() as slack:
        client = AsyncWebClient(token=slack.bot_token, base_url=slack.api_url)
        directory = WebDirectory(client, Metrics(), SlackLimits(), ttl=60)
        users = await asyncio.gather(*(directory.user(slack.alice) for _ in range(50)))
        groups = await asyncio.gather(*(directory.group_members("S0GONE") for _ in range(5)))
        assert {u.id for u in users if u is not None} == {slack.alice}
        assert groups == [frozenset()] * 5
        assert len(slack.calls_to("users.info")) == 1
        assert len(slack.calls_to("usergroups.users.list")) == 1


async def test_a_failed_claim_gives_its_author_no_rights_over_the_chat_started_after_it(world: World) -> None:
    """Bob's mention without a task fails; Alice then starts the thread's chat: she is its requester."""
    slack = world.slack
    root = await slack.user_says(slack.alice, slack.general, "the login page is slow")
    await world.reply(root, f"<@{slack.bot_user_id}>", user=slack.bob)
    await world.until(lambda: any("Tell me what to do" in t for t in world.bot_texts(root)))
    await world.reply(root, f"<@{slack.bot_user_id}> profile it")
    await world.until_idle_and_shown(root)
    await world.until(lambda: any(t.startswith(f"<@{slack.alice}> ✅") for t in world.bot_texts(root)))
    assert not any(t.startswith(f"<@{slack.bob}>") for t in world.bot_texts(root)), "done goes to Alice"
    await slack.react(slack.bob, slack.general, root, "file_cabinet")
    await world.until(lambda: whispered(world, slack.bob, f"Only <@{slack.alice}>, who started this chat"))
    assert not world.chat_of(root).archived
    await slack.react(slack.alice, slack.general, root, "octagonal_sign")
    await world.until(lambda: any("Stopped the agent at <@U0ALICE>" in t for t in world.bot_texts(root)))
    assert not slack.ephemerals(slack.alice), "Alice is never told she may not control her chat"


async def claim_for_another_replica(world: World, channel: str, root: str, user: str) -> None:
    """The thread's chat is being created elsewhere (``user``'s mention ``root`` claimed the thread,
    no chat yet), as by another replica or a creation a crash cut short."""
    assert world.bridge is not None
    async with world.bridge.db.unit() as session:
        link = await repo.claim_thread(
            session, team_id=world.slack.team_id, channel_id=channel, thread_ts=root, requester_user_id=user
        )
        assert link is not None
        assert link.id is not None
        await repo.claim_inbound(session, link_id=link.id, channel_id=channel, ts=root, user_id=user)


async def test_a_guests_mention_in_a_thread_being_set_up_is_refused(world: World) -> None:
    """A guest's mention in a thread whose chat another replica is creating asks the policy: refused."""
    world.slack.add_user(GUEST, "guest", is_restricted=True)
    root = await world.slack.user_says(world.slack.alice, world.slack.general, "CI is red")
    await claim_for_another_replica(world, world.slack.general, root, world.slack.alice)
    await world.reply(root, f"<@{world.slack.bot_user_id}> print the session token", user=GUEST)
    await world.until(lambda: whispered(world, GUEST, "Guests of this workspace"))
    await world.reply(root, f"<@{world.slack.bot_user_id}> fix it", user=world.slack.bob)
    await world.until(lambda: any("still being set up" in t for t in world.bot_texts(root)))
    assert world.coder.chats == {}, "nobody's words started a chat in a thread claimed by another"


async def test_a_creation_resumed_after_a_crash_asks_the_policy_again(world: World) -> None:
    """A mention whose chat creation a stop cut short is resumed only if its author may still start chats."""
    slack = world.slack
    root = await slack.user_says(slack.bob, slack.general, "placeholder")
    await claim_for_another_replica(world, slack.general, root, slack.bob)
    message = next(d.payload["event"] for d in slack.deliveries if d.payload["event"].get("ts") == root)
    mention = {**message, "type": "app_mention", "text": f"<@{slack.bot_user_id}> rotate the keys"}
    mention.pop("subtype", None)
    await restart(world, allowed_users=(slack.alice,))
    await slack.deliver_event(mention)
    await world.until(lambda: whispered(world, slack.bob, "not among the people allowed"))
    assert world.coder.chats == {}
