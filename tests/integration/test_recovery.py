"""Crashes: an event acknowledged just before a SIGKILL is still handled, once, after the restart."""

from __future__ import annotations

from pathlib import Path

import pytest

from bridge.sim.coder import CoderSim
from bridge.sim.coder_agent import Text
from bridge.sim.coder_state import SimChat
from bridge.sim.slack import SlackSim
from tests.integration.conftest import CODER_TOKEN, SIGNING_SECRET
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
    headers = [m for m in slack.thread(slack.general, root) if "Started a Coder chat" in m.visible_text]
    assert len(headers) == 1
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
