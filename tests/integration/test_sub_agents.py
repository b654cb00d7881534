"""End to end: the sub-agents a turn delegates to are lines of their own on its status card."""

from __future__ import annotations

import asyncio

import pytest

from bridge.sim.coder_agent import Delegate, Gate, Text
from tests.integration.conftest import World


async def test_a_sub_agent_is_a_line_of_the_card_kept_current_from_the_watch(world: World) -> None:
    """The newest Coder's spawn_agent makes a child chat: the card shows it by title, linked to it
    in Coder, working; when the child's turn ends the watch says so and the line turns done while
    the parent still works. Coder without sub-agents has no such tools to show."""
    if not world.coder.dialect.late:
        pytest.skip("sub-agents (child chats) exist only in Coder's newest builds")
    child_gate, parent_gate = asyncio.Event(), asyncio.Event()
    child = [Gate(child_gate), Text("42 passed.")]
    world.coder.agent = lambda prompt: [
        Delegate("Run the tests", "Run pytest and report.", child, wait=False),
        Gate(parent_gate),
        Text("All good."),
    ]
    root = await world.mention("check everything")
    await world.until(lambda: any("🤖" in card for card in world.cards(root)))
    [sub] = [c for c in world.coder.chats.values() if c.parent_id == world.chat_of(root).id]
    assert world.bridge is not None
    assert world.bridge.backend is not None
    line = f"🤖 [Run the tests]({world.bridge.backend.chat_url(sub.id)})"
    assert any(f"{line} · ⚙️ working" in card for card in world.cards(root))
    child_gate.set()
    await world.until(lambda: any(f"{line} · ✅ done" in card for card in world.cards(root)))
    assert world.chat_of(root).status == "running", "told by the watch: the parent's stream said nothing"
    parent_gate.set()
    await world.until_idle_and_shown(root)
    assert any(f"{line} · ✅ done" in card for card in world.cards(root))
