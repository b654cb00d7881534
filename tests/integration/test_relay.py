"""End to end: signed Slack events into the real bridge, Coder chats in the simulator, thread contents."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bridge.relay.follow import RECONNECTED
from bridge.sim.coder import CoderSim
from bridge.sim.coder_agent import Fail, Gate, Step, Text, ToolCall
from bridge.sim.slack import SlackSim
from bridge.slack.blocks import is_outcome
from tests.integration.conftest import (
    CODER_TOKEN,
    SIGNING_SECRET,
    World,
    make_settings,
    user_texts,
)


async def test_mention_creates_chat_and_streams_reply(world: World) -> None:
    """A mention becomes a labelled Coder chat whose replies appear in the thread, streamed, exactly."""
    root = await world.mention("fix the login bug")
    await world.until_idle_and_shown(root)
    chat = world.chat_of(root)
    assert user_texts(chat) == ["fix the login bug"]
    labels = {  # on the chat in Coder, or kept by the bridge where Coder's chats have no labels
        "slack_team": world.slack.team_id,
        "slack_channel": world.slack.general,
        "slack_thread": root,
        "slack_user": world.slack.alice,
    }
    assert await world.labels(root) == labels
    texts = world.bot_texts(root)
    assert world.bridge is not None
    assert world.bridge.backend is not None
    assert world.bridge.backend.chat_url(chat.id) in texts[0]
    assert world.replies(root) == world.shown_replies(chat)
    assert len(world.slack.calls_to("chat.update")) > 0, "replies are edited in place while streaming"
    cards = world.cards(root)
    assert len(cards) == 1, "one status card for the turn, not a message per tool call"
    await world.until(lambda: world.cards(root)[0].startswith("✅ Done · 2 tools · touched `auth.py`"))
    assert "- ✓ execute `grep -rn login src/`" in world.cards(root)[0]
    done = f"<@{world.slack.alice}> ✅ The agent is done · touched `auth.py`."
    await world.until(lambda: done in world.bot_texts(root))
    assert world.bot_texts(root).count(done) == 1, "the requester is mentioned once, in a new message"


async def test_follow_up_goes_to_the_same_chat(world: World) -> None:
    """A reply in the thread is a follow-up to the thread's chat, answered in the same thread."""
    world.coder.agent = lambda prompt: [Text(f"Echo: {prompt}")]
    root = await world.mention("first")
    await world.until_idle_and_shown(root)
    await world.reply(root, "second")
    await world.until_idle_and_shown(root, turns=2)
    assert len(world.coder.chats) == 1
    assert user_texts(world.chat_of(root)) == ["first", "second"]
    assert world.replies(root) == ["Echo: first", "Echo: second"]


async def test_follow_up_while_busy_is_queued_and_said(world: World) -> None:
    """While the agent works, a reply is queued by Coder, the thread says so, and it is answered next."""
    gate = asyncio.Event()

    def script(prompt: str) -> list[Step]:
        if prompt == "first":
            return [Text("Working on it."), Gate(gate), Text("First done.")]
        return [Text(f"Echo: {prompt}")]

    world.coder.agent = script
    root = await world.mention("first")
    await world.until(lambda: "Working on it." in world.bot_texts(root))
    await world.reply(root, "second")
    await world.until(lambda: any("Queued" in t for t in world.bot_texts(root)))
    assert await world.queued(root) == 1, (
        "Coder holds the follow-up in its queue (or the bridge, if Coder has none)"
    )
    gate.set()
    await world.until_idle_and_shown(root, turns=2)
    texts = world.bot_texts(root)
    assert texts.index("Working on it.First done.") < texts.index("Echo: second")


async def test_direct_message_starts_a_chat(world: World) -> None:
    """A DM to the bot, without a mention, starts a chat answered in the DM's thread."""
    world.coder.agent = lambda prompt: [Text(f"Echo: {prompt}")]
    ts = await world.slack.user_says(world.slack.alice, world.slack.alice_dm, "please refactor utils")
    await world.until(lambda: "Echo: please refactor utils" in world.bot_texts(ts, world.slack.alice_dm))
    assert (await world.labels(ts, world.slack.alice_dm))["slack_channel"] == world.slack.alice_dm


async def test_unrelated_messages_are_ignored(world: World) -> None:
    """Channel chatter and replies in threads without a chat reach no agent and get no answer."""
    plain = await world.slack.user_says(world.slack.alice, world.slack.general, "lunch?")
    await world.slack.user_says(world.slack.bob, world.slack.general, "sure", thread_ts=plain)
    root = await world.mention("the real task")
    await world.until_idle_and_shown(root)
    assert len(world.coder.chats) == 1
    assert world.bot_messages(plain) == []


async def test_bot_messages_are_not_relayed(world: World) -> None:
    """The bot's own posts (echoed back by Slack) and other bots' messages are never follow-ups."""
    world.coder.agent = lambda prompt: [Text(f"Echo: {prompt}")]
    root = await world.mention("hello")
    await world.until_idle_and_shown(root)
    other_bot = {
        "type": "message",
        "channel": world.slack.general,
        "bot_id": "B0OTHER",
        "text": "beep",
        "ts": "1900000000.000001",
        "thread_ts": root,
        "channel_type": "channel",
    }
    delivery = await world.slack.deliver_event(other_bot)
    assert delivery.status == 200
    await world.reply(root, "last")
    await world.until_idle_and_shown(root, turns=2)
    assert user_texts(world.chat_of(root)) == ["hello", "last"]


async def test_slack_retries_and_twin_events_create_one_chat(world: World) -> None:
    """Slack's retries of an event and the app_mention/message twins yield one chat and one message."""
    root = await world.mention("fix it")
    await world.until_idle_and_shown(root)
    first = next(d for d in world.slack.deliveries if d.event_type == "app_mention")
    replay = await world.slack.deliver_event(first.payload, retry_num=1, wrap=False)
    assert replay.status == 200
    await world.reply(root, "and the docs")
    await world.until_idle_and_shown(root, turns=2)
    assert len(world.coder.chats) == 1
    assert user_texts(world.chat_of(root)) == ["fix it", "and the docs"]


async def test_coder_down_is_said_in_the_thread(world: World) -> None:
    """When Coder fails, the user reads why in the thread and nothing is created; a retry works."""
    world.coder.set_unavailable(True)
    root = await world.mention("fix the login bug")
    await world.until(lambda: any("Couldn't start a Coder chat" in t for t in world.bot_texts(root)))
    assert world.coder.chats == {}
    world.coder.set_unavailable(False)
    again = await world.mention("fix the login bug")
    await world.until_idle_and_shown(again)


async def test_failed_follow_up_is_said_and_can_be_resent(world: World) -> None:
    """A follow-up Coder refuses is reported in the thread; sending it again delivers it."""
    world.coder.agent = lambda prompt: [Text(f"Echo: {prompt}")]
    root = await world.mention("one")
    await world.until_idle_and_shown(root)
    world.coder.fail_next("POST", r"/messages$", 400, "Invalid chat message content.")  # a 5xx is retried
    failed = await world.reply(root, "two")
    await world.until(lambda: any("did not reach the agent" in t for t in world.bot_texts(root)))
    assert any("Invalid chat message content." in t for t in world.bot_texts(root))
    assert failed
    await world.reply(root, "two")
    await world.until_idle_and_shown(root, turns=2)
    assert user_texts(world.chat_of(root)) == ["one", "two"]


async def test_agent_error_is_shown(world: World) -> None:
    """A failing turn is reported in the thread with Coder's reason."""
    root = await world.mention("/fail please")
    reason = "overloaded" if world.capabilities.failure_reasons else "ended before the model finished"
    await world.until(lambda: any(reason in t for t in world.bot_texts(root)))
    await world.until(lambda: world.chat_of(root).status == "error")
    await world.until(
        lambda: any(
            t.startswith(f"<@{world.slack.alice}> ❌ The agent stopped with an error")
            for t in world.bot_texts(root)
        )
    )


async def test_failure_while_the_bridge_is_down_is_shown_with_its_reason(world: World) -> None:
    """A turn that fails while no stream follows it (a restart; on a fast failure, the stream opening
    after it) is reported with Coder's reason: the snapshot says error, not why, so the chat says it."""
    if not world.capabilities.replies_outlive_connection:
        pytest.skip("G0a replies end with the bridge that asked for them: nothing fails while it is down")
    gate = asyncio.Event()
    world.coder.agent = lambda prompt: [
        Text("Looking into it."),
        Gate(gate),
        Fail("Anthropic API error: overloaded (529)", kind="overloaded"),
    ]
    root = await world.mention("go")
    await world.until(lambda: "Looking into it." in " ".join(world.bot_texts(root)))
    await world.stop_bridge()
    gate.set()
    await world.until(lambda: world.chat_of(root).status == "error")
    await world.start_bridge()
    ended = f"<@{world.slack.alice}> ❌ The agent stopped with an error: "
    await world.until(lambda: any(t.startswith(ended) for t in world.bot_texts(root)))
    assert any("overloaded (529)" in t for t in world.bot_texts(root) if t.startswith(ended))
    # Said once as an error line (the header's status may name it too, where the stream told it).
    assert world.bot_texts(root).count("⚠️ Anthropic API error: overloaded (529)") == 1


async def test_long_reply_is_split_and_complete(world: World) -> None:
    """A reply over Slack's limit is split into several messages that together are the whole text."""
    long_text = "\n\n".join(f"Paragraph {i}: " + "lorem ipsum " * 120 for i in range(12))
    world.coder.agent = lambda prompt: [Text(long_text)]
    root = await world.mention("write a lot")
    await world.until(lambda: "".join(world.replies(root)) == long_text, timeout=20)
    assert all(len(t) <= 12_000 for t in world.bot_texts(root))


async def test_stream_drop_loses_and_doubles_nothing(world: World) -> None:
    """A dropped stream socket mid-turn reconnects; the thread ends with each reply exactly once."""
    gate = asyncio.Event()
    world.coder.agent = lambda prompt: [
        Text("Step one."),
        ToolCall("execute", {"command": "ls"}, {"output": "a\n"}),
        Text("Step two, "),
        Gate(gate),
        Text("finished."),
    ]
    root = await world.mention("go")
    await world.until(lambda: world.shows(root, "Step two,"))
    world.coder.drop_streams()
    if not world.capabilities.replies_outlive_connection:
        # The reply is the answer to the bridge's own request: the drop ends it, and the thread says so.
        await world.until(lambda: any("The reply from Coder broke off" in t for t in world.bot_texts(root)))
        await world.until(lambda: world.chat_of(root).status == "waiting")
        assert world.shows(root, "Step one.")
        assert world.shows(root, "Step two,")
        return
    await world.until(lambda: world.coder.active_streams() == 1)
    gate.set()
    await world.until_idle_and_shown(root)
    assert world.replies(root) == world.shown_replies(world.chat_of(root))
    assert world.replies(root)[-1] == "Step two, finished."


async def test_restart_resumes_busy_chats(world: World) -> None:
    """After a restart mid-turn the bridge follows the chat again and completes its message in place."""
    gate = asyncio.Event()
    world.coder.agent = lambda prompt: [Text("Half of the answer, "), Gate(gate), Text("and the rest.")]
    root = await world.mention("go")
    await world.until(lambda: "Half of the answer, " in world.bot_texts(root))
    posts_before = len(world.slack.calls_to("chat.postMessage"))
    await world.stop_bridge()
    gate.set()
    await world.until(lambda: world.chat_of(root).status == "waiting")
    await world.start_bridge()
    if not world.capabilities.replies_outlive_connection:
        # The stop closed the request the reply was the answer to: the thread keeps what came and says so.
        await world.until(lambda: any("The bridge restarted while" in t for t in world.bot_texts(root)))
        assert world.replies(root)[0] == "Half of the answer, "
        return
    await world.until_idle_and_shown(root)
    await world.until(lambda: is_outcome(world.bot_texts(root)[-1]))
    assert world.replies(root) == ["Half of the answer, and the rest."]
    new_posts = len(world.slack.calls_to("chat.postMessage")) - posts_before
    assert new_posts == 1, "completed by edit; the one new message is the requester's mention"


async def test_turn_ended_while_stopped_gets_its_card_and_outcome(world: World) -> None:
    """A turn that ends while the bridge is down: after the restart its card says done and the
    requester is told, as if the bridge had watched it end."""
    gate = asyncio.Event()
    world.coder.agent = lambda prompt: [
        ToolCall("execute", {"command": "make test"}, {"output": "ok", "exit_code": 0}),
        Text("Tests pass."),
        Gate(gate),
    ]
    root = await world.mention("go")
    await world.until(lambda: world.shows(root, "Tests pass."))
    await world.stop_bridge()
    gate.set()
    await world.until(lambda: world.chat_of(root).status == "waiting")
    await world.start_bridge()
    await world.until(lambda: is_outcome(world.bot_texts(root)[-1]))
    assert world.cards(root) == ["✅ Done · 1 tool\n- ✓ execute `make test`"]


async def test_final_reply_stored_before_a_stop_is_shown_after_the_restart(world: World) -> None:
    """A reply whose final text Slack had not taken before the stop is completed in place after it."""
    await world.stop_bridge()
    await world.start_bridge(shutdown_timeout=0.5)
    gate = asyncio.Event()
    world.coder.agent = lambda prompt: [Text("Half of the answer, "), Gate(gate), Text("and the rest.")]
    root = await world.mention("go")
    await world.until(lambda: "Half of the answer, " in world.bot_texts(root))

    def posted() -> int:  # messages Slack took (calls it answered 429 posted nothing)
        return sum(1 for c in world.slack.calls_to("chat.postMessage") if c.ok)

    posts_before = posted()
    for method in ("chat.update", "chat.postMessage"):  # Slack takes nothing until the restart
        world.slack.fail_next(method, error="ratelimited", status=429, retry_after=0.05, count=10_000)
    gate.set()

    def tried(method: str, text: str) -> bool:
        # A message with buttons (the header) carries its text as ``text`` beside its blocks.
        sent = (
            c.params.get("markdown_text") or c.params.get("text", "") for c in world.slack.calls_to(method)
        )
        return any(text in body for body in sent)

    # The idle status, the turn's last stored text, is stored with (or after) the reply's final text.
    await world.until(lambda: tried("chat.update", "💤 waiting"))
    await world.stop_bridge()
    assert "Half of the answer, and the rest." not in world.bot_texts(root)
    world.slack.clear_faults()
    await world.start_bridge()
    await world.until_idle_and_shown(root)
    await world.until(lambda: any("The agent is done" in t for t in world.bot_texts(root)))
    assert world.replies(root) == ["Half of the answer, and the rest."]
    assert sum("Half of the answer" in t for t in world.bot_texts(root)) == 1
    assert sum("The agent is done" in t for t in world.bot_texts(root)) == 1
    assert posted() == posts_before + 1, "only the mention is new"


async def test_follow_up_queued_before_a_restart_is_answered_after_it(world: World) -> None:
    """A follow-up queued while the agent works is answered after a bridge restart: Coder kept it, or
    the bridge did in its database where Coder has no queue."""
    gate = asyncio.Event()
    world.coder.agent = lambda prompt: (
        [Text("Working, "), Gate(gate), Text("done.")] if prompt == "first" else [Text(f"Echo: {prompt}")]
    )
    root = await world.mention("first")
    await world.until(lambda: "Working, " in world.bot_texts(root))
    await world.reply(root, "second")
    await world.until(lambda: any("Queued" in t for t in world.bot_texts(root)))
    await world.stop_bridge()
    gate.set()
    await world.start_bridge()
    await world.until(lambda: "Echo: second" in world.bot_texts(root), timeout=15)
    assert user_texts(world.chat_of(root)) == ["first", "second"]
    assert await world.queued(root) == 0


async def _lose_the_stream(world: World) -> tuple[str, asyncio.Event]:
    """A thread whose agent waits at ``gate`` after "Started, " while Coder is unreachable, until the
    thread is told the connection was lost; returns its root and the gate."""
    gate = asyncio.Event()
    world.coder.agent = lambda prompt: [Text("Started, "), Gate(gate), Text("done.")]
    root = await world.mention("go")
    await world.until(lambda: "Started, " in world.bot_texts(root))
    world.coder.set_unavailable(True)
    world.coder.drop_streams()
    await world.until(
        lambda: any("Lost the connection to Coder" in t for t in world.bot_texts(root)), timeout=20
    )
    return root, gate


async def test_lost_stream_is_said_and_resumed_by_a_reply(world: World) -> None:
    """When Coder's stream stays unreachable the thread says so; the next reply picks the chat up again."""
    gate = asyncio.Event()
    world.coder.agent = lambda prompt: (
        [Text("Started, "), Gate(gate), Text("done.")] if prompt == "go" else [Text(f"Echo: {prompt}")]
    )
    root = await world.mention("go")
    await world.until(lambda: "Started, " in world.bot_texts(root))
    world.coder.set_unavailable(True)
    world.coder.drop_streams()
    outlives = world.capabilities.replies_outlive_connection
    lost = "Lost the connection to Coder" if outlives else "The reply from Coder broke off"
    await world.until(lambda: any(lost in t for t in world.bot_texts(root)), timeout=20)
    world.coder.set_unavailable(False)
    gate.set()
    await world.until(lambda: world.chat_of(root).status == "waiting")
    await world.reply(root, "still there?")
    await world.until_idle_and_shown(root, turns=2)
    replies = world.replies(root)
    assert ("Started, done." if outlives else "Started, ") in replies
    assert replies[-1] == "Echo: still there?"


async def test_lost_stream_is_retried_later_without_a_reply(world: World) -> None:
    """A stream that gave up is tried again after the retry interval; the thread completes, told once,
    and the notice says the connection is back once it is."""
    world.require("replies_outlive_connection")
    await world.stop_bridge()
    await world.start_bridge(stream_retry_interval=0.2)
    root, gate = await _lose_the_stream(world)
    world.coder.set_unavailable(False)
    gate.set()
    await world.until_idle_and_shown(root, timeout=20)
    await world.until(lambda: RECONNECTED in world.replies(root))
    assert not any("Lost the connection to Coder" in t for t in world.bot_texts(root))
    assert world.replies(root) == ["Started, done.", RECONNECTED]
    assert [m for m in world.slack.thread(world.slack.general, root) if not m.bot_id][1:] == []


async def test_a_stream_that_gives_up_once_is_retried_unseen(world: World) -> None:
    """Coder fails every try of one read (a streak of 5xx as the turn ends): the chat is followed again
    at once and the thread ends as it would have, with no word of a lost connection."""
    world.require("replies_outlive_connection")
    gate = asyncio.Event()
    world.coder.agent = lambda prompt: [Text("Started, "), Gate(gate), Text("done.")]
    root = await world.mention("go")
    await world.until(lambda: "Started, " in world.bot_texts(root))
    streams_opened = sum(1 for r in world.coder.requests if r.path.endswith("/stream"))
    world.coder.fail_next("GET", r"/chats/[^/]+/messages$", 500, "Chat processor is unavailable.", count=4)
    gate.set()
    await world.until_idle_and_shown(root)
    await world.until(
        lambda: sum(1 for r in world.coder.requests if r.path.endswith("/stream")) > streams_opened
    )
    assert world.replies(root) == ["Started, done."]
    assert not any("Lost the connection" in t for t in world.bot_texts(root))


async def test_a_lost_connection_told_before_a_restart_is_said_back_after_it(world: World) -> None:
    """The thread was told the connection was lost, then the bridge restarted: the run that follows the
    chat again finds that notice and says the connection is back, in the same message."""
    world.require("replies_outlive_connection")
    root, gate = await _lose_the_stream(world)
    await world.stop_bridge()
    world.coder.set_unavailable(False)
    await world.start_bridge()
    gate.set()
    await world.until_idle_and_shown(root, timeout=20)
    await world.until(lambda: RECONNECTED in world.replies(root))
    assert world.replies(root) == ["Started, done.", RECONNECTED]


async def test_silent_stream_is_dropped_and_the_thread_completes(world: World) -> None:
    """A stream socket on which Coder goes silent is replaced after the silence timeout, unseen in Slack."""
    world.require("replies_outlive_connection")
    await world.stop_bridge()
    await world.start_bridge(stream_silence_timeout=0.3)
    gate = asyncio.Event()
    world.coder.agent = lambda prompt: [
        Text("Step one."),
        ToolCall("execute", {"command": "ls"}, {"output": "a\n"}),
        Text("Step two, "),
        Gate(gate),
        Text("finished."),
    ]
    root = await world.mention("go")
    await world.until(lambda: world.shows(root, "Step two,"))
    streams_opened = sum(1 for r in world.coder.requests if r.path.endswith("/stream"))
    world.coder.silence_streams()
    gate.set()
    await world.until_idle_and_shown(root)
    assert world.replies(root) == world.shown_replies(world.chat_of(root))
    assert world.replies(root)[-1] == "Step two, finished."
    assert sum(1 for r in world.coder.requests if r.path.endswith("/stream")) > streams_opened
    assert not any("Lost the connection" in t for t in world.bot_texts(root))


@pytest.mark.parametrize("framing", ["envelope-single", "bare"])
async def test_every_stream_framing_relays_the_same_thread(tmp_path: Path, framing: str) -> None:
    """Coder builds with one envelope per event, or bare arrays, give the same thread as batched ones."""
    async with (
        CoderSim(tokens={CODER_TOKEN: "alice"}, part_interval=0.002, framing=framing) as coder,  # type: ignore[arg-type]
        SlackSim(signing_secret=SIGNING_SECRET, time_scale=0.05) as slack,
    ):
        w = World(
            slack=slack, coder=coder, settings=make_settings(slack, coder, f"sqlite:///{tmp_path}/b.db")
        )
        await w.start_bridge()
        try:
            root = await w.mention("fix the login bug")
            await w.until_idle_and_shown(root)
            await w.reply(root, "and add a test")
            await w.until_idle_and_shown(root, turns=2)
            assert w.replies(root) == w.shown_replies(w.chat_of(root))
        finally:
            await w.stop_bridge()


async def test_burst_of_mentions_right_after_start_loses_none(world: World) -> None:
    """Thirty mentions at once on a fresh bridge all become chats; Bolt never re-checks the token."""
    world.coder.agent = lambda prompt: [Text(f"Echo: {prompt}")]
    roots = await asyncio.gather(*(world.mention(f"task {i}") for i in range(30)))
    await world.until(lambda: len(world.coder.chats) == 30, timeout=30)
    await world.until(
        lambda: all(f"Echo: task {i}" in world.bot_texts(r) for i, r in enumerate(roots)), timeout=30
    )
    assert len(world.slack.calls_to("auth.test")) == 1, "only the bridge's own check at start"
