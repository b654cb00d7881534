"""End to end against the newest Coder's stream (v2-late): retries, history rewrites, reconnects,
replayed and unreadable events, as a person reads them in the thread."""

from __future__ import annotations

import asyncio
import logging

import pytest

from bridge.sim.coder_agent import Gate, Pause, Retry, Step, Text, ToolCall
from bridge.slack.blocks import RESTARTING, is_removed_line
from tests.integration.conftest import World, user_texts


@pytest.fixture(params=["v2-late"])
def generation(request: pytest.FixtureRequest) -> str:
    """Only the newest generation streams this way."""
    return str(request.param)


def _texts_sent(world: World) -> list[tuple[str, str, str]]:
    """Every reply text the bridge sent, in order: (method, ts or "" for a post, text)."""
    return [
        (call.method, str(call.params.get("ts", "")), str(call.params.get("markdown_text") or ""))
        for call in world.slack.calls
        if call.method in ("chat.postMessage", "chat.update")
    ]


def _chat_id(world: World, root: str) -> str:
    return str(world.chat_of(root).id)


async def test_a_retry_mid_reply_shows_only_the_new_attempt(world: World) -> None:
    """The model is retried mid-reply: the reply's one message shows the first attempt, then only the
    new one, edited in place; no text ever joins both, and no message is posted for the retry."""
    first, second = "I'll start by rewriting the auth mod", "Rewriting the auth module now."
    gate = asyncio.Event()
    world.coder.agent = lambda prompt: [
        Text(first),
        Gate(gate),
        Retry(attempt=1, delay_ms=100, error="Anthropic is overloaded"),
        Pause(0.05),
        Text(second),
    ]
    root = await world.mention("go")
    await world.until(lambda: first in world.bot_texts(root))
    gate.set()
    await world.until_idle_and_shown(root)
    assert world.replies(root) == [second]
    reply = next(m for m in world.bot_messages(root) if m.visible_text == second)
    sent = _texts_sent(world)
    posted = [text for method, _, text in sent if method == "chat.postMessage" and text.startswith("I'll")]
    assert len(posted) == 1, "one message for the reply, whatever the attempts"
    shown = [
        text
        for method, ts, text in sent
        if ts == reply.ts or (method, text) == ("chat.postMessage", posted[0])
    ]
    for text in shown:
        assert text == RESTARTING or first.startswith(text) or second.startswith(text), text
    assert not any("I'll" in text and "Rewriting" in text for text in shown)
    new = next(i for i, text in enumerate(shown) if text.startswith("Rewriting"))
    assert all(not text.startswith("I'll") for text in shown[new:]), "the old attempt never comes back"


async def test_a_history_rewrite_keeps_shown_replies_and_marks_removed_ones(world: World) -> None:
    """An edit makes Coder send the whole history again: the replies Slack shows stay the messages
    they are (nothing reposted), and the reply the edit removed is marked as removed in place."""
    world.coder.agent = lambda prompt: [Text(f"Echo: {prompt}")]
    root = await world.mention("first")
    await world.until_idle_and_shown(root)
    reply = await world.reply(root, "secnd")
    await world.until_idle_and_shown(root, turns=2)
    removed = next(m for m in world.bot_messages(root) if m.visible_text == "Echo: secnd")
    await world.slack.edit(world.slack.alice, world.slack.general, reply, "second")
    await world.until(lambda: "Echo: second" in world.bot_texts(root))
    await world.until(
        lambda: is_removed_line(world.slack.message(world.slack.general, removed.ts).visible_text)
    )
    assert user_texts(world.chat_of(root)) == ["first", "second"]
    posts = [text for method, _, text in _texts_sent(world) if method == "chat.postMessage"]
    assert posts.count("Echo: first") == 1, "a reply the rewrite kept is not posted again"
    replies = [t for t in world.replies(root) if not t.startswith("✏️")]  # but the edit's own note
    assert replies == ["Echo: first", "Echo: second"]


async def test_a_reconnect_mid_turn_keeps_the_draft_streaming(world: World) -> None:
    """After a lost connection mid-turn Coder replays only the current step: the draft goes on
    streaming that step at once, before anything new is saved, and shows no text twice."""
    more, rest = asyncio.Event(), asyncio.Event()
    world.coder.agent = lambda prompt: [
        Text("Step one."),
        ToolCall("execute", {"command": "make"}, {"exit_code": 0}),
        Text("Step two begins"),
        Gate(more),
        Text(" and goes on"),
        Gate(rest),
        Text(" to the end."),
    ]
    root = await world.mention("go")
    await world.until(lambda: world.shows(root, "Step two begins"))
    streams = sum(r.path.endswith("/stream") for r in world.coder.requests)
    world.coder.drop_streams(_chat_id(world, root))
    await world.until(
        lambda: (
            sum(r.path.endswith("/stream") for r in world.coder.requests) > streams
            and world.coder.active_streams() == 1
        )
    )
    more.set()
    await world.until(lambda: world.shows(root, "Step two begins and goes on"))
    rest.set()
    await world.until_idle_and_shown(root)
    assert world.replies(root) == world.shown_replies(world.chat_of(root))
    assert world.replies(root)[-1] == "Step two begins and goes on to the end."
    assert not any("Step two beginsStep two" in text for _, _, text in _texts_sent(world))


async def test_a_replayed_part_is_not_shown_twice(world: World) -> None:
    """Parts delivered again with numbers already seen are dropped, not appended to the draft."""
    more, rest = asyncio.Event(), asyncio.Event()
    world.coder.agent = lambda prompt: [
        Text("Hello there"),
        Gate(more),
        Text(" friend"),
        Gate(rest),
        Text("."),
    ]
    root = await world.mention("go")
    await world.until(lambda: "Hello there" in world.bot_texts(root))
    frames = len(world.coder.frame_log)
    world.coder.replay_parts(_chat_id(world, root))
    await world.until(lambda: len(world.coder.frame_log) > frames)
    more.set()
    await world.until(lambda: any(t.endswith(" friend") for t in world.bot_texts(root)))
    assert "Hello there friend" in world.bot_texts(root)
    rest.set()
    await world.until_idle_and_shown(root)
    assert world.replies(root) == ["Hello there friend."]
    assert not any("Hello thereHello" in text for _, _, text in _texts_sent(world))


async def test_an_unreadable_event_loses_only_itself(world: World, caplog: pytest.LogCaptureFixture) -> None:
    """An event of the newest format that cannot be read is logged with its type and skipped; the
    events after it in the same batch still count, and the reply completes."""
    gate = asyncio.Event()
    script: list[Step] = [Text("Working"), Gate(gate), Text(" and done.")]
    world.coder.agent = lambda prompt: script
    root = await world.mention("go")
    await world.until(lambda: "Working" in world.bot_texts(root))
    chat_id = _chat_id(world, root)
    retry = {
        "attempt": 1,
        "delay_ms": 1000,
        "error": "Anthropic is overloaded",
        "retrying_at": "2026-12-06T10:00:00Z",
    }
    garbled = {"role": "assistant", "part": {"type": "text", "text": "junk"}, "seq": "first"}
    with caplog.at_level(logging.WARNING, logger="bridge.coder"):
        world.coder.inject(
            chat_id,
            [
                {"type": "retry", "chat_id": chat_id, "retry": retry},
                {"type": "message_part", "chat_id": chat_id, "message_part": garbled},
                {"type": "retry", "chat_id": chat_id, "retry": {**retry, "attempt": 2}},
            ],
        )
        await world.until(lambda: any(t.startswith("⟳ Retrying (attempt 2)") for t in world.bot_texts(root)))
    assert "message_part" in caplog.text
    gate.set()
    await world.until_idle_and_shown(root)
    assert world.replies(root) == ["Working and done."]
    assert not any("junk" in text for _, _, text in _texts_sent(world))


async def test_after_a_restart_a_rewritten_history_is_not_posted_again(world: World) -> None:
    """Once an edit removed messages, every new stream gets the whole history again: after a restart the
    next turn's stream shows only that turn's reply, and every earlier message stays as it was."""
    world.coder.agent = lambda prompt: [Text(f"Echo: {prompt}")]
    root = await world.mention("first")
    await world.until_idle_and_shown(root)
    reply = await world.reply(root, "secnd")
    await world.until_idle_and_shown(root, turns=2)
    await world.slack.edit(world.slack.alice, world.slack.general, reply, "second")
    await world.until(lambda: "Echo: second" in world.bot_texts(root))
    await world.until(lambda: any(is_removed_line(t) for t in world.bot_texts(root)))
    await world.until_idle_and_shown(root, turns=2)
    before = world.bot_texts(root)
    await world.stop_bridge()
    frames = len(world.coder.frame_log)
    await world.start_bridge()
    await world.reply(root, "third")
    await world.until_idle_and_shown(root, turns=3)
    resent = [e["type"] for _, _, events in world.coder.frame_log[frames:] for e in events]
    assert "history_reset" in resent, "the new stream began with the whole history"
    await world.until(lambda: len(world.bot_texts(root)) > len(before))
    after = world.bot_texts(root)
    assert after[1 : len(before)] == before[1:], "what the thread showed stays as it was"
    assert after.count("Echo: first") == after.count("Echo: second") == after.count("Echo: third") == 1
