"""Slack budgets across restarts and replicas: the pace learned from Slack's 429 is stored and read
back by another limiter on the same database, and live replicas split the workspace's budgets."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from uuid import uuid4

import pytest
from slack_sdk.web.async_client import AsyncWebClient

from bridge.db.engine import Database
from bridge.db.migrate import upgrade
from bridge.metrics import Metrics
from bridge.relay.budgets import SharedBudgets
from bridge.relay.limits import SlackLimits
from bridge.relay.pace import FLOOR, HEADROOM, Learned
from bridge.relay.ports import SlackRateLimited
from bridge.sim.slack import SlackSim
from bridge.sim.slack_limits import Limit, RateLimits
from bridge.slack.poster import budgeted_call

SCALE = 20.0
"""The bridge's budgets scaled to the simulator's time (a Slack minute lasts 3 s)."""
POSTERS = 24


@contextlib.asynccontextmanager
async def database(url: str) -> AsyncIterator[Database]:
    db = Database(url)
    await upgrade(db)
    try:
        yield db
    finally:
        await db.dispose()


def budgets(db: Database, limits: SlackLimits, team_id: str) -> SharedBudgets:
    return SharedBudgets(db, limits, replica_id=uuid4().hex, team_id=team_id, interval=60.0)


async def post_until_refused(slack: SlackSim, limits: SlackLimits) -> None:
    """Posters in channels of their own post as fast as the budgets let them, until Slack's 429
    taught the pace of ``chat.postMessage`` its ceiling."""
    client = AsyncWebClient(token=slack.bot_token, base_url=slack.api_url)
    metrics = Metrics()
    pace = limits.paces["chat.postMessage"]

    async def poster(channel: str) -> None:
        while pace.learned.ceiling is None:
            with contextlib.suppress(SlackRateLimited):
                await budgeted_call(
                    limits,
                    metrics,
                    "chat.postMessage",
                    lambda: client.chat_postMessage(channel=channel, text="hi"),
                    channel=channel,
                )

    channels = [f"C0PACE{n:02d}" for n in range(POSTERS)]
    for channel in channels:
        slack.add_channel(channel, channel.lower())
    try:
        await asyncio.wait_for(asyncio.gather(*(poster(c) for c in channels)), 30)
    finally:
        if client.session is not None:
            await client.session.close()


async def test_the_pace_slack_refused_is_stored_and_read_back_by_another_limiter(database_url: str) -> None:
    """Slack caps new messages at 60 a minute for the workspace (unpublished): the bridge, starting
    from its guard of 300, meets a 429, keeps a ceiling its pace stays under, and a limiter started
    later on the same database (a restart, another replica) begins from that, not from the guard."""
    async with SlackSim(time_scale=1 / SCALE) as slack, database(database_url) as db:
        slack.rate_limits = RateLimits(post_message_workspace=Limit(per_minute=60, burst=3))
        first = SlackLimits(scale=SCALE)
        sync = budgets(db, first, slack.team_id)
        await sync.start()
        await post_until_refused(slack, first)
        learned = first.paces["chat.postMessage"].learned
        await sync.close()
        assert slack.ratelimited_count > 0
        assert learned.ceiling is not None
        assert learned.per_minute <= max(FLOOR, learned.ceiling * HEADROOM)

        second = SlackLimits(scale=SCALE)
        assert second.paces["chat.postMessage"].learned == Learned(300)
        again = budgets(db, second, slack.team_id)
        await again.start()
        try:
            assert second.paces["chat.postMessage"].learned == learned
            assert second.paces["chat.startStream"].learned == Learned(300), "learned per method"
        finally:
            await again.close()


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
async def test_live_replicas_share_the_workspaces_budgets(database_url: str) -> None:
    """Two replicas on one PostgreSQL database use half of every budget each; when one stops, the
    other takes the whole at its next beat. Another workspace's replica counts for its own only."""
    async with database(database_url) as db:
        one, two, elsewhere = SlackLimits(scale=SCALE), SlackLimits(scale=SCALE), SlackLimits(scale=SCALE)
        first, second = budgets(db, one, "T0001"), budgets(db, two, "T0001")
        other = budgets(db, elsewhere, "T0002")
        await first.start()
        await second.start()
        await other.start()
        await first.sync()
        assert (one.share, two.share, elsewhere.share) == (0.5, 0.5, 1.0)
        assert first.replicas == second.replicas == 2
        await second.close()
        await first.sync()
        assert one.share == 1.0
        await first.close()
        await other.close()
