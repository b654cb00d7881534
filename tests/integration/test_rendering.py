"""End to end: how each kind of stream event reads in the thread (retries, slow starts, reasoning,
status line, errors) and that the thread shows the agent's Markdown exactly, however long."""

from __future__ import annotations

import asyncio

import pytest

from bridge.sim.coder_agent import Fail, Gate, Pause, Reasoning, Retry, Text, ToolCall
from bridge.slack.blocks import is_retry_line
from tests.integration.conftest import World, assistant_texts
from tests.slack_text import rejoin


def _shown(world: World, method: str, prefix: str) -> list[str]:
    """Every text the bridge sent with ``method`` that starts with ``prefix`` (progress included)."""
    texts = (c.params.get("markdown_text") or "" for c in world.slack.calls_to(method))
    return [t for t in texts if t.startswith(prefix)]


async def test_retries_show_one_line_that_ends_recovered(world: World) -> None:
    """Coder's retries of the model are one message, edited in place, ending "✓ Recovered"."""
    world.require("retry_events")
    followed, gate = asyncio.Event(), asyncio.Event()
    world.coder.agent = lambda prompt: [
        Gate(followed),  # retry events are live only: no snapshot repeats them
        Retry(attempt=1, delay_ms=1000, error="Anthropic is overloaded"),
        Gate(gate),
        Retry(attempt=2, delay_ms=2000, error="Anthropic is overloaded"),
        Pause(0.05),
        Text("Sorry for the wait."),
    ]
    root = await world.mention("go")
    await world.until(lambda: world.coder.active_streams() == 1)
    followed.set()
    await world.until(
        lambda: any(t.startswith("⟳ Retrying (attempt 1) in 1s") for t in world.bot_texts(root))
    )
    gate.set()
    await world.until_idle_and_shown(root)
    await world.until(lambda: "✓ Recovered after 2 retries" in world.bot_texts(root))
    assert [t for t in world.bot_texts(root) if is_retry_line(t)] == ["✓ Recovered after 2 retries"]
    assert world.replies(root) == ["Sorry for the wait."]


async def test_failed_turn_says_why_everywhere(world: World) -> None:
    """A turn that fails after a retry: the retry line gives up, the error and the status line say why."""
    followed = asyncio.Event()
    reason = "Anthropic API error: overloaded (529)"
    world.coder.agent = lambda prompt: [
        Gate(followed),
        Retry(attempt=1, delay_ms=200, error="Anthropic is overloaded"),
        Pause(0.05),
        Fail(reason, kind="overloaded", retryable=True),
    ]
    root = await world.mention("go")
    await world.until(lambda: world.coder.active_streams() == 1)
    followed.set()
    await world.until(
        lambda: any(
            t.startswith(f"<@{world.slack.alice}> ❌ The agent stopped with an error")
            for t in world.bot_texts(root)
        )
    )
    if world.capabilities.failure_reasons:
        await world.until(lambda: world.bot_texts(root)[0].splitlines()[0].endswith(f"❌ error: {reason}"))
        assert f"⚠️ {reason}" in world.bot_texts(root)
    if world.capabilities.retry_events:
        gave_up = "✗ Gave up after 1 retry: Anthropic is overloaded"
        await world.until(lambda: gave_up in world.bot_texts(root))


async def test_status_line_follows_the_chat(world: World) -> None:
    """The header's status line says working while the agent works and waiting once it is done."""
    gate = asyncio.Event()
    world.coder.agent = lambda prompt: [Text("On it."), Gate(gate), Text(" Done.")]
    root = await world.mention("go")
    await world.until(lambda: "· ⚙️ working" in "".join(world.bot_texts(root)[:1]))
    gate.set()
    await world.until_idle_and_shown(root)
    await world.until(lambda: "· 💤 waiting" in "".join(world.bot_texts(root)[:1]))


async def test_workspace_start_is_shown_while_it_lasts(world: World) -> None:
    """While the agent's workspace is being created the card says so, with a clock, then ends done."""
    if not world.capabilities.labels:  # the 2025 AI-SDK API: chatd's workspace tools do not exist there
        pytest.skip("the 2025 AI-SDK API has no create_workspace tool, and shows a tool call with its result")
    await world.stop_bridge()
    await world.start_bridge(slow_start_after=0.05)
    world.coder.agent = lambda prompt: [
        ToolCall("create_workspace", {"name": "fix-login"}, {"workspace_name": "fix-login"}, seconds=0.6),
        Text("Workspace ready."),
    ]
    root = await world.mention("go")
    await world.until_idle_and_shown(root)
    await world.until(lambda: world.cards(root) == ["✅ Done · 1 tool\n- ✓ create_workspace `fix-login`"])
    starting = _shown(world, "chat.postMessage", "⏳ Starting workspace… ") + _shown(
        world, "chat.update", "⏳ Starting workspace… "
    )
    assert starting, "the card said the workspace was starting"
    assert world.replies(root) == ["Workspace ready."]


async def test_reasoning_is_hidden_unless_asked_for(world: World) -> None:
    """By default the thread shows no reasoning; with BRIDGE_SHOW_REASONING it is quoted above the reply."""
    world.coder.agent = lambda prompt: [Reasoning(f"Thinking about {prompt}."), Text(f"Answer to {prompt}.")]
    root = await world.mention("one")
    await world.until_idle_and_shown(root)
    assert world.replies(root) == ["Answer to one."]
    assert not any("💭" in t for t in world.bot_texts(root))
    await world.stop_bridge()
    await world.start_bridge(show_reasoning=True)
    second = await world.mention("two")
    await world.until(lambda: "> 💭 _Thinking about two._\n\nAnswer to two." in world.bot_texts(second))


def _fidelity_text() -> str:
    """A reply with every Markdown construct agents use, Unicode, and a code block over Slack's limit."""
    code = "\n".join(f"    step_{i:03} = compute('{'ü' * 40}', {i})  # 🙂 漢字" for i in range(160))
    return (
        "# Fix for the login bug\n\n"
        "The **cause**: `login()` compared hashes with `==`. See [the docs](https://example.com/a?b=1&c=2).\n\n"
        "- first *point*\n  - nested ~~old~~ point\n1. numbered\n\n"
        "> a quote with <angle brackets> & ampersands\n\n"
        "| file | change |\n|---|---|\n| `auth.py` | +12 −3 |\n| `routes.py` | +1 −1 |\n\n"
        "Unicode: ünïcödé, 漢字, العربية, emoji 👩‍💻🚀, combining e\u0301.\n\n"
        f"```python\ndef long():\n{code}\n```\n\n"
        "```\nplain block\n\n\nwith blank lines\n```\n\n"
        "That's all."
    )


async def test_thread_shows_the_agents_markdown_exactly(world: World) -> None:
    """Code blocks, tables, Unicode and a reply over Slack's limit: the thread, read back, is the text."""
    text = _fidelity_text()
    assert len(text) > 12_000
    world.coder.agent = lambda prompt: [Text(text)]
    root = await world.mention("explain")
    await world.until(lambda: rejoin(world.replies(root)) == text, timeout=30)
    assert assistant_texts(world.chat_of(root)) == [text]
    parts = world.replies(root)
    assert len(parts) >= 2
    assert all(len(p) <= 12_000 for p in parts)
    assert parts[0].endswith("\n```"), "the split closes the open code block"
    assert parts[1].startswith("```python\n"), "and reopens it with its language"
