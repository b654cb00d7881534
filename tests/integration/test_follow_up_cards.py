"""Each turn of a chat gets its own status card: a follow-up's tool calls never land on an earlier card."""

from __future__ import annotations

from collections.abc import Sequence

from bridge.sim.coder_agent import Step, Text, ToolCall
from tests.integration.conftest import World


def _agent(prompt: str) -> Sequence[Step]:
    tool = "grep" if "second" in prompt else "read_file"
    return [ToolCall(tool, {"path": f"{tool}.txt"}, {"ok": True}), Text(f"did {tool}")]


async def test_a_follow_up_turn_gets_a_card_of_its_own(world: World) -> None:
    world.coder.agent = _agent
    root = await world.mention("first task")
    await world.until_idle_and_shown(root)
    await world.reply(root, "second task")
    await world.until_idle_and_shown(root, turns=2)
    await world.until(lambda: len(world.cards(root)) == 2)
    first, second = world.cards(root)
    assert "read_file" in first
    assert "grep" not in first
    assert "grep" in second
    assert "read_file" not in second
