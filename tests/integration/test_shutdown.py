"""SIGTERM mid-reply: exit 0 within the bound, cursor saved, and the restart completes the thread."""

from __future__ import annotations

import asyncio
import signal
import sqlite3
from pathlib import Path

import httpx

from bridge.sim.coder import CoderSim
from bridge.sim.coder_agent import Gate, Step, Text
from bridge.sim.coder_state import SimChat
from bridge.sim.sender import Delivery
from bridge.sim.slack import SlackSim
from tests.integration.conftest import assistant_texts
from tests.integration.processes import BridgeProcess, serve_env

SHUTDOWN_TIMEOUT = 4.0


async def _until_refusing(bridge: BridgeProcess) -> None:
    """Wait until the stopping bridge says it takes no events (polled, as a load balancer does)."""
    async with httpx.AsyncClient() as client:
        for _ in range(500):
            if (await client.get(f"http://127.0.0.1:{bridge.port}/readyz")).status_code != 200:
                return
            await asyncio.sleep(0.02)
    raise TimeoutError("the bridge kept accepting events after SIGTERM")


def _cursor(tmp_path: Path, chat_id: str) -> int | None:
    with sqlite3.connect(tmp_path / "bridge.db") as conn:
        row = conn.execute("SELECT after_id FROM stream_cursor WHERE chat_id = ?", (chat_id,)).fetchone()
    return None if row is None else int(row[0])


def _refused(delivery: Delivery, text: str) -> bool:
    """Whether this is a finished delivery of the person's message ``text`` that the bridge refused."""
    event = delivery.payload.get("event") or {}
    return delivery.done and not delivery.acked and event.get("text") == text and not event.get("bot_id")


def _sent(chat: SimChat) -> list[str]:
    """The texts of the chat's user messages, then of its queued ones."""
    rows = [m for m in chat.messages if m["role"] == "user"] + chat.queue
    return ["".join(p.get("text", "") for p in row["content"]) for row in rows]


async def test_sigterm_mid_reply_exits_cleanly_and_the_restart_completes_the_thread(
    tmp_path: Path, sims: tuple[SlackSim, CoderSim]
) -> None:
    """SIGTERM while a reply streams and a follow-up is in flight: exit 0 in time, nothing lost or doubled."""
    slack, coder = sims
    gate = asyncio.Event()

    def agent(prompt: str) -> list[Step]:
        if prompt == "go":
            return [Text("Half of the answer, "), Gate(gate), Text("and the rest.")]
        return [Text(f"Echo: {prompt}")]

    coder.agent = agent
    slack.retry_delays = ()  # the test retries the refused event itself, once the bridge is back
    env = serve_env(slack, coder, tmp_path, BRIDGE_SHUTDOWN_TIMEOUT=str(SHUTDOWN_TIMEOUT))
    bridge = await BridgeProcess.start(env, tmp_path)
    slack.event_url = bridge.events_url
    root = await slack.user_says(slack.alice, slack.general, f"<@{slack.bot_user_id}> go")

    def thread() -> list[str]:
        return [m.visible_text for m in slack.thread(slack.general, root) if m.bot_id]

    await slack.wait_for(lambda: "Half of the answer, " in thread(), timeout=20)
    (chat,) = coder.chats.values()
    coder.latency = 1.0  # the follow-up below is still on its way to Coder when SIGTERM comes
    await slack.user_says(slack.alice, slack.general, "in flight", thread_ts=root)
    await coder.wait_for(
        lambda: any(r.method == "POST" and r.path.endswith("/messages") for r in coder.requests)
    )

    started = asyncio.get_running_loop().time()
    bridge.process.send_signal(signal.SIGTERM)
    await _until_refusing(bridge)
    await slack.user_says(slack.alice, slack.general, "during shutdown", thread_ts=root, wait_ack=False)
    await slack.wait_for(lambda: any(_refused(d, "during shutdown") for d in slack.deliveries), timeout=10)
    (refused,) = [d for d in slack.deliveries if _refused(d, "during shutdown")]
    _, err = await asyncio.wait_for(bridge.process.communicate(), SHUTDOWN_TIMEOUT + 5)
    elapsed = asyncio.get_running_loop().time() - started
    assert bridge.process.returncode == 0, err.decode()
    assert elapsed < SHUTDOWN_TIMEOUT + 2
    assert _sent(chat) == ["go", "in flight"], "the follow-up in flight was finished, once"
    cursor = _cursor(tmp_path, chat.id)
    assert cursor is not None
    assert cursor >= chat.messages[0]["id"]

    coder.latency = 0.0
    gate.set()
    again = await BridgeProcess.start(env, tmp_path)
    slack.event_url = again.events_url
    try:
        retried = await slack.deliver_event(refused.payload, retry_num=1, wrap=False)  # as Slack would
        assert retried.acked
        await coder.wait_for(
            lambda: chat.status == "waiting" and sum(m["role"] == "user" for m in chat.messages) == 3,
            timeout=30,
        )
        await slack.wait_for(lambda: all(t in thread() for t in assistant_texts(chat)), timeout=20)
    finally:
        code, log = await again.stop()
    assert code == 0, log
    assert _sent(chat) == ["go", "in flight", "during shutdown"]
    assert sum("Half of the answer" in t for t in thread()) == 1
    assert "Half of the answer, and the rest." in thread()
