"""Reading a reply back: what Slack shows of one agent reply, as the agent wrote it.

The bridge posts agent Markdown as Slack ``markdown_text`` (shown as written) and splits a reply over
Slack's size limit into several messages; a split inside a code block closes the fence at the end of
one part and reopens it at the start of the next, and a split between a table's rows repeats its
header and delimiter rows at the start of the next part. Dropping exactly those added lines gives the
text back. (A cut in the middle of an over-long line cannot be told from a line end: tests avoid those.)

A message with a GFM table is posted as blocks instead: ``markdown`` blocks for its prose, one
``table`` block, and any other table as a code block opened with `````table``. Reading those back
gives each table in its normal form, so a reply whose tables are written that way reads back
exactly:

- one line a row, ``| a | b |``: a space on each side of every cell, cells trimmed, ``|`` in a cell
  written ``\\|``, an empty cell ``|  |``;
- the delimiter row without spaces: ``|---|`` for a column without alignment, ``|:---|``,
  ``|:---:|`` and ``|---:|`` for left, centre and right;
- every row as wide as the header (GFM drops extra cells and fills missing ones with empty cells).

Whitespace alone between a table block and the start or end of its message is not shown (a
``markdown`` block needs text); ``as_shown`` gives a message's text as it then reads back.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from bridge.sim.slack_state import SimMessage
from bridge.slack.tables import find_tables, table_block

_FENCE = "```"
_TABLE_FENCE = re.compile(r"^```table\n(.*?)\n```", re.DOTALL | re.MULTILINE)
_RULES = {None: "---", "left": ":---", "center": ":---:", "right": "---:"}


def _fence_open(text: str) -> bool:
    """Whether a code fence is still open at the end of ``text`` (fence lines toggle, as in Slack)."""
    open_ = False
    for line in text.splitlines():
        if line.strip().startswith(_FENCE):
            open_ = not open_
    return open_


def rejoin(parts: list[str]) -> str:
    """The parts of one split reply, in order, as the single text they were cut from."""
    text = ""
    reopened = False
    for index, part in enumerate(parts):
        # The next part starts with the fence line, or the table's header rows, the split added.
        part = part.split("\n", 1)[1] if reopened else part.removeprefix(_cut_head(text))
        closing = index < len(parts) - 1 and part.endswith("\n" + _FENCE)
        reopened = closing and _fence_open(text + part[: -len(_FENCE)])
        text += part[: -len(_FENCE)] if reopened else part
    return text


def _cut_head(text: str) -> str:
    """The header and delimiter rows of the table ``text`` ends inside, between two rows, or "" (the
    next part then starts with them again: a table goes on to the next line, so they are repeated)."""
    tables = find_tables(text)
    if not tables or not text.endswith("\n") or tables[-1].end != len(text) - 1:
        return ""
    head = text[tables[-1].start :].split("\n", 2)
    return "\n".join(head[:2]) + "\n" if len(head) == 3 and head[2] else ""


def shown(message: SimMessage) -> str:
    """A message's text as a reader sees it: its ``markdown_text``, or its blocks read back as
    Markdown when it has ``markdown`` or ``table`` blocks (``text`` is then only the notification),
    else its ``text``."""
    if message.markdown_text is not None:
        return message.markdown_text
    readable = [b for b in message.blocks if b.get("type") in ("markdown", "table")]
    if not readable:
        return message.text
    return "".join(_table_text(b) if b["type"] == "table" else _untable(b["text"]) for b in readable)


def as_shown(text: str) -> str:
    """``text`` as it reads back once posted in one message: its tables in normal form and, around
    the table that goes into the table block, no whitespace alone before or after it."""
    tables = find_tables(text)

    def normal(start: int, end: int) -> str:
        out, at = "", start
        for table in tables:
            if start <= table.start and table.end <= end:
                out += text[at : table.start] + _normal(table.aligns, table.rows)
                at = table.end
        return out + text[at:end]

    block = next((t for t in tables if table_block(t) is not None), None)
    if block is None:
        return normal(0, len(text))
    head, tail = normal(0, block.start), normal(block.end, len(text))
    return (head if head.strip() else "") + _normal(block.aligns, block.rows) + (tail if tail.strip() else "")


def _table_text(block: dict[str, Any]) -> str:
    rows = [[_cell_text(cell) for cell in row] for row in block["rows"]]
    aligns = [setting.get("align") for setting in block.get("column_settings") or []]
    aligns += [None] * (len(rows[0]) - len(aligns))
    return _normal(aligns, rows)


def _cell_text(cell: dict[str, Any]) -> str:
    if cell["type"] == "raw_text":
        return str(cell["text"]).strip()
    return "".join(part["text"] for section in cell["elements"] for part in section["elements"]).strip()


def _untable(markdown: str) -> str:
    """A ``markdown`` block's text with the tables shown as code blocks back in normal form."""

    def normal(match: re.Match[str]) -> str:
        (table,) = find_tables(match.group(1))
        return _normal(table.aligns, table.rows)

    return _TABLE_FENCE.sub(normal, markdown)


def _normal(aligns: Sequence[str | None], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    lines.insert(1, "|" + "|".join(_RULES[a] for a in aligns) + "|")
    return "\n".join(lines)
