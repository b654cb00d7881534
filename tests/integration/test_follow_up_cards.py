"""Each turn of a chat gets its own status card: a follow-up's tool calls never land on an earlier card."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from bridge.sim.coder_agent import Gate, Step, Text, ToolCall
from tests.integration.conftest import World, user_texts


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


async def test_a_turn_that_ended_during_a_restart_has_its_card_closed(world: World) -> None:
    """The bridge stops mid-turn; while it is down the turn calls one more tool and ends, and Coder
    goes on to the queued follow-up. Once back, the first card says done with both tools at once, and
    the follow-up's tool, whose deltas the snapshot sends first, gets a card of its own."""
    if world.capabilities.queue != "coder":
        pytest.skip("G0a holds follow-ups in the bridge: Coder cannot go on to one while it is down")
    first, second = asyncio.Event(), asyncio.Event()

    def agent(prompt: str) -> Sequence[Step]:
        if "second" in prompt:
            return [ToolCall("grep", {"path": "grep.txt"}, {"ok": True}), Gate(second), Text("did grep")]
        return [
            ToolCall("read_file", {"path": "read_file.txt"}, {"ok": True}),
            Gate(first),
            ToolCall("execute", {"command": "make"}, {"ok": True}),
            Text("did read_file"),
        ]

    world.coder.agent = agent
    root = await world.mention("first task")
    await world.until(lambda: any("read_file" in card for card in world.cards(root)))
    await world.reply(root, "second task")
    await world.until(lambda: len(world.chat_of(root).queue) == 1)
    await world.stop_bridge()
    first.set()
    await world.until(lambda: len(user_texts(world.chat_of(root))) == 2)
    await world.start_bridge()
    await world.until(lambda: world.cards(root)[0].startswith("✅ Done · 2 tools"))
    second.set()
    await world.until_idle_and_shown(root, turns=2)
    await world.until(lambda: len(world.cards(root)) == 2 and world.cards(root)[1].startswith("✅"))
    done_first, done_second = world.cards(root)
    assert "read_file" in done_first
    assert "execute" in done_first
    assert "grep" not in done_first
    assert "grep" in done_second
    assert "read_file" not in done_second
