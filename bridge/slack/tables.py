"""Pure: GFM tables in agent Markdown, shown as Slack ``table`` blocks.

Slack's standard Markdown (``markdown_text``, the ``markdown`` block) has no documented table
support, so a reply with tables is sent as blocks: its prose in ``markdown`` blocks, its first table
that fits in a ``table`` block (a message holds one: Slack answers ``only_one_table_allowed``), and
any other table as an aligned code block. Cells are sent as the agent wrote them (``raw_text``; the
header row bold), so nothing of a cell is lost or reinterpreted.

Limits (docs "Table block"; cell text total from slackapi's Block Kit guidance): ≤ 100 rows,
≤ 20 cells a row, ≤ 10,000 characters of cell text in the table.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from markdown_it import MarkdownIt

TABLE_MAX_ROWS = 100
TABLE_MAX_COLUMNS = 20
TABLE_MAX_TEXT = 10_000
CODE_FENCE = "```table"
"""Opens the code block a table falls back to; the info string tells it from the agent's own code."""
FALLBACK_COST = len(f"{CODE_FENCE}\n\n```")
"""What showing a table's lines verbatim in a code block adds to the text."""

_ALIGN_MARKS = {None: ("", ""), "left": (":", ""), "center": (":", ":"), "right": ("", ":")}
_LINE_BREAK = re.compile(r"\r\n|\r|\n")
_DELIMITER_ROW = re.compile(r"^ {0,3}[|:-][ \t|:\r-]*$", re.MULTILINE)
"""A line that may be a table's delimiter row (every GFM one is; so are some others)."""
_PARSER = MarkdownIt("commonmark").enable("table").disable(["inline", "text_join"])
"""Block structure only: inline parsing is most of the work and tables need none of it."""

Block = dict[str, Any]


@dataclass(frozen=True)
class Table:
    """A top-level GFM table: where its lines are in the text and what its cells say."""

    start: int
    """Offset of the table's first line."""
    end: int
    """Offset just past its last line's last character (that line's break excluded)."""
    aligns: tuple[str | None, ...]
    rows: tuple[tuple[str, ...], ...]
    """The header row first; cells as written (trimmed, ``\\|`` read as ``|``); every row as wide
    as the header, as GFM reads them (missing cells empty, extra cells dropped)."""


def most_tables(text: str) -> int:
    """At most how many tables ``text`` holds, found without parsing it."""
    return len(_DELIMITER_ROW.findall(text))


def find_tables(text: str) -> list[Table]:
    """The tables at the top level of ``text`` as GFM reads them (markdown-it's table rule); a table
    inside a quote or a list item stays text. Text without a possible delimiter row is not parsed:
    a chat's follow splits a growing reply at every change."""
    if not most_tables(text):
        return []
    starts = [0] + [m.end() for m in _LINE_BREAK.finditer(text)]
    ends = [m.start() for m in _LINE_BREAK.finditer(text)] + [len(text)]
    tables: list[Table] = []
    aligns: list[str | None] = []
    rows: list[list[str]] = []
    span: list[int] | None = None
    for token in _PARSER.parse(text):
        if token.type == "table_open" and token.level == 0 and token.map:
            span, aligns, rows = token.map, [], []
        elif span is None:
            continue
        elif token.type == "tr_open":
            rows.append([])
        elif token.type == "th_open":
            style = str(token.attrs.get("style", ""))
            aligns.append(style.removeprefix("text-align:") or None)
        elif token.type == "inline":
            rows[-1].append(token.content)
        elif token.type == "table_close" and token.level == 0:
            first, last = span[0], span[1] - 1
            tables.append(Table(starts[first], ends[last], tuple(aligns), tuple(map(tuple, rows))))
            span = None
    return tables


def table_block(table: Table) -> Block | None:
    """The ``table`` block showing ``table``, or None when it is beyond a table block's limits."""
    if len(table.rows) > TABLE_MAX_ROWS or len(table.aligns) > TABLE_MAX_COLUMNS:
        return None
    cells = [[cell or " " for cell in row] for row in table.rows]  # reports say an empty cell is refused
    if sum(len(cell) for row in cells for cell in row) > TABLE_MAX_TEXT:
        return None
    header = [_bold(c) for c in cells[0]]
    body = [[{"type": "raw_text", "text": c} for c in row] for row in cells[1:]]
    settings = [{"is_wrapped": True} | ({"align": a} if a else {}) for a in table.aligns]
    return {"type": "table", "rows": [header, *body], "column_settings": settings}


def aligned(table: Table, source: str) -> str:
    """The table as a code block, its columns padded to line up in Slack's monospace font."""
    rows = [[_escape(cell) for cell in row] for row in table.rows]
    widths = [max(3, *(_width(row[i]) for row in rows)) for i in range(len(table.aligns))]
    lines = [_row(rows[0], widths, table.aligns)]
    lines.append("|" + "|".join(_rule(w, a) for w, a in zip(widths, table.aligns, strict=True)) + "|")
    lines += [_row(row, widths, table.aligns) for row in rows[1:]]
    return _fenced("\n".join(lines))


def verbatim(table: Table, source: str) -> str:
    """The table's own lines as a code block: the fallback when padding would not fit the message."""
    return _fenced(source[table.start : table.end])


def message_blocks(markdown: str, limit: int) -> list[Block] | None:
    """The blocks that show ``markdown`` with its tables, or None when it has none (then Slack's own
    Markdown shows it as it is).

    Prose keeps its exact text, split around the table block; only whitespace between the table
    block and the message's start or end is left out (a ``markdown`` block needs some text). Other
    tables become code blocks, aligned unless that would take the message's Markdown over ``limit``
    (``split_markdown`` leaves room for the fences; a text cut elsewhere keeps its tables as text).
    """
    tables = find_tables(markdown)
    if not tables:
        return None
    shown = next(((t, b) for t in tables if (b := table_block(t)) is not None), None)
    blocks: list[Block] = []
    for fallback in (aligned, verbatim, _raw):
        blocks = _compose(markdown, tables, shown, fallback)
        if sum(len(b["text"]) for b in blocks if b["type"] == "markdown") <= limit:
            break
    return blocks


def _raw(table: Table, source: str) -> str:
    return source[table.start : table.end]


def _compose(
    markdown: str,
    tables: Sequence[Table],
    shown: tuple[Table, Block] | None,
    fallback: Callable[[Table, str], str],
) -> list[Block]:
    blocks: list[Block] = []
    prose, at = "", 0
    for table in tables:
        prose += markdown[at : table.start]
        at = table.end
        if shown is not None and table is shown[0]:
            blocks += _prose(prose)
            blocks.append(shown[1])
            prose = ""
        else:
            prose += fallback(table, markdown)
    return blocks + _prose(prose + markdown[at:])


def _bold(text: str) -> Block:
    section = {
        "type": "rich_text_section",
        "elements": [{"type": "text", "text": text, "style": {"bold": True}}],
    }
    return {"type": "rich_text", "elements": [section]}


def _prose(text: str) -> list[Block]:
    return [{"type": "markdown", "text": text}] if text.strip() else []


def _fenced(body: str) -> str:
    return f"{CODE_FENCE}\n{body}\n```"


def _escape(cell: str) -> str:
    return cell.replace("|", "\\|")


def _width(text: str) -> int:
    """Columns ``text`` takes in a monospace font: wide East Asian characters two, marks none."""
    return sum(
        0 if unicodedata.combining(c) else 2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text
    )


def _row(cells: Sequence[str], widths: Sequence[int], aligns: Sequence[str | None]) -> str:
    return "| " + " | ".join(_pad(c, w, a) for c, w, a in zip(cells, widths, aligns, strict=True)) + " |"


def _pad(cell: str, width: int, align: str | None) -> str:
    room = width - _width(cell)
    if align == "right":
        return " " * room + cell
    if align == "center":
        return " " * (room // 2) + cell + " " * (room - room // 2)
    return cell + " " * room


def _rule(width: int, align: str | None) -> str:
    left, right = _ALIGN_MARKS[align]
    return left + "-" * (width + 2 - len(left) - len(right)) + right
