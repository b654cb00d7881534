"""GFM tables in agent Markdown as Slack blocks, and splitting long replies around them."""

from __future__ import annotations

from typing import Any

import pytest
from slack_sdk.models.blocks import Block as BlockModel

from bridge.sim.slack_tables import tables_error
from bridge.slack.mrkdwn import MARKDOWN_LIMIT, TEXT_LIMIT, split_markdown
from bridge.slack.tables import FALLBACK_COST, Block, find_tables, message_blocks
from tests.slack_text import rejoin

TABLE = "| a | b |\n|:---|---:|\n| 1 |  |"


def _kinds(blocks: list[dict[str, Any]] | None) -> list[str]:
    assert blocks is not None
    return [b["type"] for b in blocks]


def test_text_without_a_table_needs_no_blocks() -> None:
    """Slack's own Markdown shows text without tables, including a table inside a code block."""
    assert message_blocks("plain **text**\n\n```\n| a | b |\n|---|---|\n```", 12_000) is None


def test_the_table_block_sits_between_the_exact_prose() -> None:
    """The prose around the table keeps every character; the header row is bold and empty cells hold
    a space (a table cell must not be empty)."""
    blocks = message_blocks(f"Before:\n\n{TABLE}\n\nafter.", 12_000)
    assert _kinds(blocks) == ["markdown", "table", "markdown"]
    assert blocks is not None
    assert [blocks[0]["text"], blocks[2]["text"]] == ["Before:\n\n", "\n\nafter."]
    header, row = blocks[1]["rows"]
    assert header[0]["elements"][0]["elements"] == [{"type": "text", "text": "a", "style": {"bold": True}}]
    assert row == [{"type": "raw_text", "text": "1"}, {"type": "raw_text", "text": " "}]
    assert blocks[1]["column_settings"] == [
        {"is_wrapped": True, "align": "left"},
        {"is_wrapped": True, "align": "right"},
    ]


def test_whitespace_alone_around_the_table_block_is_left_out() -> None:
    """A markdown block needs text: a message that is only a table is only the table block."""
    assert _kinds(message_blocks(f"\n{TABLE}\n\n", 12_000)) == ["table"]


def test_a_table_too_wide_for_a_block_leaves_it_to_the_next_table() -> None:
    """Over 20 columns is a code block; the next table that fits is the table block."""
    wide = "|" + " c |" * 21 + "\n|" + "---|" * 21
    blocks = message_blocks(f"{wide}\n\n{TABLE}", 12_000)
    assert _kinds(blocks) == ["markdown", "table"]
    assert blocks is not None
    assert blocks[0]["text"].startswith("```table\n| c   | c   |")


def test_other_tables_are_aligned_code_blocks() -> None:
    """Columns are padded to line up in monospace (wide characters count two), as each is aligned."""
    second = "| name | n | mid |\n|---|--:|:-:|\n| 漢字 | 10 | x |\n| \\| | 1 |  |"
    blocks = message_blocks(f"{TABLE}\n\n{second}", 12_000)
    assert blocks is not None
    assert blocks[1]["text"] == (
        "\n\n```table\n"
        "| name |   n | mid |\n"
        "|------|----:|:---:|\n"
        "| 漢字 |  10 |  x  |\n"
        "| \\|   |   1 |     |\n"
        "```"
    )


def test_tables_are_shown_as_written_when_padding_would_not_fit() -> None:
    """Padding that would take the Markdown over the limit gives way to the table's own lines."""
    ragged = "| a | b |\n|---|---|\n| " + "x" * 40 + " | y |\n" + "| 1 | 2 |\n" * 20
    text = f"{TABLE}\n\n{ragged}"
    blocks = message_blocks(text, len(text))
    assert blocks is not None
    assert blocks[1]["text"] == "\n\n```table\n" + ragged.rstrip("\n") + "\n```\n"


def test_a_split_keeps_a_table_whole_in_the_next_part() -> None:
    """Where a cut would fall inside a table that fits in a part, the part ends before the table."""
    table = "| n | square |\n|---|---|\n" + "\n".join(f"| {i} | {i * i} |" for i in range(12))
    text = "intro " * 20 + "\n\n" + table + "\n\nend"
    parts = split_markdown(text, 200)
    assert "".join(parts) == text
    assert any(part.startswith(table) for part in parts)
    assert all(len(part) + FALLBACK_COST * len(find_tables(part)) <= 200 for part in parts)


def test_a_table_longer_than_a_part_is_cut_at_a_row_under_its_header() -> None:
    """A table that fits in no part is cut between rows, and each part it goes on in starts with its
    header and delimiter rows again."""
    table = "| n |\n|---|\n" + "\n".join(f"| {i} |" for i in range(100))
    parts = split_markdown(table, 200)
    assert len(parts) > 1
    assert rejoin(parts) == table
    assert all(part.endswith("|\n") for part in parts[:-1])
    assert all(part.startswith("| n |\n|---|\n| ") for part in parts)
    assert all(len(part) + FALLBACK_COST <= 200 for part in parts)


def _rows(count: int, label: str = "") -> str:
    """A table as agents write them, its columns padded to line up: padded to 28 characters a cell."""
    rows = [("name", "status", "owner", "notes")] + [
        (
            f"{label}service-{i:03}",
            "healthy" if i % 3 else "degraded",
            f"team-{i % 7}",
            f"checked {i} min ago",
        )
        for i in range(count)
    ]
    lines = ["| " + " | ".join(cell.ljust(28) for cell in row) + " |" for row in rows]
    lines.insert(1, "|" + "|".join(["-" * 30] * 4) + "|")
    return "\n".join(lines)


def _slack_takes(part: str, *, table_blocks: bool) -> list[Block]:
    """The blocks of the message posting ``part`` as the poster posts it (none: ``markdown_text``),
    checked against Slack's limits and slack-sdk's Block Kit models."""
    blocks = message_blocks(part, MARKDOWN_LIMIT) if table_blocks else None
    if blocks is None:
        assert len(part) <= MARKDOWN_LIMIT
        return []
    assert len(part) <= TEXT_LIMIT
    assert sum(len(b["text"]) for b in blocks if b["type"] == "markdown") <= MARKDOWN_LIMIT
    assert tables_error(blocks) is None
    for block in blocks:
        model = BlockModel.parse(block)
        assert model is not None
        model.validate_json()
    return blocks


def test_a_table_that_fits_a_table_block_stays_whole_however_long_its_source() -> None:
    """Posted as blocks, a 100-row table whose cells fit a table block but whose source is over
    12,000 characters goes in one message, as one table block: its source is no Markdown there."""
    text = "Here is every service:\n\n" + _rows(99) + "\n\nAll checked."
    assert len(text) > MARKDOWN_LIMIT
    (part,) = split_markdown(text, table_blocks=True)
    blocks = _slack_takes(part, table_blocks=True)
    assert [b["type"] for b in blocks] == ["markdown", "table", "markdown"]
    assert len(blocks[1]["rows"]) == 100


def test_a_table_streamed_as_markdown_is_cut_by_its_source() -> None:
    """Streamed as Markdown text, the same table is cut at a row, the next part under its header."""
    text = "Here is every service:\n\n" + _rows(99) + "\n\nAll checked."
    parts = split_markdown(text)
    assert len(parts) == 2
    assert rejoin(parts) == text
    assert parts[1].startswith(_rows(0) + "\n| service-")
    for part in parts:
        _slack_takes(part, table_blocks=False)


@pytest.mark.parametrize("table_blocks", [True, False])
def test_a_600_row_reply_fills_its_first_message(table_blocks: bool) -> None:
    """A table too long for any message is cut like text: the first message holds the line before it
    and as many rows as fit, each next one its header and the rows that follow."""
    text = "All 600 services:\n\n" + _rows(600) + "\n\nThat is all."
    parts = split_markdown(text, table_blocks=table_blocks)
    assert rejoin(parts) == text
    assert len(parts[0]) > MARKDOWN_LIMIT - 200
    assert all(part.startswith(_rows(0) + "\n| service-") for part in parts[1:])
    for part in parts:
        _slack_takes(part, table_blocks=table_blocks)
