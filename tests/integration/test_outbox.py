"""The Slack output scheduler against the Slack simulator: one post, coalesced edits, 429s, renames."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

import pytest
from slack_sdk.web.async_client import AsyncWebClient
from sqlalchemy import delete, select

from bridge.db import repo
from bridge.db.engine import Database
from bridge.db.migrate import upgrade
from bridge.db.models import OutboxEntry, SlackMessage
from bridge.metrics import Metrics
from bridge.relay.limits import SlackLimits
from bridge.relay.outbox import Outbox, ThreadRef, final_text
from bridge.relay.output import ReactionWish
from bridge.sim.slack import SlackSim
from bridge.slack.poster import WebPoster


@dataclass
class Rig:
    slack: SlackSim
    db: Database
    client: AsyncWebClient
    ref: ThreadRef

    def outbox(self, **kwargs: float) -> Outbox:
        poster = WebPoster(self.client, Metrics())
        return Outbox(self.db, poster, limits=SlackLimits(scale=20.0), **kwargs)

    async def deliver_after_restart(self, keys: list[str]) -> int:
        """A new outbox, as after a restart, resumes the stored texts and shows ``keys``; returns how
        many threads it resumed."""
        again = self.outbox()
        try:
            resumed = await again.resume()
            await again.delivered(self.ref, keys, timeout=5)
        finally:
            await again.close()
        return resumed

    def texts(self, ref: ThreadRef | None = None) -> list[str]:
        ref = ref or self.ref
        return [m.visible_text for m in self.slack.thread(ref.channel, ref.thread_ts) if m.bot_id]

    async def thread(self, channel: str) -> ThreadRef:
        """Another linked thread, started by alice in ``channel``."""
        root = await self.slack.user_says(self.slack.alice, channel, "root")
        async with self.db.unit() as session:
            link = await repo.claim_thread(
                session, team_id=self.slack.team_id, channel_id=channel, thread_ts=root, requester_user_id="U"
            )
        assert link is not None
        assert link.id is not None
        return ThreadRef(link.id, channel, root)


@pytest.fixture
async def rig(tmp_path: object) -> AsyncIterator[Rig]:
    async with SlackSim(time_scale=0.05) as slack:
        db = Database(f"sqlite:///{tmp_path}/outbox.db")
        await upgrade(db)
        client = AsyncWebClient(token=slack.bot_token, base_url=slack.api_url)
        rig = Rig(slack, db, client, ThreadRef(0, slack.general, ""))
        rig.ref = await rig.thread(slack.general)
        try:
            yield rig
        finally:
            if client.session is not None:
                await client.session.close()
            await db.dispose()


async def test_edits_are_coalesced_and_the_final_text_wins(rig: Rig) -> None:
    """Many texts for one slot in quick succession cost one post and few edits, ending on the last."""
    outbox = rig.outbox(edit_interval=0.2)
    try:
        for n in range(1, 50):
            outbox.set_text(rig.ref, "after:1", "word " * n)
            await asyncio.sleep(0)
        outbox.set_text(rig.ref, "after:1", "the end", final=True)
        await outbox.delivered(rig.ref, ["after:1"], timeout=5)
        assert rig.texts() == ["the end"]
        calls = len(rig.slack.calls_to("chat.postMessage")) + len(rig.slack.calls_to("chat.update"))
        assert calls <= 4
    finally:
        await outbox.close()


async def test_slots_post_in_order(rig: Rig) -> None:
    """New slots appear in the thread in the order they were first set."""
    outbox = rig.outbox()
    try:
        for key in ("a", "b", "c"):
            outbox.set_text(rig.ref, key, f"text {key}", final=True)
        await outbox.delivered(rig.ref, ["a", "b", "c"], timeout=5)
        assert rig.texts() == ["text a", "text b", "text c"]
    finally:
        await outbox.close()


async def test_rate_limited_call_is_retried_after_retry_after(rig: Rig) -> None:
    """A 429 pauses the thread for Retry-After and the text still arrives, once."""
    rig.slack.fail_next("chat.postMessage", error="ratelimited", status=429, retry_after=0.05)
    outbox = rig.outbox()
    try:
        outbox.set_text(rig.ref, "a", "hello", final=True)
        await outbox.delivered(rig.ref, ["a"], timeout=5)
        assert rig.texts() == ["hello"]
    finally:
        await outbox.close()


async def test_permanent_error_is_given_up(rig: Rig, caplog: pytest.LogCaptureFixture) -> None:
    """A permanent Slack error is logged and not retried in a loop; later slots still go out."""
    rig.slack.fail_next("chat.postMessage", error="msg_too_long")
    outbox = rig.outbox()
    try:
        outbox.set_text(rig.ref, "a", "too long", final=True)
        outbox.set_text(rig.ref, "b", "fine", final=True)
        await outbox.delivered(rig.ref, ["a", "b"], timeout=5)
        assert rig.texts() == ["fine"]
        assert len(rig.slack.calls_to("chat.postMessage")) == 2
        assert "msg_too_long" in caplog.text
    finally:
        await outbox.close()


async def test_rename_moves_the_message_and_survives_restart(rig: Rig) -> None:
    """A renamed slot keeps its Slack message; a new outbox (after a restart) edits it under the new key."""
    outbox = rig.outbox()
    try:
        outbox.set_text(rig.ref, "draft", "streaming…", final=True)
        await outbox.delivered(rig.ref, ["draft"], timeout=5)
        await outbox.rename(rig.ref, "draft", "after:7")
        assert not await outbox.has_slot(rig.ref, "draft")
    finally:
        await outbox.close()
    again = rig.outbox()
    try:
        assert await again.has_slot(rig.ref, "after:7")
        again.set_text(rig.ref, "after:7", "final text", final=True)
        await again.delivered(rig.ref, ["after:7"], timeout=5)
        assert rig.texts() == ["final text"]
        assert len(rig.slack.calls_to("chat.postMessage")) == 1
        again.set_text(rig.ref, "draft", "the next reply", final=True)  # the old tag must not claim it
        await again.delivered(rig.ref, ["draft"], timeout=5)
        assert rig.texts() == ["final text", "the next reply"]
    finally:
        await again.close()


async def test_a_renamed_draft_keeps_its_place_before_later_slots(rig: Rig) -> None:
    """A draft Slack has not taken yet (429) and renamed once its message persisted still posts
    before the card that appeared below it meanwhile."""
    rig.slack.fail_next("chat.postMessage", error="ratelimited", status=429, retry_after=0.2)
    outbox = rig.outbox()
    try:
        outbox.set_text(rig.ref, "draft", "I'll start by finding the bug.")
        outbox.set_text(rig.ref, "card:3", "⏳ Working · 1 tool")
        await outbox.rename(rig.ref, "draft", "after:3")
        outbox.set_text(rig.ref, "after:3", "I'll start by finding the bug.", final=True)
        await outbox.delivered(rig.ref, ["after:3", "card:3"], timeout=5)
        assert rig.texts() == ["I'll start by finding the bug.", "⏳ Working · 1 tool"]
        assert len(rig.slack.calls_to("chat.postMessage")) == 3  # the 429, then one post each
    finally:
        await outbox.close()


async def test_idle_threads_are_released(rig: Rig) -> None:
    """A thread with nothing left to send frees its worker after the idle timeout."""
    outbox = rig.outbox(idle_timeout=0.05)
    try:
        outbox.set_text(rig.ref, "a", "done", final=True)
        await outbox.delivered(rig.ref, ["a"], timeout=5)
        assert outbox.threads_open == 1
        assert await outbox.released(timeout=5)
        assert outbox.threads_open == 0
    finally:
        await outbox.close()


async def _stored(rig: Rig) -> Sequence[OutboxEntry]:
    async with rig.db.unit() as session:
        return await repo.find_pending_texts(session, rig.ref.link_id)


async def test_stored_text_is_delivered_after_a_restart(rig: Rig) -> None:
    """A text put but not yet shown when the process stops is posted, once, by the next outbox."""
    rig.slack.fail_next("chat.postMessage", error="ratelimited", status=429, retry_after=60)
    outbox = rig.outbox()
    try:
        await outbox.put(rig.ref, [final_text("notice:1", "Your message did not reach the agent.")])
        await rig.slack.wait_for(lambda: len(rig.slack.calls_to("chat.postMessage")) == 1)
    finally:
        await outbox.close()
    assert rig.texts() == []
    assert [t.slot for t in await _stored(rig)] == ["notice:1"]
    assert await rig.deliver_after_restart(["notice:1"]) == 1
    assert rig.texts() == ["Your message did not reach the agent."]
    assert await _stored(rig) == []


async def test_half_streamed_message_is_completed_in_place_after_a_restart(rig: Rig) -> None:
    """A streamed message whose stored final text was not shown yet is edited after a restart, not posted."""
    outbox = rig.outbox()
    try:
        outbox.set_text(rig.ref, "after:3", "Half of the")
        await outbox.delivered(rig.ref, ["after:3"], timeout=5)
        rig.slack.fail_next("chat.update", error="ratelimited", status=429, retry_after=60)
        await outbox.put(rig.ref, [final_text("after:3", "Half of the answer.")])
        await rig.slack.wait_for(lambda: len(rig.slack.calls_to("chat.update")) == 1)
    finally:
        await outbox.close()
    await rig.deliver_after_restart(["after:3"])
    assert rig.texts() == ["Half of the answer."]
    assert len(rig.slack.calls_to("chat.postMessage")) == 1
    assert await _stored(rig) == []


async def test_progress_shown_over_an_earlier_runs_final_text_is_recorded(rig: Rig) -> None:
    """A card done before a restart, shown as working again by the next run, then done once more but
    killed before Slack took that: the next start sees the card as working and edits it back."""
    done = "✅ Done · 3 tools"
    first = rig.outbox()
    try:
        await first.put(rig.ref, [final_text("card:6", done)])
        await first.delivered(rig.ref, ["card:6"], timeout=5)
    finally:
        await first.close()
    second = rig.outbox()
    try:
        second.set_text(rig.ref, "card:6", "⏳ Working · 3 tools")
        await second.delivered(rig.ref, ["card:6"], timeout=5)
        rig.slack.fail_next("chat.update", error="ratelimited", status=429, retry_after=60)
        await second.put(rig.ref, [final_text("card:6", done)])
        await rig.slack.wait_for(lambda: len(rig.slack.calls_to("chat.update")) == 2)
    finally:
        await second.close()
    assert rig.texts() == ["⏳ Working · 3 tools"]
    assert await rig.deliver_after_restart(["card:6"]) == 1
    assert rig.texts() == [done]
    assert await _stored(rig) == []


async def test_text_shown_before_a_crash_is_not_sent_again(rig: Rig) -> None:
    """A stored text whose delivery was recorded is not re-sent: the restart costs no Slack call."""
    outbox = rig.outbox()
    try:
        await outbox.put(rig.ref, [final_text("a", "done")])
        await outbox.delivered(rig.ref, ["a"], timeout=5)
    finally:
        await outbox.close()
    async with rig.db.unit() as session:  # as if the process died between Slack's answer and the delete
        await repo.stage_texts(session, rig.ref.link_id, [final_text("a", "done")])
    again = rig.outbox()
    try:
        assert await again.resume() == 1
        await again.delivered(rig.ref, ["a"], timeout=5)
        assert await again.has_slot(rig.ref, "a")
    finally:
        await again.close()
    assert len(rig.slack.calls_to("chat.postMessage")) == 1
    assert rig.slack.calls_to("chat.update") == []
    assert await _stored(rig) == []


def _bot_reactions(rig: Rig, ts: str) -> set[str]:
    message = rig.slack.message(rig.ref.channel, ts)
    assert message is not None
    return {name for name, users in message.reactions.items() if rig.slack.bot_user_id in users}


async def _stored_reactions(rig: Rig) -> list[repo.StoredWish]:
    async with rig.db.unit() as session:
        return await repo.find_pending_reactions(session, rig.ref.link_id)


async def _wish(outbox: Outbox, rig: Rig, names: set[str]) -> None:
    """Store a turn reaction on the thread's root, as the caller's transaction would, then show it."""
    reaction = ReactionWish(
        rig.ref.thread_ts, "turn", frozenset(names), frozenset({"eyes", "white_check_mark"})
    )
    async with rig.db.unit() as session:
        staged = await outbox.stage_reactions(session, rig.ref, [reaction])
    outbox.show_reactions(rig.ref, staged)


async def test_stored_reaction_is_set_after_a_restart_and_forgotten_once_shown(rig: Rig) -> None:
    """A wished reaction Slack has not taken when the process stops is set by the next outbox, the
    role's other names come off (the one it replaces included), and its row goes once Slack shows it."""
    outbox = rig.outbox()
    try:
        await _wish(outbox, rig, {"eyes"})
        assert await outbox.drain(5)
        assert await _stored_reactions(rig) == [], "a wish Slack shows leaves no row"
        rig.slack.fail_next("reactions.add", error="ratelimited", status=429, retry_after=60)
        await _wish(outbox, rig, {"white_check_mark"})
        await rig.slack.wait_for(lambda: len(rig.slack.calls_to("reactions.add")) == 2)
    finally:
        await outbox.close()
    assert _bot_reactions(rig, rig.ref.thread_ts) == {"eyes"}
    assert [r.names for r in await _stored_reactions(rig)] == [frozenset({"white_check_mark"})]
    again = rig.outbox()
    try:
        assert await again.resume() == 1
        assert await again.drain(5)
    finally:
        await again.close()
    assert _bot_reactions(rig, rig.ref.thread_ts) == {"white_check_mark"}
    assert await _stored_reactions(rig) == []


async def test_reaction_slack_keeps_failing_holds_back_no_other_message(rig: Rig) -> None:
    """Slack failing to take a reaction off one message (an outage of reactions.remove) delays that
    message's reactions only: a reaction wished on another message of the thread goes out at once,
    not after the failing one's retries are spent."""
    outbox = rig.outbox()
    try:
        await outbox.put(rig.ref, [final_text("a", "the answer")])
        await outbox.delivered(rig.ref, ["a"], timeout=5)
        answer = next(m.ts for m in rig.slack.thread(rig.ref.channel, rig.ref.thread_ts) if m.bot_id)
        await _wish(outbox, rig, {"eyes"})
        assert await outbox.drain(5)
        rig.slack.fail_next("reactions.remove", error="internal_error", status=500, count=1000)
        await _wish(outbox, rig, {"white_check_mark"})  # 👀 comes off the root: Slack fails that
        outbox.show_reactions(
            rig.ref, [ReactionWish(answer, "turn", frozenset({"eyes"}), frozenset({"eyes"}))]
        )
        await rig.slack.wait_for(lambda: _bot_reactions(rig, answer) == {"eyes"}, timeout=10)
        failed_before = len(rig.slack.calls_to("reactions.remove"))
    finally:
        await outbox.close()
    assert 1 <= failed_before < 5, "the other message waited for the failing one's retries"


async def test_post_whose_ts_was_lost_in_a_crash_is_edited_not_posted_again(rig: Rig) -> None:
    """A message Slack accepted but whose ts was never stored is found by its tag and edited."""
    outbox = rig.outbox()
    try:
        await outbox.put(rig.ref, [final_text("a", "draft of the answer")])
        await outbox.delivered(rig.ref, ["a"], timeout=5)
    finally:
        await outbox.close()
    async with rig.db.unit() as session:  # as if the process died between Slack's answer and the store
        await session.execute(delete(SlackMessage))
        await repo.stage_texts(session, rig.ref.link_id, [final_text("a", "the whole answer")])
    assert await rig.deliver_after_restart(["a"]) == 1
    assert len(rig.slack.calls_to("chat.postMessage")) == 1
    assert len(rig.slack.calls_to("chat.update")) == 1
    shown = [m.visible_text for m in rig.slack.thread(rig.ref.channel, rig.ref.thread_ts) if m.bot_id]
    assert shown == ["the whole answer"]


@pytest.mark.parametrize("error", ["channel_not_found", "is_archived", "not_in_channel"])
async def test_closed_channel_stops_the_threads_deliveries(
    rig: Rig, caplog: pytest.LogCaptureFixture, error: str
) -> None:
    """A channel gone or closed to the bot stops that thread's output: one call, one WARNING, rows failed."""
    rig.slack.fail_next("chat.postMessage", error=error, count=10)
    outbox = rig.outbox()
    try:
        await outbox.put(rig.ref, [final_text("a", "first")])
        await outbox.delivered(rig.ref, ["a"], timeout=5)
        await outbox.put(rig.ref, [final_text("b", "second")])
        outbox.set_text(rig.ref, "c", "progress")
        await outbox.delivered(rig.ref, ["b", "c"], timeout=5)
        assert outbox.closed(rig.ref) == error
    finally:
        await outbox.close()
    assert len(rig.slack.calls_to("chat.postMessage")) == 1
    warnings = [r for r in caplog.records if r.levelname == "WARNING" and error in r.getMessage()]
    assert len(warnings) == 1
    assert rig.ref.channel in warnings[0].getMessage()
    assert await _stored(rig) == []
    async with rig.db.unit() as session:
        rows = (await session.execute(select(OutboxEntry))).scalars().all()
    assert [(r.slot, r.state, r.error) for r in rows] == [("a", "failed", error)]


@pytest.mark.parametrize("error", ["msg_too_long", "msg_blocks_too_long", "invalid_blocks"])
async def test_too_long_text_is_split_and_retried_once_smaller(rig: Rig, error: str) -> None:
    """When Slack finds a text too big (as text, or as the blocks it became) it is shown in smaller
    parts, in order, right where it was."""
    text = "\n\n".join(f"paragraph {i} " + "x" * 400 for i in range(8))
    rig.slack.fail_next("chat.postMessage", error=error)
    outbox = rig.outbox()
    try:
        await outbox.put(rig.ref, [final_text("a", text), final_text("b", "after it")])
        await outbox.delivered(rig.ref, ["a", "b"], timeout=5)
    finally:
        await outbox.close()
    texts = rig.texts()
    assert len(texts) > 2
    assert texts[-1] == "after it"
    assert "".join(texts[:-1]).replace("\n", "") == text.replace("\n", "")
    assert await _stored(rig) == []


async def test_stored_text_replaced_by_a_newer_one_is_not_sent_after_a_restart(rig: Rig) -> None:
    """A stored text replaced before Slack showed it is forgotten once the newer text is shown."""
    outbox = rig.outbox()
    try:
        await outbox.put(rig.ref, [final_text("header", "💤 waiting")])
        outbox.set_text(rig.ref, "header", "⏳ running")
        await outbox.delivered(rig.ref, ["header"], timeout=5)
    finally:
        await outbox.close()
    assert rig.texts() == ["⏳ running"]
    assert await _stored(rig) == []


async def test_texts_stored_one_after_another_are_shown_in_that_order(rig: Rig) -> None:
    """A header stored while an older one's transaction is still open (a rename seen as a turn's end
    commits) is what the thread shows last, and what stays stored for a restart: never the older."""
    outbox = rig.outbox()
    committing = asyncio.Event()
    release = asyncio.Event()

    async def slow_write(_: object) -> None:
        committing.set()
        await release.wait()

    try:
        older = asyncio.create_task(outbox.put_with(rig.ref, [final_text("header", "old title")], slow_write))
        await asyncio.wait_for(committing.wait(), 5)
        newer = asyncio.create_task(outbox.put_with(rig.ref, [final_text("header", "new title")], _no_write))
        release.set()
        await asyncio.gather(older, newer)
        await outbox.delivered(rig.ref, ["header"], timeout=5)
    finally:
        await outbox.close()
    assert rig.texts() == ["new title"]
    assert await _stored(rig) == []


async def _no_write(_: object) -> None:
    """A stored text's transaction with nothing else in it."""


async def test_split_and_renamed_slots_are_stored_and_tagged_as_before(rig: Rig) -> None:
    """Parts keep the stored format older versions wrote and read (``#n`` for the bridge's split,
    ``+n`` for Slack's), in the database and in each message's ``<link id>:<slot>`` tag."""
    text = "\n\n".join(f"paragraph {i} " + "x" * 400 for i in range(8))
    outbox = rig.outbox()
    try:
        outbox.set_text(rig.ref, "draft", "first part")
        outbox.set_text(rig.ref, "draft#1", "second part")
        await outbox.delivered(rig.ref, ["draft", "draft#1"], timeout=5)
        await outbox.rename(rig.ref, "draft", "after:7")
        rig.slack.fail_next("chat.postMessage", error="msg_too_long")
        await outbox.put(rig.ref, [final_text("card:7", text)])
        await outbox.delivered(rig.ref, ["card:7"], timeout=5)
        await outbox.delivered(rig.ref, ["card:7+1", "card:7+2"], timeout=5)  # the parts it became
    finally:
        await outbox.close()
    async with rig.db.unit() as session:
        stored = set((await session.execute(select(SlackMessage.slot))).scalars())
    assert stored == {"after:7", "after:7#1", "card:7", "card:7+1", "card:7+2"}
    messages = [m for m in rig.slack.thread(rig.ref.channel, rig.ref.thread_ts) if m.bot_id]
    tags = {m.metadata["event_payload"]["key"] for m in messages if m.metadata is not None}
    posted = ("draft", "draft#1", "card:7", "card:7+1", "card:7+2")  # a rename edits no message
    assert tags == {f"{rig.ref.link_id}:{slot}" for slot in posted}
