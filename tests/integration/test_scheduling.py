"""The Slack output scheduler under Slack's enforced limits: many threads, 429 storms, tool floods.

The Slack simulator enforces Slack's published budgets (time-scaled, so a "minute" is 3 s) and the
bridge's budgets are scaled to match. Timings are printed for the record, never asserted: the
assertions are the invariants (nothing lost, nothing doubled, no thread starved, no 429 provoked).
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from cryptography.fernet import Fernet
from pydantic import SecretStr

from bridge.relay.limits import METHOD_BUDGETS
from bridge.relay.outbox import Outbox, ThreadRef, final_text
from bridge.sim.coder_agent import Text, ToolCall
from bridge.sim.slack_api import Storm
from tests.integration.conftest import CODER_TOKEN, World
from tests.integration.test_files import PNG
from tests.integration.test_outbox import Rig, rig  # noqa: F401 - the fixture, shared

UPDATES_PER_SECOND = METHOD_BUDGETS["chat.update"].per_minute * 20.0 / 60  # the rig's scale is 20


async def _threads(rig: Rig, count: int, channels: int) -> list[ThreadRef]:  # noqa: F811
    ids = [f"C0LOAD{c}" for c in range(channels)]
    for channel in ids:
        rig.slack.add_channel(channel, channel.lower())
    return [await rig.thread(ids[n % channels]) for n in range(count)]


@dataclass
class Load:
    """Threads streaming into one outbox; a thread leaves ``live`` when its final text is put."""

    outbox: Outbox
    refs: list[ThreadRef]
    live: set[int]

    async def stream(self) -> None:
        """Every live thread streams: its reply slot gets a new text every 20 ms, until cancelled."""
        step = 0
        while True:
            step += 1
            for ref in self.refs:
                if ref.link_id in self.live:
                    self.outbox.set_text(ref, "reply", f"{ref.thread_ts} step {step}")
            await asyncio.sleep(0.02)

    async def finish(self, ref: ThreadRef, text: str) -> None:
        """The thread's reply is complete."""
        self.live.discard(ref.link_id)
        await self.outbox.put(ref, [final_text("reply", text)])


@pytest.fixture
async def load(rig: Rig) -> AsyncIterator[Load]:  # noqa: F811
    """Sixteen threads in eight channels, streaming into one outbox until the test ends."""
    refs = await _threads(rig, count=16, channels=8)
    load = Load(rig.outbox(edit_interval=0.05), refs, {r.link_id for r in refs})
    producer = asyncio.ensure_future(load.stream())
    try:
        yield load
    finally:
        producer.cancel()
        await load.outbox.close()


def _shown_at(rig: Rig, refs: list[ThreadRef]) -> dict[int, list[float]]:  # noqa: F811
    """When Slack accepted each call that showed a thread something new (posts and edits)."""
    thread_of = {(r.channel, r.thread_ts): r.link_id for r in refs}
    ts_of = {
        m.ts: thread_of[(m.channel, m.thread_ts or "")]
        for r in refs
        for m in rig.slack.thread(r.channel, r.thread_ts)
        if m.bot_id
    }
    shown: dict[int, list[float]] = {r.link_id: [] for r in refs}
    for call in rig.slack.calls:
        if not call.ok or call.method not in ("chat.postMessage", "chat.update"):
            continue
        key = call.params.get("ts") if call.method == "chat.update" else call.params.get("thread_ts")
        link = ts_of.get(str(key)) or thread_of.get((str(call.params.get("channel")), str(key)))
        if link is not None:
            shown[link].append(call.time)
    return shown


async def test_many_threads_streaming_share_the_budget_and_all_finish(
    rig: Rig,  # noqa: F811
    load: Load,
) -> None:
    """Many threads streaming at once: each gets its turns (none starves), every final arrives, no 429."""
    outbox, refs = load.outbox, load.refs
    start = asyncio.get_running_loop().time()

    def everyone_edited(times: int) -> bool:
        return all(len(t) > times for t in _shown_at(rig, refs).values())  # the post, then edits

    await rig.slack.wait_for(lambda: everyone_edited(3), timeout=30)  # a starved thread never gets there
    end = asyncio.get_running_loop().time()
    for ref in refs:
        await load.finish(ref, f"final answer of {ref.thread_ts}")
    for ref in refs:
        await outbox.delivered(ref, ["reply"], timeout=30)
    for ref in refs:
        assert rig.texts(ref) == [f"final answer of {ref.thread_ts}"]
    assert [c for c in rig.slack.calls if c.status == 429] == []
    gaps = [
        b - a
        for times in _shown_at(rig, refs).values()
        for a, b in zip([start, *times], [*times, end], strict=True)
        if b <= end
    ]
    fair = len(refs) / UPDATES_PER_SECOND
    longest = max(gaps)
    print(
        f"\n{len(refs)} threads, longest wait {longest:.2f}s, fair share {fair:.2f}s: {longest / fair:.2f}×"
    )


async def test_final_texts_overtake_progress_edits(
    rig: Rig,  # noqa: F811
    load: Load,
) -> None:
    """With the workspace's edit budget used up by streaming threads, a final text is not held back
    for a round of everyone's progress: fewer edits of others go out before it than there are threads."""
    outbox, refs = load.outbox, load.refs
    await rig.slack.wait_for(lambda: all(len(t) > 2 for t in _shown_at(rig, refs).values()), timeout=30)
    first = refs[0]
    before = len(rig.slack.calls_to("chat.update"))
    await load.finish(first, "the final answer")
    await outbox.delivered(first, ["reply"], timeout=30)
    overtaken = len(rig.slack.calls_to("chat.update")) - before - 1
    print(f"\nprogress edits sent between the final text's arrival and its delivery: {overtaken}")
    assert overtaken < len(refs) - 1
    assert rig.texts(first) == ["the final answer"]


async def test_threads_with_only_progress_get_their_turns_while_others_send_finals(
    rig: Rig,  # noqa: F811
    load: Load,
) -> None:
    """Final texts go first, but a stream of them (half the threads ending one reply after another)
    does not starve the threads that only have progress to show: each still gets about its share of
    the edits, where strict priority would give them none until the finals ran out."""
    outbox, refs = load.outbox, load.refs
    await rig.slack.wait_for(lambda: all(len(t) > 1 for t in _shown_at(rig, refs).values()), timeout=30)
    finishing, streaming = refs[::2], refs[1::2]
    load.live -= {r.link_id for r in finishing}
    before = {link: len(times) for link, times in _shown_at(rig, refs).items()}

    async def finals(ref: ThreadRef) -> None:  # a final edit waits in line whenever the last is shown
        for n in range(8):
            await outbox.put(ref, [final_text("reply", f"answer {n} of {ref.thread_ts}")])
            await outbox.delivered(ref, ["reply"], timeout=30)

    await asyncio.gather(*(finals(ref) for ref in finishing))
    shown = {link: len(times) - before[link] for link, times in _shown_at(rig, refs).items()}
    edits = sum(shown.values())
    got = {ref.thread_ts: shown[ref.link_id] for ref in streaming}
    print(f"\n{edits} edits while {len(finishing)} threads sent 8 finals each; progress threads got {got}")
    share = edits / len(refs)
    assert min(got.values()) >= share / 3, got
    for ref in finishing:
        assert rig.texts(ref) == [f"answer 7 of {ref.thread_ts}"]


async def test_a_429_storm_loses_and_doubles_nothing(rig: Rig) -> None:  # noqa: F811
    """Half of all posts, edits and whispers answered 429: every text and whisper still arrives, once."""
    refs = await _threads(rig, count=6, channels=3)
    rig.slack.storm = Storm(
        frozenset({"chat.postMessage", "chat.update", "chat.postEphemeral"}), 0.5, 0.05, random.Random(7)
    )
    outbox = rig.outbox(edit_interval=0.05)
    try:
        for ref in refs:
            outbox.set_text(ref, "d", "streaming…")
            await outbox.put(ref, [final_text(k, f"{k} of {ref.thread_ts}") for k in ("a", "b", "c")])
        for ref in refs:
            outbox.set_text(ref, "d", "still streaming…")
        await asyncio.gather(
            *(outbox.whisper(r.channel, rig.slack.alice, r.thread_ts, f"psst {r.thread_ts}") for r in refs)
        )
        for ref in refs:
            await outbox.put(ref, [final_text("d", f"d of {ref.thread_ts}")])
        for ref in refs:
            await outbox.delivered(ref, ["a", "b", "c", "d"], timeout=30)
    finally:
        await outbox.close()
    assert rig.slack.storm.answered > 10
    for ref in refs:
        assert rig.texts(ref) == [f"{k} of {ref.thread_ts}" for k in ("d", "a", "b", "c")]
    whispers = Counter(e.markdown_text for e in rig.slack.ephemerals(rig.slack.alice))
    assert whispers == Counter(f"psst {r.thread_ts}" for r in refs)


async def test_flood_of_tool_calls_yields_one_progress_message(world: World) -> None:
    """Forty tool calls in one turn: one status card edited in place, a handful of messages, no 429."""
    tools = [ToolCall("execute", {"command": f"make test-{n}"}, {"exit_code": 0}) for n in range(40)]
    world.coder.agent = lambda prompt: [*tools, Text("All forty passed.")]
    root = await world.mention("run every test")
    await world.until_idle_and_shown(root)
    await world.until(lambda: world.cards(root)[0].startswith("✅ Done · 40 tools"))
    assert len(world.cards(root)) == 1
    assert world.replies(root) == world.shown_replies(world.chat_of(root))
    assert len(world.bot_messages(root)) <= 4, "header, card, reply, outcome: never a message per call"
    assert len(world.slack.calls_to("chat.update")) < len(tools), "card edits coalesced"
    assert [c for c in world.slack.calls if c.status == 429] == []


async def test_a_reply_made_final_before_the_status_goes_first(rig: Rig) -> None:  # noqa: F811
    """Of a thread's final texts, the one that became final first goes first, whatever the slot order."""
    outbox = rig.outbox()
    try:
        outbox.set_text(rig.ref, "header", "⏳ running")
        outbox.set_text(rig.ref, "reply", "the answ")
        await outbox.delivered(rig.ref, ["header", "reply"], timeout=5)
        shown = {m.visible_text: m.ts for m in rig.slack.thread(rig.ref.channel, rig.ref.thread_ts)}
        await outbox.put(rig.ref, [final_text("reply", "the answer"), final_text("header", "✅ idle")])
        await outbox.delivered(rig.ref, ["header", "reply"], timeout=5)
    finally:
        await outbox.close()
    edited = [c.params.get("ts") for c in rig.slack.calls_to("chat.update")]
    assert edited == [shown["the answ"], shown["⏳ running"]]
    assert rig.texts() == ["✅ idle", "the answer"]


@pytest.mark.parametrize("generation", ["v2"])
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_every_slack_call_draws_on_its_budget(world: World) -> None:
    """Every Web API method the bridge calls while it uses each of its features (as the Slack
    simulator saw them) has a budget of its own and drew on the bridge's budgets before the call."""
    slack = world.slack
    slack.add_usergroup("S0ENG", "eng", [slack.alice])
    await world.stop_bridge()
    since = len(slack.calls)
    bridge = await world.start_bridge(
        identity_mode="linked",
        encryption_key=SecretStr(Fernet.generate_key().decode()),
        native_streaming=True,
        allowed_users=("S0ENG",),
    )
    world.coder.agent = lambda prompt: [Text("Reading it. " * 30), ToolCall("execute", {}, {}), Text("Done.")]
    await slack.slash_command(slack.alice, slack.general, "/coder", "link")  # views.open
    await slack.submit_view(slack.alice, {"token": {"token": CODER_TOKEN}})
    root = await slack.user_says(slack.bob, slack.general, "login fails on Safari")
    stub = {"id": slack.add_file(PNG, "safari.png", "image/png")["id"], "mode": "file_access"}
    await slack.user_says(
        slack.alice, slack.general, f"<@{slack.bot_user_id}> fix it", thread_ts=root, files=[stub]
    )  # conversations.replies for context, files.info, users.info, usergroups.users.list
    await world.until_idle_and_shown(root)
    await world.reply(root, "and add a test")  # a follow-up
    await world.until_idle_and_shown(root, turns=2)
    await world.mention("fix it too", user=slack.bob)  # refused: chat.postEphemeral
    await world.until(lambda: any(slack.ephemerals(slack.bob)))
    await slack.slash_command(slack.alice, slack.general, "/coder", "new write the notes")
    await world.until(lambda: len(world.coder.chats) == 2)
    await slack.open_home(slack.alice)  # views.publish
    await world.until(lambda: bool(slack.calls_to("views.publish")))
    called = {c.method for c in slack.calls[since:]}
    for method in ("views.open", "files.info", "conversations.replies", "chat.startStream", "users.info"):
        assert method in called, f"the session exercised {method}"
    assert bridge.limits is not None
    assert called - METHOD_BUDGETS.keys() == set(), "every method called has its tier"
    assert called - bridge.limits.metered == set(), "no call bypassed the budgets"


async def test_a_reply_goes_before_the_status_edits_of_other_threads(rig: Rig) -> None:  # noqa: F811
    """With the workspace's edit budget short (sixteen headers turning final at once), a reply that
    turns final later is not held behind them: what a person waits for goes before the bridge's own
    status, whichever thread it is in."""
    refs = await _threads(rig, count=17, channels=8)
    asker, others = refs[0], refs[1:]
    outbox = rig.outbox(edit_interval=0.05)
    try:
        for ref in others:
            outbox.set_text(ref, "header", "⏳ running")
        outbox.set_text(asker, "after:1", "the answ")
        for ref in refs:
            await outbox.delivered(ref, ["after:1"] if ref is asker else ["header"], timeout=30)
        for ref in others:
            outbox.set_text(ref, "header", "✅ idle", final=True)
        await asyncio.sleep(0)
        before = len(rig.slack.calls_to("chat.update"))
        outbox.set_text(asker, "after:1", "the answer", final=True)
        await outbox.delivered(asker, ["after:1"], timeout=30)
        overtaken = len(rig.slack.calls_to("chat.update")) - before - 1
        for ref in others:
            await outbox.delivered(ref, ["header"], timeout=30)
    finally:
        await outbox.close()
    print(f"\nstatus edits sent between the reply's final text and its delivery: {overtaken}")
    # Those sent at once from the budget's burst, and perhaps one in flight; not the eleven behind them.
    burst = METHOD_BUDGETS["chat.update"].burst
    assert overtaken <= burst + 1, "the reply waited behind the other threads' status edits"
    assert len(rig.slack.calls_to("chat.update")) - before - 1 == len(others)
    assert rig.texts(asker) == ["the answer"]


async def test_a_turns_answer_is_posted_before_its_cards_last_edit(rig: Rig) -> None:  # noqa: F811
    """A compact turn ends with its card's last edit and its answer, a new message: the answer goes
    first (a person waits for it, and a post draws on the channel's budget), then the card's edit,
    which waits on the workspace's scarcer edit budget."""
    outbox = rig.outbox()
    try:
        outbox.set_text(rig.ref, "card:1", "⏳ Working · 1 tool")
        await outbox.delivered(rig.ref, ["card:1"], timeout=5)
        before = len(rig.slack.calls)
        ending = [final_text("card:1", "✅ Done · 1 tool"), final_text("after:2", "the answer")]
        await outbox.put(rig.ref, ending)
        await outbox.delivered(rig.ref, ["card:1", "after:2"], timeout=5)
    finally:
        await outbox.close()
    sent = [c.method for c in rig.slack.calls[before:] if c.method in ("chat.postMessage", "chat.update")]
    assert sent == ["chat.postMessage", "chat.update"]
    assert rig.texts() == ["✅ Done · 1 tool", "the answer"]
