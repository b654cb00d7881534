"""Pure text helpers for what the bridge posts: splitting long Markdown under Slack's size limits.

Agent output is posted as standard Markdown, which Slack renders itself and caps at 12,000
characters per message. Longer replies are split at paragraph boundaries; a split inside a fenced
code block closes the fence and reopens it (with its info string) in the next part. A GFM table is
kept whole in one part where it fits, since each part is one message and a table in it becomes a
``table`` block (bridge/slack/tables.py); one too long for any part is cut between rows, and each
part it goes on in starts with its header again, so no part shows rows without their header.

What counts against the limit depends on how the parts are posted. As blocks (the poster's way),
a message's first table that fits a table block is no Markdown at all: only the prose and the other
tables (as code blocks) count, so such a table stays whole however long its source. As Markdown
text (native streaming streams the text as written), every character counts.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from itertools import islice

from bridge.slack.tables import FALLBACK_COST, Table, find_tables, most_tables, table_block

MARKDOWN_LIMIT = 12_000
TEXT_LIMIT = 40_000
"""Slack's limit on a message's ``text``, which carries a blocks message's whole source."""
_FENCE = "```"
_FENCE_ROOM = len(_FENCE) + 2
"""What a part keeps free for a closing fence line."""
_LINE_BREAK = re.compile(r"\r\n|\r|\n")


def split_markdown(text: str, limit: int = MARKDOWN_LIMIT, *, table_blocks: bool = False) -> list[str]:
    """Cut ``text`` into parts within ``limit``; joining them, less the lines the split repeats,
    restores the text.

    Parts end at a blank line where possible, else at a line end, else hard, and never inside a
    table that fits in a part. Each table counts ``FALLBACK_COST`` more, the room it needs if it is
    shown as a code block. With ``table_blocks`` (parts posted as blocks), a part's first table that
    fits a table block counts nothing, as Slack counts it (its source still counts against
    ``TEXT_LIMIT``, which caps it); without, a part is at most ``limit`` characters.

    Two kinds of lines are repeated. A part that ends inside a code fence gets a closing fence line,
    and the next part reopens it. A part that ends inside a table (one too long for a part) is
    followed by one that starts with the table's header and delimiter rows again. Dropping those
    lines gives back the text exactly.
    """
    if len(text) + FALLBACK_COST * most_tables(text) <= limit:
        return [text]
    tables = find_tables(text)
    shown = (
        {t.start: t.end - t.start <= TEXT_LIMIT - limit for t in tables if table_block(t)}
        if table_blocks
        else {}
    )
    parts: list[str] = []
    offset = 0
    reopen, header = "", False
    while offset < len(text):
        rest = text[offset:]
        ahead = [t for t in tables if t.start >= offset]
        # A part that goes on with a table counts it as a code block, and no other table as free.
        free = None if header else _free(ahead, shown)
        room = limit - len(reopen) - FALLBACK_COST * header
        if len(rest) + _cost(ahead, free) <= room:
            parts.append(reopen + rest)
            break
        budget = _room(offset, room - _FENCE_ROOM, ahead, free)
        cut = _outside_tables(text, offset, _cut_point(rest, budget), ahead, limit, shown)
        chunk = rest[:cut]
        offset += cut
        body = reopen + chunk
        fence = _open_fence_after(body)
        if fence is not None:
            # Only the fence lines are added: blank lines at the cut stay (they may be code).
            body += ("" if body.endswith("\n") else "\n") + _FENCE
            reopen, header = fence + "\n", False
        else:
            head = _goes_on(text, offset, tables)
            reopen, header = head or "", head is not None
        parts.append(body)
    return parts


def _free(ahead: Sequence[Table], shown: dict[int, bool]) -> Table | None:
    """The table of ``ahead`` that the first part holding it shows as a table block, when its source
    may go into that message whole (``shown``: start of each table that fits a table block -> may)."""
    first = next((t for t in ahead if t.start in shown), None)
    return first if first is not None and shown[first.start] else None


def _cost(tables: Sequence[Table], free: Table | None) -> int:
    """What ``tables`` add to the Markdown of the part that holds them: a code block's fences each,
    and nothing of the one shown as a table block."""
    if free is None:
        return FALLBACK_COST * len(tables)
    return FALLBACK_COST * (len(tables) - 1) - (free.end - free.start)


def _room(offset: int, room: int, ahead: Sequence[Table], free: Table | None) -> int:
    """How much text from ``offset`` fits in ``room`` with each table starting in it counted more,
    and the one shown as a table block not at all."""
    count = saved = 0
    for table in ahead:
        if table.start - offset >= room - FALLBACK_COST * count + saved:
            break
        if table is free:
            saved = table.end - table.start
        else:
            count += 1
    return max(room - FALLBACK_COST * count + saved, 1)


def _outside_tables(
    text: str, offset: int, cut: int, ahead: Sequence[Table], limit: int, shown: dict[int, bool]
) -> int:
    """``cut``, or the start of the table it would cut in two when the part holds text before it and
    the table fits whole in the next part (a table longer than a part is cut like text, between rows:
    a cut in its header rows moves to its start too)."""
    for table in ahead:
        if table.start - offset < cut < table.end - offset and table.start > offset:
            whole = shown.get(table.start) or table.end - table.start + FALLBACK_COST < limit - _FENCE_ROOM
            head = _head(text, table)
            if whole or head is None or offset + cut <= table.start + len(head):
                return table.start - offset
    return cut


def _goes_on(text: str, at: int, tables: Sequence[Table]) -> str | None:
    """The header and delimiter rows of the table a cut at ``at`` leaves rows of for the next part,
    when it cuts one between rows."""
    if text[at - 1] != "\n":
        return None
    for table in tables:
        head = _head(text, table)
        if head is not None and table.start + len(head) <= at < table.end:
            return head
    return None


def _head(text: str, table: Table) -> str | None:
    """The table's header and delimiter rows with their line breaks; None for a table of no rows."""
    second = next(islice(_LINE_BREAK.finditer(text, table.start, table.end), 1, None), None)
    return text[table.start : second.end()] if second is not None else None


def _cut_point(text: str, budget: int) -> int:
    window = text[:budget]
    for sep in ("\n\n", "\n"):
        at = window.rfind(sep)
        if at > budget // 2:
            return at + len(sep)
    return max(budget, 1)


def _open_fence_after(text: str) -> str | None:
    """The opening fence line still open at the end of ``text``, or None when all are closed."""
    open_line: str | None = None
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith(_FENCE):
            open_line = None if open_line is not None else stripped
    return open_line
