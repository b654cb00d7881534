"""StreamingPoster against the Slack simulator: appends, retries without doubling, and its fallbacks."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from slack_sdk.web.async_client import AsyncWebClient

from bridge.metrics import Metrics
from bridge.relay.limits import SlackLimits
from bridge.relay.ports import SlackRateLimited
from bridge.sim.slack import SlackSim
from bridge.slack.poster import WebPoster
from bridge.slack.streaming import StreamingPoster


@pytest.fixture
async def slack() -> AsyncIterator[SlackSim]:
    async with SlackSim(time_scale=0.01) as sim:
        yield sim


@pytest.fixture
async def poster(slack: SlackSim) -> AsyncIterator[StreamingPoster]:
    client = AsyncWebClient(token=slack.bot_token, base_url=slack.api_url)
    metrics = Metrics()

    async def recipient(channel: str, thread_ts: str) -> tuple[str, str]:
        return slack.team_id, slack.alice

    yield StreamingPoster(
        WebPoster(client, metrics),
        client,
        metrics,
        SlackLimits(scale=100.0),
        recipient=recipient,
        session_status=lambda channel, thread_ts: None,
    )
    if client.session is not None:
        await client.session.close()


async def test_a_failed_append_is_sent_once_with_the_next(slack: SlackSim, poster: StreamingPoster) -> None:
    """A 429 on appendStream loses nothing and doubles nothing: the retry sends the held text once."""
    root = await slack.user_says(slack.alice, slack.general, "go")
    ts = await poster.post(slack.general, root, "Hello", key="1:draft")
    slack.fail_next("chat.appendStream", error="ratelimited", status=429, retry_after=0.01)
    with pytest.raises(SlackRateLimited):
        await poster.update(slack.general, ts, "Hello, wor", key="1:draft")
    await poster.update(slack.general, ts, "Hello, world", key="1:draft")
    await poster.update(slack.general, ts, "Hello, world", key="1:after:3")  # renamed, nothing new
    await poster.post(slack.general, root, "Done.", key="1:outcome:2")  # the thread moves on
    message = slack.message(slack.general, ts)
    assert message is not None
    assert (message.visible_text, message.streaming, message.edited) == ("Hello, world", False, False)
    assert message.metadata is not None
    assert message.metadata["event_payload"] == {"key": "1:after:3"}


async def test_a_rewritten_draft_ends_the_stream_and_edits(slack: SlackSim, poster: StreamingPoster) -> None:
    """A text that does not continue the streamed one replaces it with chat.update."""
    root = await slack.user_says(slack.alice, slack.general, "go")
    ts = await poster.post(slack.general, root, "Draft one", key="1:draft")
    await poster.update(slack.general, ts, "Draft", key="1:draft")  # a replay, shorter: nothing to do
    await poster.update(slack.general, ts, "Another text", key="1:draft")
    message = slack.message(slack.general, ts)
    assert message is not None
    assert (message.visible_text, message.streaming, message.edited) == ("Another text", False, True)
    assert len(slack.calls_to("chat.appendStream")) == 0


async def test_a_stream_slack_ended_is_finished_in_place(slack: SlackSim, poster: StreamingPoster) -> None:
    """message_not_in_streaming_state (a user's Stop, a timeout): the full text goes out with chat.update."""
    root = await slack.user_says(slack.alice, slack.general, "go")
    ts = await poster.post(slack.general, root, "Half", key="1:draft")
    message = slack.message(slack.general, ts)
    assert message is not None
    message.streaming = False  # what Slack does when the stream times out server-side
    await poster.update(slack.general, ts, "Half and the rest", key="1:draft")
    assert (message.visible_text, message.edited) == ("Half and the rest", True)
    later = await poster.post(slack.general, root, "A second reply", key="1:draft")
    assert slack.calls_to("chat.startStream")[-1].params["thread_ts"] == root, "streaming goes on"
    assert poster.enabled
    assert later != ts
