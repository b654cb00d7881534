"""End to end: how each kind of stream event reads in the thread (retries, slow starts, reasoning,
status line, errors) and that the thread shows the agent's Markdown exactly, however long."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from bridge.sim.coder_agent import Fail, Gate, Pause, Reasoning, Retry, Text, ToolCall
from bridge.sim.slack_state import SimMessage
from bridge.slack.blocks import is_retry_line
from tests.integration.conftest import World, assistant_texts
from tests.slack_text import as_shown, rejoin


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
    # Two seconds of workspace start: long enough for a loaded machine's card edit to land within it.
    world.coder.agent = lambda prompt: [
        ToolCall("create_workspace", {"name": "fix-login"}, {"workspace_name": "fix-login"}, seconds=2.0),
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
    assert all(_markdown_size(m) <= 12_000 for m in world.bot_messages(root))
    assert parts[0].endswith("\n```"), "the split closes the open code block"
    assert parts[1].startswith("```python\n"), "and reopens it with its language"


def _markdown_size(message: SimMessage) -> int:
    """What Slack counts against a message's 12,000 characters of Markdown (a table block is not)."""
    blocks = sum(len(b["text"]) for b in message.blocks if b["type"] == "markdown")
    return len(message.markdown_text or "") + blocks


def _tables_in(world: World, root: str) -> list[dict[str, Any]]:
    """The table blocks of the bot's messages in a thread."""
    return [b for m in world.bot_messages(root) for b in m.blocks if b["type"] == "table"]


def _markdown_in(world: World, root: str) -> list[str]:
    """The texts of the markdown blocks of the bot's messages in a thread."""
    return [b["text"] for m in world.bot_messages(root) for b in m.blocks if b["type"] == "markdown"]


async def test_a_table_is_shown_as_a_table_block(world: World) -> None:
    """A GFM table in a reply is a Slack table block between the prose around it, aligned as written."""
    text = (
        "The change in numbers:\n\n"
        "| file | change | note |\n|:---|---:|:---:|\n"
        "| `auth.py` | +12 −3 | a \\| b |\n| `routes.py` | +1 −1 |  |\n\n"
        "That's all."
    )
    world.coder.agent = lambda prompt: [Text(text)]
    root = await world.mention("explain")
    await world.until(lambda: world.replies(root) == [text])
    (message,) = [m for m in world.bot_messages(root) if any(b["type"] == "table" for b in m.blocks)]
    assert message.markdown_text is None
    assert message.text == text, "the text is the notification fallback"
    assert [b["type"] for b in message.blocks] == ["markdown", "table", "markdown"]
    (table,) = _tables_in(world, root)
    assert [s.get("align") for s in table["column_settings"]] == ["left", "right", "center"]
    assert table["rows"][1] == [
        {"type": "raw_text", "text": "`auth.py`"},
        {"type": "raw_text", "text": "+12 −3"},
        {"type": "raw_text", "text": "a | b"},
    ]


async def test_a_second_table_is_an_aligned_code_block(world: World) -> None:
    """A message holds one table block: the reply's next table is a code block lined up in columns."""
    first = "| a | b |\n|---|---|\n| 1 | 2 |"
    second = "| name | size |\n|---|---:|\n| 漢字 | 3 |\n| x | 1024 |"
    text = f"Before.\n\n{first}\n\nBetween.\n\n{second}\n\nAfter."
    world.coder.agent = lambda prompt: [Text(text)]
    root = await world.mention("explain")
    await world.until(lambda: world.replies(root) == [text])
    assert len(_tables_in(world, root)) == 1
    aligned = "```table\n| name | size |\n|------|-----:|\n| 漢字 |    3 |\n| x    | 1024 |\n```"
    assert any(aligned in t for t in _markdown_in(world, root))


async def test_a_table_too_large_for_a_block_is_a_code_block(world: World) -> None:
    """Over 100 rows is more than a table block takes: the table is shown as a code block instead."""
    rows = "\n".join(f"| {i} | row {i} |" for i in range(100))
    text = f"All of them:\n\n| n | name |\n|---|---|\n{rows}"
    world.coder.agent = lambda prompt: [Text(text)]
    root = await world.mention("explain")
    await world.until(lambda: world.replies(root) == [text])
    assert _tables_in(world, root) == []
    head = "\n```table\n| n   | name   |\n|-----|--------|\n| 0   | row 0  |\n"
    assert any(head in t for t in _markdown_in(world, root))


async def test_a_long_reply_is_split_around_a_table(world: World) -> None:
    """A split that would cut a table in two comes before it: the table is whole in the next part
    (this one a code block where it was cut, its message's table block taken by an earlier one)."""
    prose = "| a | b |\n|---|---|\n| 1 | 2 |\n\n"
    prose += "\n\n".join(f"Paragraph {i}: " + "words " * 30 for i in range(60))
    table = "| step | result |\n|---|---|\n" + "\n".join(f"| {i} | ok {'✓' * 10} |" for i in range(40))
    text = f"{prose}\n\n{table}\n\nThe end."
    assert len(prose) < 12_000 < len(prose) + len(table)
    world.coder.agent = lambda prompt: [Text(text)]
    root = await world.mention("explain")
    await world.until(lambda: rejoin(world.replies(root)) == text, timeout=30)
    parts = world.replies(root)
    assert len(parts) == 2
    assert parts[1].startswith(table), "the table opens the second part, whole"
    assert [len(block["rows"]) for block in _tables_in(world, root)] == [2, 41]


async def test_a_table_that_fits_a_table_block_arrives_whole_however_long_its_source(world: World) -> None:
    """A 100-row table whose cells fit a table block but whose padded source is over 12,000
    characters arrives in one message, as one table block: Slack counts none of it as Markdown."""
    rows = [("service", "status")] + [(f"service-{i:03}", "healthy") for i in range(99)]
    lines = ["| " + " | ".join(cell.ljust(56) for cell in row) + " |" for row in rows]
    table = "\n".join([lines[0], "|" + "-" * 58 + "|" + "-" * 58 + "|", *lines[1:]])
    text = f"Every service:\n\n{table}\n\nAll healthy."
    assert len(text) > 12_000
    world.coder.agent = lambda prompt: [Text(text)]
    root = await world.mention("explain")
    await world.until(lambda: world.replies(root) == [as_shown(text)], timeout=30)
    (message,) = [m for m in world.bot_messages(root) if any(b["type"] == "table" for b in m.blocks)]
    assert message.text == text
    assert [b["type"] for b in message.blocks] == ["markdown", "table", "markdown"]
    (block,) = _tables_in(world, root)
    assert len(block["rows"]) == 100
