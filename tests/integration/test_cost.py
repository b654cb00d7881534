"""End to end: the opt-in footer of what a turn used and cost, and a chat's totals in `/coder status`."""

from __future__ import annotations

from bridge.sim.coder_agent import Text, ToolCall
from tests.integration.conftest import World
from tests.integration.test_chat_commands import _coder


async def test_cost_footer_and_status_totals(world: World) -> None:
    """With ``BRIDGE_COST_FOOTER`` the completion line ends with the turn's tokens, the context used
    against the model's limit and, where Coder reports it (its newest builds), the chat's cost so
    far; `/coder status <chat>` adds up the whole chat. Where Coder records no usage (the 2025 API)
    both say so by leaving it out."""
    await world.stop_bridge()
    await world.start_bridge(cost_footer=True)
    world.coder.agent = lambda prompt: [
        ToolCall("read_file", {"path": "src/auth.ts"}, "ok"),
        Text("Fixed it."),
    ]
    root = await world.mention("fix the login bug")
    await world.until_idle_and_shown(root)
    alice = f"<@{world.slack.alice}>"
    await world.until(lambda: world.bot_texts(root)[-1].startswith(alice))
    line = world.bot_texts(root)[-1]
    chat = world.chat_of(root)
    status = await _coder(world, f"status {chat.id}")
    calls = [m["usage"] for m in chat.messages if m.get("usage")]
    if not calls:
        assert "🪙" not in line
        assert "recorded no token usage" in status
        return
    # The simulator's model reads 1,200 tokens a call; the tool call and the reply are two calls.
    assert [u["input_tokens"] for u in calls] == [1200, 1200]
    assert line.splitlines()[-1].startswith("🪙 2.4k tokens in · ")
    assert "context 1.2k of 200k (1%)" in line
    assert ("so far" in line) is world.coder.dialect.late, "cost only where Coder reports it"
    assert "In all: 🪙 2.4k tokens in" in status
    assert ("so far" in status) is world.coder.dialect.late
