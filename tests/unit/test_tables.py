"""GFM tables in agent Markdown as Slack blocks, and splitting long replies around them."""

from __future__ import annotations

from typing import Any

from bridge.slack.mrkdwn import split_markdown
from bridge.slack.tables import FALLBACK_COST, find_tables, message_blocks

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


def test_a_table_longer_than_a_part_is_cut_at_a_row() -> None:
    """A table that fits in no part is cut between rows, like any text."""
    table = "| n |\n|---|\n" + "\n".join(f"| {i} |" for i in range(100))
    parts = split_markdown(table, 200)
    assert len(parts) > 1
    assert "".join(parts) == table
    assert all(part.endswith("|\n") for part in parts[:-1])
