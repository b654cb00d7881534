"""StreamingPoster against the Slack simulator: appends, retries without doubling, and its fallbacks."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from slack_sdk.web.async_client import AsyncWebClient

from bridge.metrics import Metrics
from bridge.relay.content import Plan, Step
from bridge.relay.limits import SlackLimits
from bridge.relay.ports import Button, SlackRateLimited
from bridge.relay.slots import PostTag, SlotKey
from bridge.sim.slack import SlackSim
from bridge.slack.poster import WebPoster
from bridge.slack.streaming import StreamingPoster

_DRAFT = PostTag(1, SlotKey.draft())


def _card_tag(turn_id: int) -> PostTag:
    return PostTag(1, SlotKey.card(turn_id))


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
    ts = await poster.post(slack.general, root, "Hello", key=_DRAFT)
    slack.fail_next("chat.appendStream", error="ratelimited", status=429, retry_after=0.01)
    with pytest.raises(SlackRateLimited):
        await poster.update(slack.general, ts, "Hello, wor", key=_DRAFT)
    await poster.update(slack.general, ts, "Hello, world", key=_DRAFT)
    await poster.update(
        slack.general, ts, "Hello, world", key=PostTag(1, SlotKey.reply_after(3))
    )  # renamed, nothing new
    await poster.post(slack.general, root, "Done.", key=PostTag(1, SlotKey.outcome(2)))  # the thread moves on
    message = slack.message(slack.general, ts)
    assert message is not None
    assert (message.visible_text, message.streaming, message.edited) == ("Hello, world", False, False)
    assert message.metadata is not None
    assert message.metadata["event_payload"] == {"key": "1:after:3"}


async def test_a_rewritten_draft_ends_the_stream_and_edits(slack: SlackSim, poster: StreamingPoster) -> None:
    """A text that does not continue the streamed one replaces it with chat.update."""
    root = await slack.user_says(slack.alice, slack.general, "go")
    ts = await poster.post(slack.general, root, "Draft one", key=_DRAFT)
    await poster.update(slack.general, ts, "Draft", key=_DRAFT)  # a replay, shorter: nothing to do
    await poster.update(slack.general, ts, "Another text", key=_DRAFT)
    message = slack.message(slack.general, ts)
    assert message is not None
    assert (message.visible_text, message.streaming, message.edited) == ("Another text", False, True)
    assert len(slack.calls_to("chat.appendStream")) == 0


async def test_a_draft_cut_shorter_is_edited_to_its_cut_once_stopped(
    slack: SlackSim, poster: StreamingPoster
) -> None:
    """A split moved the end of a streamed draft (the start of a table row) into the next message:
    the stream cannot take text back, so once it stops its message is edited to the shorter text."""
    root = await slack.user_says(slack.alice, slack.general, "go")
    ts = await poster.post(slack.general, root, "| a |\n| b |\n| c", key=_DRAFT)
    await poster.update(slack.general, ts, "| a |\n| b |\n", key=_DRAFT)  # row c went to the next part
    await poster.post(slack.general, root, "| c |", key=PostTag(1, SlotKey.draft().part(1)))
    message = slack.message(slack.general, ts)
    assert message is not None
    assert (message.visible_text, message.streaming, message.edited) == ("| a |\n| b |\n", False, True)


async def test_a_draft_replayed_shorter_that_grows_again_is_not_edited(
    slack: SlackSim, poster: StreamingPoster
) -> None:
    """A reconnect replays a streamed draft from less and it grows again as it was: no edit."""
    root = await slack.user_says(slack.alice, slack.general, "go")
    ts = await poster.post(slack.general, root, "Look", key=_DRAFT)
    await poster.update(slack.general, ts, "Lo", key=_DRAFT)
    await poster.update(slack.general, ts, "Looking", key=_DRAFT)
    await poster.post(slack.general, root, "Done.", key=PostTag(1, SlotKey.outcome(2)))
    message = slack.message(slack.general, ts)
    assert message is not None
    assert (message.visible_text, message.edited) == ("Looking", False)


async def test_a_stream_slack_ended_is_finished_in_place(slack: SlackSim, poster: StreamingPoster) -> None:
    """message_not_in_streaming_state (a user's Stop, a timeout): the full text goes out with chat.update."""
    root = await slack.user_says(slack.alice, slack.general, "go")
    ts = await poster.post(slack.general, root, "Half", key=_DRAFT)
    message = slack.message(slack.general, ts)
    assert message is not None
    message.streaming = False  # what Slack does when the stream times out server-side
    await poster.update(slack.general, ts, "Half and the rest", key=_DRAFT)
    assert (message.visible_text, message.edited) == ("Half and the rest", True)
    later = await poster.post(slack.general, root, "A second reply", key=_DRAFT)
    assert slack.calls_to("chat.startStream")[-1].params["thread_ts"] == root, "streaming goes on"
    assert poster.enabled
    assert later != ts


def _plan(title: str, *states: str, final: bool = False) -> Plan:
    """A card's plan with one step per state: ``read_file a.py``, ``execute make``…"""
    calls = [("read_file", "a.py"), ("execute", "make"), ("edit_file", "b.py")]
    steps = tuple(Step(f"toolu_{i}", *calls[i], state) for i, state in enumerate(states))
    icon = {"Done": "✅", "Failed": "❌"}.get(title, "⏳")
    return Plan(title, steps, f"{icon} {title} · {len(steps)} tools", final=final)


def _card(plan: Plan) -> str:
    """The card's text, as the edit-in-place path shows it."""
    return "\n".join([plan.head, *(f"- {s.name} `{s.summary}` ({s.state})" for s in plan.steps)])


async def test_a_card_streams_as_a_plan_sending_only_changes(
    slack: SlackSim, poster: StreamingPoster
) -> None:
    """A card's plan goes out as plan and task chunks, each call only what changed, alongside the reply
    streams; a final plan stops it with the card's first line, once, though the first stop got a 429."""
    root = await slack.user_says(slack.alice, slack.general, "go")
    reply = await poster.post(slack.general, root, "Looking", key=_DRAFT)
    first = _plan("Working", "running")
    ts = await poster.post(slack.general, root, _card(first), key=_card_tag(2), plan=first)
    [start] = [c for c in slack.calls_to("chat.startStream") if c.params.get("task_display_mode") == "plan"]
    assert start.params["chunks"] == [
        {"type": "plan_update", "title": "Working"},
        {"type": "task_update", "id": "toolu_0", "title": "read_file a.py", "status": "in_progress"},
    ]
    second = _plan("Working", "ok", "running")
    await poster.update(slack.general, ts, _card(second), key=_card_tag(2), plan=second)
    await poster.update(slack.general, ts, _card(second) + " ", key=_card_tag(2), plan=second)
    [append] = slack.calls_to("chat.appendStream")
    assert append.params["chunks"] == [
        {"type": "task_update", "id": "toolu_0", "title": "read_file a.py", "status": "complete"},
        {"type": "task_update", "id": "toolu_1", "title": "execute make", "status": "in_progress"},
    ]
    message, card = slack.message(slack.general, reply), slack.message(slack.general, ts)
    assert message is not None
    assert card is not None
    assert message.streaming, "the card's calls leave the reply open"
    await poster.post(slack.general, root, "Next reply", key=_DRAFT)
    assert (message.streaming, card.streaming) == (False, True), "a new reply ends the reply, not the card"
    done = _plan("Done", "ok", "error", final=True)
    slack.fail_next("chat.stopStream", error="ratelimited", status=429, retry_after=0.01)
    with pytest.raises(SlackRateLimited):
        await poster.update(slack.general, ts, _card(done), key=_card_tag(2), plan=done)
    await poster.update(slack.general, ts, _card(done), key=_card_tag(2), plan=done)
    assert (card.visible_text, card.streaming, card.edited) == ("✅ Done · 2 tools", False, False)
    assert card.chunks == [
        {"type": "task_update", "id": "toolu_0", "title": "read_file a.py", "status": "complete"},
        {"type": "plan_update", "title": "Done"},
        {"type": "task_update", "id": "toolu_1", "title": "execute make", "status": "error"},
    ]
    assert card.metadata is not None
    assert card.metadata["event_payload"] == {"key": "1:card:2"}


async def test_a_proposed_plan_shows_as_slacks_plan_with_its_buttons(
    slack: SlackSim, poster: StreamingPoster
) -> None:
    """A final plan with buttons (a plan the agent proposes) streams its steps as tasks and stops at
    once with its last line and the buttons; an edit of it later replaces it with its text."""
    root = await slack.user_says(slack.alice, slack.general, "plan it")
    steps = (Step("t-1", "Reproduce the bug", "", "pending"), Step("t-2", "Fix it", "", "pending"))
    plan = Plan("The agent's plan", steps, "Approve or revise.", final=True)
    buttons = (
        Button("plan_approve", "Approve", "c:t", style="primary"),
        Button("plan_revise", "Revise", "c:t"),
    )
    key = PostTag(1, SlotKey.plan("t"))
    ts = await poster.post(slack.general, root, "📋 the plan as text", key=key, buttons=buttons, plan=plan)
    [start] = slack.calls_to("chat.startStream")
    assert start.params["task_display_mode"] == "plan"
    assert start.params["chunks"] == [
        {"type": "plan_update", "title": "The agent's plan"},
        {"type": "task_update", "id": "t-1", "title": "Reproduce the bug", "status": "pending"},
        {"type": "task_update", "id": "t-2", "title": "Fix it", "status": "pending"},
    ]
    message = slack.message(slack.general, ts)
    assert message is not None
    assert (message.streaming, message.visible_text) == (False, "Approve or revise.")
    actions = [e["action_id"] for b in message.blocks if b["type"] == "actions" for e in b["elements"]]
    assert actions == ["plan_approve", "plan_revise"]
    assert message.metadata is not None
    assert message.metadata["event_payload"] == {"key": "1:plan:t"}
    await poster.update(slack.general, ts, "📋 the plan, approved", key=key)
    assert (message.visible_text, message.edited) == ("📋 the plan, approved", True)
    assert [b for b in message.blocks if b["type"] == "actions"] == []


async def test_a_card_stream_slack_ended_goes_on_as_text(slack: SlackSim, poster: StreamingPoster) -> None:
    """A card stream Slack ended (a timeout) is edited in place with the card's text from then on."""
    root = await slack.user_says(slack.alice, slack.general, "go")
    first = _plan("Working", "running")
    ts = await poster.post(slack.general, root, _card(first), key=_card_tag(2), plan=first)
    card = slack.message(slack.general, ts)
    assert card is not None
    card.streaming = False  # what Slack does when the stream times out server-side
    second = _plan("Working", "ok", "running")
    await poster.update(slack.general, ts, _card(second), key=_card_tag(2), plan=second)
    done = _plan("Done", "ok", "ok", final=True)
    await poster.update(slack.general, ts, _card(done), key=_card_tag(2), plan=done)
    assert (card.visible_text, card.chunks, card.edited) == (_card(done), [], True)
    assert [c.ok for c in slack.calls_to("chat.appendStream")] == [False]
    assert not slack.calls_to("chat.stopStream")
    assert poster.plans, "one stream ended: the next card streams again"


async def test_refused_chunks_make_cards_text_and_replies_stream_on(
    slack: SlackSim, poster: StreamingPoster
) -> None:
    """invalid_chunks on a card's append: that card and every later one are text; replies still stream.
    A card that is over before it shows is text too (streaming it would only cost calls)."""
    slack.rate_limits_enabled = False  # more posts than a channel's burst: pacing is the outbox's job
    root = await slack.user_says(slack.alice, slack.general, "go")
    over = _plan("Done", "ok", final=True)
    ts = await poster.post(slack.general, root, _card(over), key=_card_tag(1), plan=over)
    assert not slack.calls_to("chat.startStream")
    first = _plan("Working", "running")
    ts = await poster.post(slack.general, root, _card(first), key=_card_tag(2), plan=first)
    slack.fail_next("chat.appendStream", error="invalid_chunks")
    second = _plan("Working", "ok", "running")
    await poster.update(slack.general, ts, _card(second), key=_card_tag(2), plan=second)
    card = slack.message(slack.general, ts)
    assert card is not None
    assert (card.visible_text, card.chunks) == (_card(second), [])
    assert (poster.plans, poster.enabled) == (False, True)
    later = await poster.post(slack.general, root, _card(first), key=_card_tag(3), plan=first)
    assert slack.calls_to("chat.postMessage")[-1].ok
    assert len(slack.calls_to("chat.startStream")) == 1
    await poster.post(slack.general, root, "A reply", key=_DRAFT)
    assert len(slack.calls_to("chat.startStream")) == 2, "replies still stream"
    assert later != ts
