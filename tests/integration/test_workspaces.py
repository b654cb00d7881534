"""One bridge, an org-wide install on Enterprise Grid: two workspaces of one org served side by side,
each with its own Slack budgets, and people of the org members everywhere while a Slack Connect
partner stays external."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from bridge.db import repo
from bridge.sim.coder import CoderSim
from bridge.sim.coder_agent import Gate, Step, Text
from bridge.sim.slack import SlackSim
from bridge.sim.slack_limits import Limit, RateLimits
from tests.integration.conftest import CODER_TOKEN, SIGNING_SECRET, World, make_settings

ORG = "E0ORG"
SECOND = "T0002"
TWO = "C0TWO"  # a channel of the second workspace
CAROL = "W0CAROL"  # a member of the second workspace
PARTNER = "U0PARTNER"  # from another organisation, in a Slack Connect channel
SHARED = "C0SHARED"


@pytest.fixture
async def org(database_url: str) -> AsyncIterator[World]:
    """The simulated org: the default workspace and a second one, the app installed org-wide."""
    async with (
        CoderSim(tokens={CODER_TOKEN: "alice"}, part_interval=0.002, generation="v2") as coder,
        SlackSim(
            signing_secret=SIGNING_SECRET, time_scale=0.05, enterprise_id=ORG, org_install=True
        ) as slack,
    ):
        slack.add_team(SECOND, "Second")
        slack.add_user(CAROL, "carol", team_id=SECOND, channels=())
        slack.add_channel(TWO, "two", members=(CAROL, slack.bot_user_id), team=SECOND)
        slack.add_user(PARTNER, "partner", team_id="T0OTHER", channels=())
        slack.add_channel(
            SHARED, "shared", members=(slack.alice, PARTNER, slack.bot_user_id), is_ext_shared=True
        )
        world = World(slack=slack, coder=coder, settings=make_settings(slack, coder, database_url))
        yield world
        await world.stop_bridge()


def _told(world: World, user: str, words: str) -> list[str]:
    """What the bridge told ``user`` privately that says ``words``."""
    texts = [e.markdown_text or e.text for e in world.slack.ephemerals(user)]
    return [text for text in texts if words in text]


def _refused(world: World, user: str) -> bool:
    return bool(_told(world, user, "other organizations"))


async def test_mentions_in_both_workspaces_are_answered_in_their_channels(org: World) -> None:
    """Under the org's one token, a mention in each workspace gets its answer in its own channel,
    each thread's link keeps its workspace, and no call met a conversation its token cannot see."""
    await org.start_bridge()
    first = await org.mention("hello from one")
    second = await org.mention("hello from two", user=CAROL, channel=TWO)
    await org.until(lambda: bool(org.replies(first)) and bool(org.replies(second, TWO)))
    assert org.replies(second, TWO)
    assert not org.slack.thread(org.slack.general, second)
    posts = org.slack.calls_to("chat.postMessage")
    assert {c.params.get("channel") for c in posts} >= {org.slack.general, TWO}
    assert {c.installation for c in posts} == {ORG}
    assert not [c for c in org.slack.calls if c.error in ("channel_not_found", "not_in_channel")]
    assert org.bridge is not None
    async with org.bridge.db.unit() as session:
        link = await repo.find_link_by_thread(session, team_id=SECOND, channel_id=TWO, thread_ts=second)
    assert link is not None
    assert link.enterprise_id == ORG


async def test_a_burst_in_one_workspace_does_not_hold_back_the_other(org: World) -> None:
    """Slack counts new messages per workspace: a burst that runs workspace one out of its budget
    (the simulator answers 429) leaves workspace two's posts untouched, and the bridge paces each
    workspace with budgets of its own."""
    org.slack.rate_limits = RateLimits(post_message_workspace=Limit(per_minute=3, burst=5))
    await org.start_bridge()
    burst = [await org.mention(f"task {n}") for n in range(6)]
    await org.until(lambda: org.slack.ratelimited_count > 0)
    other = await org.mention("meanwhile", user=CAROL, channel=TWO)
    await org.until(lambda: bool(org.replies(other, TWO)))
    posts = org.slack.calls_to("chat.postMessage")
    in_two = [c for c in posts if c.params.get("channel") == TWO]
    assert in_two
    assert all(c.ok for c in in_two), "workspace two never met workspace one's limit"
    await org.until(lambda: all(org.replies(root) for root in burst))
    posts = org.slack.calls_to("chat.postMessage")
    last_in_one = max(i for i, c in enumerate(posts) if c.params.get("channel") == org.slack.general)
    assert posts.index(in_two[-1]) < last_in_one, "workspace two waited for workspace one's burst"
    assert org.bridge is not None
    assert org.bridge.limits is not None
    budgets = org.bridge.limits.workspaces
    assert {org.slack.team_id, SECOND} <= set(budgets)
    assert budgets[org.slack.team_id] is not budgets[SECOND]


async def test_a_member_of_another_workspace_of_the_org_may_use_a_thread(org: World) -> None:
    """Under an org-wide install a person of workspace two is no outsider in workspace one: their
    mention there starts a chat; a Slack Connect partner is still refused."""
    org.slack.workspace.channels[org.slack.general].members.add(CAROL)
    await org.start_bridge()
    root = await org.mention("from the other workspace", user=CAROL)
    await org.until(lambda: bool(org.replies(root)))
    assert not _refused(org, CAROL)
    await org.mention("let me in", user=PARTNER, channel=SHARED)
    await org.until(lambda: _refused(org, PARTNER))


async def test_allowed_teams_keep_other_workspaces_out(org: World) -> None:
    """``BRIDGE_ALLOWED_TEAMS`` naming workspace one only: a mention in workspace two is refused, and
    so is a member of workspace two in workspace one's channel; workspace one's people are served."""
    org.slack.workspace.channels[org.slack.general].members.add(CAROL)
    await org.start_bridge(allowed_teams=(org.slack.team_id,))
    await org.mention("in two", user=CAROL, channel=TWO)
    await org.mention("in one", user=CAROL)
    served = await org.mention("mine")
    await org.until(lambda: bool(org.replies(served)))

    await org.until(lambda: len(_told(org, CAROL, "limited it to certain workspaces")) == 2)
    whispers = [c for c in org.slack.calls_to("chat.postEphemeral") if c.params.get("user") == CAROL]
    assert {c.params.get("channel") for c in whispers} == {TWO, org.slack.general}


async def test_a_chat_in_workspace_two_is_followed_again_after_a_restart(org: World) -> None:
    """A busy chat of workspace two outlives a restart: followed again from its stored link, not from
    any Slack request, its thread's calls are still made for workspace two (no call lacks one)."""
    gate = asyncio.Event()

    def script(prompt: str) -> list[Step]:
        return [Text("Busy, "), Gate(gate), Text("done.")]

    org.coder.agent = script
    await org.start_bridge()
    root = await org.mention("first", user=CAROL, channel=TWO)
    await org.until(lambda: "Busy, " in org.bot_texts(root, TWO))
    await org.stop_bridge()
    await org.start_bridge()
    gate.set()
    await org.until(lambda: any("done." in text for text in org.bot_texts(root, TWO)))
    assert not [c for c in org.slack.calls if not c.ok and c.status != 429]


async def test_a_member_of_workspace_two_gets_a_home_tab_with_their_chats(org: World) -> None:
    """The App Home tab is published for the workspace it was opened in, and kept current there."""
    await org.start_bridge()
    root = await org.mention("mine", user=CAROL, channel=TWO)
    await org.until(lambda: bool(org.replies(root, TWO)))
    await org.slack.open_home(CAROL)
    await org.until(lambda: "mine" in str(org.slack.home_view(CAROL)))
    publishes = org.slack.calls_to("views.publish")
    assert publishes
    assert all(c.ok for c in publishes)


async def test_a_chat_labelled_for_workspace_two_is_followed_there(org: World) -> None:
    """A chat made in Coder for a channel of workspace two (``slack_team``) gets its thread there;
    under an org-wide install a label naming no workspace, or another org's, is not followed."""
    await org.start_bridge()
    await org.until_settled()
    nowhere = org.coder.create_elsewhere("alice", "no team", labels={"slack_channel": TWO})
    chat = org.coder.create_elsewhere("alice", "for two", labels={"slack_channel": TWO, "slack_team": SECOND})

    def followed() -> bool:
        return any(chat.id in m.visible_text for m in org.slack.history(TWO) if m.bot_id)

    await org.until(followed)
    assert not any(nowhere.id in m.visible_text for m in org.slack.history(TWO) if m.bot_id)
    posts = [c for c in org.slack.calls_to("chat.postMessage") if c.params.get("channel") == TWO]
    assert all(c.ok for c in posts)
