"""Crashes: an event acknowledged just before a SIGKILL is still handled, once, after the restart;
reactions decided just before one are set after it."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import text

from bridge.db import repo
from bridge.db.engine import Database
from bridge.sim.coder import CoderSim
from bridge.sim.coder_agent import Gate, Step, Text
from bridge.sim.coder_state import SimChat
from bridge.sim.slack import SlackSim
from tests.integration.conftest import CODER_TOKEN, SIGNING_SECRET, World, until_logged, user_texts
from tests.integration.processes import BridgeProcess, serve_env


@pytest.mark.parametrize(
    "killed_during",
    ["/api/v2/users/me", "/api/experimental/chats"],
    ids=["before-create", "during-create"],
)
async def test_mention_acknowledged_before_a_crash_becomes_one_chat(
    tmp_path: Path, sims: tuple[SlackSim, CoderSim], killed_during: str
) -> None:
    """SIGKILL after the ack, before or while the chat is created: after a restart there is one chat."""
    slack, coder = sims
    env = serve_env(slack, coder, tmp_path)
    bridge = await BridgeProcess.start(env, tmp_path)
    slack.event_url = bridge.events_url
    coder.latency = 1.0  # Coder is slow: the bridge has acknowledged the mention and waits on Coder
    root = await slack.user_says(slack.alice, slack.general, f"<@{slack.bot_user_id}> fix the login bug")
    await coder.wait_for(
        lambda: any(
            r.path == killed_during
            for r in coder.requests
            if r.method != "GET" or killed_during.endswith("/me")
        ),
        timeout=10,
    )
    await bridge.kill()
    if killed_during.endswith("/chats"):
        await coder.wait_for(lambda: len(coder.chats) == 1, timeout=10)  # Coder finished it anyway
    coder.latency = 0.0
    again = await BridgeProcess.start(env, tmp_path)
    slack.event_url = again.events_url
    try:
        await slack.wait_for(
            lambda: any("Run `pytest" in m.visible_text for m in slack.thread(slack.general, root)),
            timeout=20,
        )
    finally:
        code, log = await again.stop()
    assert len(coder.chats) == 1
    shown = [m.visible_text for m in slack.thread(slack.general, root) if m.bot_id]
    assert len([t for t in shown if "Started a Coder chat" in t]) == 1
    assert "Started a Coder chat" in shown[0], "the header goes first, whichever part resumed the chat"
    assert code == 0, log
    assert "acknowledged before the last stop" in log


async def test_follow_up_sent_just_before_a_crash_is_answered_after_the_restart(
    tmp_path: Path, sims: tuple[SlackSim, CoderSim]
) -> None:
    """SIGKILL right after Coder took a follow-up, before its stream said busy: the answer is shown."""
    slack, coder = sims
    coder.agent = lambda prompt: [Text(f"Echo: {prompt}")]
    env = serve_env(slack, coder, tmp_path)
    bridge = await BridgeProcess.start(env, tmp_path, log=tmp_path / "bridge.log")
    slack.event_url = bridge.events_url
    root = await slack.user_says(slack.alice, slack.general, f"<@{slack.bot_user_id}> first")
    await slack.wait_for(lambda: _shown(slack, root, "The agent is done"), timeout=20)
    coder.latency = 1.0  # the bridge hears back slowly, so it cannot see the new turn before the kill
    await slack.user_says(slack.alice, slack.general, "second", thread_ts=root, wait_ack=False)
    await coder.wait_for(lambda: any(_user_count(c) == 2 for c in coder.chats.values()), timeout=10)
    await bridge.kill()
    coder.latency = 0.0
    again = await BridgeProcess.start(env, tmp_path, log=tmp_path / "bridge.log")
    slack.event_url = again.events_url
    try:
        await slack.wait_for(lambda: _shown(slack, root, "Echo: second"), timeout=20)
    finally:
        await again.stop()
    assert [_user_count(c) for c in coder.chats.values()] == [2]


async def test_crash_between_a_turns_end_and_its_reaction_ends_with_done(
    tmp_path: Path, sims: tuple[SlackSim, CoderSim]
) -> None:
    """SIGKILL once the turn's end is stored, while Slack still fails the ✅: after the restart the
    turn's message shows ✅ alone, not 👀 (the idle chat is not followed again, so only the stored
    reaction can tell)."""
    slack, coder = sims
    gate = asyncio.Event()
    coder.agent = lambda prompt: [Text("Working, "), Gate(gate), Text("done.")]
    env = serve_env(slack, coder, tmp_path)
    bridge = await BridgeProcess.start(env, tmp_path, log=tmp_path / "bridge.log")
    slack.event_url = bridge.events_url
    root = await slack.user_says(slack.alice, slack.general, f"<@{slack.bot_user_id}> first")
    await slack.wait_for(lambda: _reactions(slack, root) == {"eyes"}, timeout=20)
    slack.fail_next("reactions.add", error="internal_error", status=500, count=1000)
    gate.set()
    await slack.wait_for(
        lambda: (
            _shown(slack, root, "The agent is done") and _tried(slack, "reactions.add", "white_check_mark")
        ),
        timeout=20,
    )
    await bridge.kill()
    slack.clear_faults()
    assert _reactions(slack, root) == {"eyes"}, "the crash came before the swap"
    again = await BridgeProcess.start(env, tmp_path, log=tmp_path / "bridge.log")
    slack.event_url = again.events_url
    try:
        await slack.wait_for(lambda: _reactions(slack, root) == {"white_check_mark"}, timeout=20)
    finally:
        code, log = await again.stop()
    assert _reactions(slack, root) == {"white_check_mark"}
    assert code == 0, log


async def test_crash_after_a_follow_up_left_the_queue_clears_its_hourglass(
    tmp_path: Path, sims: tuple[SlackSim, CoderSim]
) -> None:
    """SIGKILL once Coder took a queued follow-up and the bridge stored that, while Slack still fails
    taking the ⏳ off: after the restart the follow-up shows ✅ for its turn and no ⏳."""
    slack, coder = sims
    gate = asyncio.Event()

    def agent(prompt: str) -> list[Step]:
        return (
            [Text("Working, "), Gate(gate), Text("done.")] if prompt == "first" else [Text(f"Echo: {prompt}")]
        )

    coder.agent = agent
    env = serve_env(slack, coder, tmp_path)
    bridge = await BridgeProcess.start(env, tmp_path, log=tmp_path / "bridge.log")
    slack.event_url = bridge.events_url
    root = await slack.user_says(slack.alice, slack.general, f"<@{slack.bot_user_id}> first")
    await slack.wait_for(lambda: _shown(slack, root, "Working, "), timeout=20)
    second = await slack.user_says(slack.alice, slack.general, "second", thread_ts=root)
    await slack.wait_for(lambda: _reactions(slack, second) == {"hourglass_flowing_sand"}, timeout=20)
    slack.fail_next("reactions.remove", error="internal_error", status=500, count=1000)
    gate.set()
    await slack.wait_for(
        lambda: (
            _shown(slack, root, "took this queued message")
            and _tried(slack, "reactions.remove", "hourglass_flowing_sand")
        ),
        timeout=20,
    )
    await bridge.kill()
    slack.clear_faults()
    assert "hourglass_flowing_sand" in _reactions(slack, second), "the crash came before the clean-up"
    again = await BridgeProcess.start(env, tmp_path, log=tmp_path / "bridge.log")
    slack.event_url = again.events_url
    try:
        await slack.wait_for(lambda: _reactions(slack, second) == {"white_check_mark"}, timeout=20)
        await slack.wait_for(lambda: _reactions(slack, root) == {"white_check_mark"}, timeout=20)
    finally:
        code, log = await again.stop()
    assert code == 0, log


async def _until_turn_stored(world: World, chat_id: str) -> None:
    """Wait until the bridge stored the end of the chat's turn (polled: nothing outside the
    database shows it while Slack refuses every post)."""
    assert world.bridge is not None
    for _ in range(1500):
        async with world.bridge.db.unit() as session:
            link = await repo.find_link_by_chat(session, chat_id)
        if link is not None and link.phase not in repo.FOLLOWED_PHASES:
            return
        await asyncio.sleep(0.02)
    raise TimeoutError(f"the end of chat {chat_id}'s turn was never stored")


def _reactions(slack: SlackSim, ts: str) -> set[str]:
    """The bot's reactions on a message of the general channel."""
    message = slack.message(slack.general, ts)
    assert message is not None
    return {name for name, users in message.reactions.items() if slack.bot_user_id in users}


def _tried(slack: SlackSim, method: str, name: str) -> bool:
    """Whether the bridge called ``method`` (a reaction call) for ``name`` at least once."""
    return any(c.params.get("name") == name for c in slack.calls_to(method))


def _shown(slack: SlackSim, root: str, text: str) -> bool:
    return any(text in m.visible_text for m in slack.thread(slack.general, root) if m.bot_id)


def _user_count(chat: SimChat) -> int:
    return sum(1 for m in chat.messages if m["role"] == "user")


async def test_ai_sdk_chat_cut_short_before_its_first_message_is_finished(tmp_path: Path) -> None:
    """Coder's 2025 API takes no labels, so the bridge stores them with the new chat: after a SIGKILL
    while the first message was being sent, the restart finishes that chat instead of making another."""
    async with (
        CoderSim(tokens={CODER_TOKEN: "alice"}, generation="ai-sdk", part_interval=0.002) as coder,
        SlackSim(signing_secret=SIGNING_SECRET, time_scale=0.05) as slack,
    ):
        env = serve_env(slack, coder, tmp_path)
        bridge = await BridgeProcess.start(env, tmp_path)
        slack.event_url = bridge.events_url
        coder.latency = 1.0
        root = await slack.user_says(slack.alice, slack.general, f"<@{slack.bot_user_id}> fix the login bug")
        await coder.wait_for(
            lambda: any(r.method == "POST" and r.path.endswith("/messages") for r in coder.requests),
            timeout=10,
        )
        await bridge.kill()
        coder.latency = 0.0
        again = await BridgeProcess.start(env, tmp_path)
        slack.event_url = again.events_url
        try:
            await slack.wait_for(
                lambda: any("Run `pytest" in m.visible_text for m in slack.thread(slack.general, root)),
                timeout=20,
            )
        finally:
            code, log = await again.stop()
        creations = [r for r in coder.requests if r.method == "POST" and r.path == "/api/v2/chats"]
        assert len(creations) == 1
        assert len(coder.chats) == 1
        assert code == 0, log


async def test_a_send_begun_as_a_turn_ends_keeps_the_chat_followed(world: World) -> None:
    """A follow-up's send begins (its link marked busy, as the bridge does before sending) while the
    stream stores the turn's end; the bridge stops before it follows the new turn, which Coder runs
    meanwhile. The next start follows the chat again and shows that turn's answer."""
    if not world.capabilities.replies_outlive_connection:
        pytest.skip("G0a's replies end with the bridge that asked for them: no turn runs while it is down")
    gate = asyncio.Event()
    world.coder.agent = lambda prompt: [Text(f"Echo: {prompt}"), *([Gate(gate)] if prompt == "first" else [])]
    root = await world.mention("first")
    await world.until(lambda: "Echo: first" in world.replies(root))  # the stream follows the turn
    chat = world.chat_of(root)
    assert world.bridge is not None
    async with world.bridge.db.unit() as session:
        link = await repo.find_link_by_chat(session, chat.id)
        assert link is not None
        assert link.id is not None
        await repo.mark_busy(session, link.id)
    gate.set()
    await world.until(lambda: any(t.endswith("The agent is done.") for t in world.bot_texts(root)))
    await world.stop_bridge()
    world.coder.send_from_ui(chat.id, "second")
    await world.until(lambda: chat.status == "waiting" and len(user_texts(chat)) == 2)
    await world.start_bridge()
    await world.until(lambda: "Echo: second" in world.replies(root))
    await world.until(lambda: sum(t.endswith("The agent is done.") for t in world.bot_texts(root)) == 2)


async def test_a_follow_up_taken_from_the_queue_while_the_bridge_was_down(world: World) -> None:
    """The bridge stops while a follow-up waits in Coder's queue; meanwhile the first turn ends and
    Coder takes the follow-up. After the restart the follow-up's notice says the agent took it (not
    that it left the queue), and the first turn, whose end the bridge never saw, still gets its
    completion line, above the second turn's answer: the thread reads as if nobody had stopped."""
    world.require("queue", "coder")
    root, gate = await world.busy_on_first()
    chat = world.chat_of(root)
    await world.reply(root, "second")
    await world.until(lambda: world.shows(root, "📥 Queued"))
    await world.stop_bridge()
    gate.set()
    await world.until(lambda: chat.status == "waiting" and len(user_texts(chat)) == 2)
    await world.start_bridge()
    await world.until(lambda: world.shows(root, "Echo: second"))
    await world.until(lambda: sum(t.endswith("The agent is done.") for t in world.bot_texts(root)) == 2)
    texts = world.bot_texts(root)
    assert any("took this queued message" in t for t in texts), texts
    assert not any("no longer queued" in t for t in texts), texts
    first_done = next(i for i, t in enumerate(texts) if t.endswith("The agent is done."))
    second_answer = next(i for i, t in enumerate(texts) if "Echo: second" in t)
    assert first_done < second_answer, texts


async def test_a_header_slack_never_showed_before_a_stop_stays_on_top(world: World) -> None:
    """Slack refuses every new message while a chat starts and answers, and the bridge stops: the
    answer was stored with the stream's cursor, and so was the thread's header, so after the restart
    the header still comes first, above the answer."""
    world.require("labels")  # a chat without labels is found by its header's link, shown only later
    world.slack.fail_next("chat.postMessage", error="internal_error", status=500, count=10_000)
    root = await world.mention("first")
    await world.until(lambda: world.chat_of(root) is not None)
    await _until_turn_stored(world, world.chat_of(root).id)
    await world.stop_bridge()
    world.slack.clear_faults()
    await world.start_bridge()
    await world.until_idle_and_shown(root)
    texts = world.bot_texts(root)
    assert texts[0].startswith("Started a Coder chat"), texts


async def test_a_follow_that_fails_unforeseen_is_followed_again(world: World, database_url: str) -> None:
    """A follow fails for a reason nobody foresaw (here PostgreSQL gives up waiting for the table of
    cursors, which another session holds): it is followed again shortly, from its stored cursor, and
    the turn's answer is shown with nobody writing in the thread."""
    if not database_url.startswith("postgresql"):
        pytest.skip("lock_timeout is PostgreSQL's; SQLite's writers take turns in the bridge")
    await world.stop_bridge()
    db = Database(database_url)
    try:
        async with db.unit() as session:
            name = (await session.execute(text("SELECT current_database()"))).scalar_one()
            await session.execute(text(f"ALTER DATABASE \"{name}\" SET lock_timeout = '200ms'"))
        await world.start_bridge(stream_retry_interval=0.2)
        root, gate = await world.busy_on_first()
        async with db.unit() as holding:
            await holding.execute(text("LOCK TABLE stream_cursor IN EXCLUSIVE MODE"))
            async with until_logged("bridge.relay.follow", "trying again later"):
                gate.set()
        await world.until_idle_and_shown(root)
    finally:
        await db.dispose()
