"""A bridge installed through OAuth (no ``SLACK_BOT_TOKEN``) answers in every workspace it is
installed in: two separate workspaces, each installed through ``/slack/install`` and so each with a
bot user and token of its own, are answered side by side with their own tokens, the bot's own posts
in either are no follow-ups, an uninstalled workspace is refused while the other goes on, and a
restart follows a chat again with its workspace's token."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from bridge.sim.coder import CoderSim
from bridge.sim.coder_agent import Gate, Step, Text
from bridge.sim.sender import Delivery
from bridge.sim.slack import SlackSim
from bridge.sim.slack_oauth import team_bot
from tests.integration.conftest import (
    CODER_TOKEN,
    SIGNING_SECRET,
    World,
    until_logged,
    user_texts,
)
from tests.integration.test_oauth import NOT_INSTALLED, Installing, distribution_settings

SECOND = "T0002"
TWO = "C0TWO"  # a channel of the second workspace
CAROL = "U0CAROL"  # a member of the second workspace
SECOND_BOT, SECOND_BOT_ID = team_bot(SECOND)


@dataclass
class Installed:
    """The world, and the bot token each workspace's install got from Slack."""

    world: World
    tokens: dict[str, str]

    async def mention_two(self, words: str) -> str:
        """Carol mentions workspace two's bot in its channel; the thread's root ts."""
        return await self.world.slack.user_says(CAROL, TWO, f"<@{SECOND_BOT}> {words}")

    def posts_in(self, channel: str) -> list[tuple[str | None, str, bool]]:
        """(token, installation, ok) of each ``chat.postMessage`` into ``channel``."""
        calls = self.world.slack.calls_to("chat.postMessage")
        return [(c.token, c.installation, c.ok) for c in calls if c.params.get("channel") == channel]


async def _install(world: World, query: str = "") -> str:
    """Install through the real flow (a browser through ``/slack/install``); the bot token issued."""
    assert world.bridge is not None
    before = set(world.slack.oauth.grants)
    status, _ = await Installing(world.slack, world.bridge).install(query)
    assert status == 200
    (token,) = set(world.slack.oauth.grants) - before
    return token


@pytest.fixture
async def installed(database_url: str) -> AsyncIterator[Installed]:
    """A bridge in distribution mode, installed into the simulated workspace and a separate second one."""
    async with (
        CoderSim(tokens={CODER_TOKEN: "alice"}, part_interval=0.002, generation="v2") as coder,
        SlackSim(signing_secret=SIGNING_SECRET, time_scale=0.05) as slack,
    ):
        slack.add_team(SECOND, "Second")
        slack.add_user(CAROL, "carol", team_id=SECOND, channels=())
        slack.add_channel(TWO, "two", members=(CAROL, SECOND_BOT), team=SECOND)
        world = World(slack=slack, coder=coder, settings=distribution_settings(slack, coder, database_url))
        bridge = await world.start_bridge()
        slack.oauth.redirect_url = f"http://127.0.0.1:{bridge.port}/slack/oauth_redirect"
        try:
            first = await _install(world)
            second = await _install(world, f"?team={SECOND}")
            yield Installed(world, {slack.team_id: first, SECOND: second})
        finally:
            await world.stop_bridge()


async def test_each_workspace_is_answered_with_its_own_bot(installed: Installed) -> None:
    world, slack = installed.world, installed.world.slack
    one = await world.mention("hello from one")
    two = await installed.mention_two("hello from two")
    await world.until(lambda: bool(world.replies(one)) and bool(world.replies(two, TWO)))

    assert {(token, ok) for token, _, ok in installed.posts_in(TWO)} == {(installed.tokens[SECOND], True)}
    assert {i for _, i, _ in installed.posts_in(TWO)} == {SECOND}
    assert {(token, ok) for token, _, ok in installed.posts_in(slack.general)} == {
        (installed.tokens[slack.team_id], True)
    }
    assert {m.bot_id for m in world.bot_messages(two, TWO)} == {SECOND_BOT_ID}
    # Each workspace's mention of its own bot is stripped before the agent reads it.
    assert user_texts(world.chat_of(two, TWO)) == ["hello from two"]
    assert user_texts(world.chat_of(one)) == ["hello from one"]


async def test_a_follow_up_in_workspace_two_is_relayed_and_the_bots_posts_are_not(
    installed: Installed,
) -> None:
    world = installed.world
    two = await installed.mention_two("start")
    await world.until(lambda: bool(world.replies(two, TWO)))
    await world.reply(two, "and more", user=CAROL, channel=TWO)
    chat = world.chat_of(two, TWO)
    # Queued while the first turn still works, it reaches the chat as its next turn.
    await world.until(lambda: user_texts(chat) == ["start", "and more"])
    await world.until(lambda: chat.status == "waiting" and len(world.replies(two, TWO)) >= 2)

    def echoes() -> list[Delivery]:
        """The deliveries of workspace two's bot's own posts and edits."""
        events = [(d, d.payload.get("event", {})) for d in world.slack.deliveries]
        return [
            d
            for d, event in events
            if SECOND_BOT_ID in (event.get("bot_id"), event.get("message", {}).get("bot_id"))
        ]

    await world.until(lambda: any(d.done for d in echoes()))
    assert {d.status for d in echoes() if d.done} == {200}  # acknowledged, nothing relayed
    # No call went with a token that may not act there (a reaction swap may meet ``no_reaction``).
    refused = {"channel_not_found", "not_in_channel", "invalid_auth", "not_authed", "token_revoked"}
    assert not [c for c in world.slack.calls if c.error in refused]


async def test_an_uninstalled_workspace_is_refused_and_the_other_goes_on(installed: Installed) -> None:
    world, slack = installed.world, installed.world.slack
    assert world.bridge is not None
    installations = Installing(slack, world.bridge).installations()
    async with until_logged(
        "bridge.slack.oauth", f"removed from workspace -/{SECOND}: its installation is deleted"
    ):
        delivery = await slack.uninstall_app(SECOND)
        assert delivery.status == 200
    assert await installations.find_bot(None, SECOND) is None
    assert await installations.find_bot(None, slack.team_id) is not None
    await installed.mention_two("still there?")
    mention = [d for d in slack.deliveries if d.event_type == "app_mention"][-1]
    assert NOT_INSTALLED in mention.response_body

    one = await world.mention("and here?")
    await world.until(lambda: bool(world.replies(one)))
    assert not world.slack.thread(TWO, mention.payload["event"]["ts"])[1:]


async def test_a_restart_follows_a_chat_of_workspace_two_with_its_token(installed: Installed) -> None:
    world = installed.world
    gate = asyncio.Event()

    def script(prompt: str) -> list[Step]:
        return [Text("Busy, "), Gate(gate), Text("done.")]

    world.coder.agent = script
    two = await installed.mention_two("long task")
    await world.until(lambda: "Busy, " in world.bot_texts(two, TWO))
    await world.stop_bridge()
    calls_before = len(world.slack.calls)
    await world.start_bridge()
    gate.set()
    await world.until(lambda: any("done." in text for text in world.bot_texts(two, TWO)))

    after = [c for c in world.slack.calls[calls_before:] if c.params.get("channel") == TWO]
    assert after
    assert {(c.token, c.ok) for c in after} == {(installed.tokens[SECOND], True)}
