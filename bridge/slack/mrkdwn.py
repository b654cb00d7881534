"""Pure text helpers for what the bridge posts: splitting long Markdown under Slack's size limits.

Agent output is posted as standard Markdown, which Slack renders itself and caps at 12,000
characters per message. Longer replies are split at paragraph boundaries; a split inside a fenced
code block closes the fence and reopens it (with its info string) in the next part. A GFM table is
kept whole in one part where it fits, since each part is one message and a table in it becomes a
``table`` block (bridge/slack/tables.py).
"""

from __future__ import annotations

from collections.abc import Sequence

from bridge.slack.tables import FALLBACK_COST, Table, find_tables, most_tables

MARKDOWN_LIMIT = 12_000
_FENCE = "```"


def split_markdown(text: str, limit: int = MARKDOWN_LIMIT) -> list[str]:
    """Cut ``text`` into parts of at most ``limit`` characters; joining them restores the text.

    Parts end at a blank line where possible, else at a line end, else hard, and never inside a
    table that fits in a part. Each table counts ``FALLBACK_COST`` more, the room it needs if it is
    shown as a code block. A part that ends inside a code fence gets a closing fence line, and the
    next part reopens it; nothing else is added or removed, so dropping those two lines gives back
    the text exactly.
    """
    if len(text) + FALLBACK_COST * most_tables(text) <= limit:
        return [text]
    tables = find_tables(text)
    parts: list[str] = []
    offset = 0
    reopen = ""
    while offset < len(text):
        rest = text[offset:]
        ahead = [t for t in tables if t.start >= offset]
        if len(reopen) + len(rest) + FALLBACK_COST * len(ahead) <= limit:
            parts.append(reopen + rest)
            break
        budget = _room(offset, limit - len(reopen) - len(_FENCE) - 2, ahead)
        cut = _outside_tables(offset, _cut_point(rest, budget), ahead)
        chunk = rest[:cut]
        offset += cut
        fence = _open_fence_after(reopen + chunk)
        body = reopen + chunk
        if fence is not None:
            # Only the fence lines are added: blank lines at the cut stay (they may be code).
            body += ("" if body.endswith("\n") else "\n") + _FENCE
            reopen = fence + "\n"
        else:
            reopen = ""
        parts.append(body)
    return parts


def _room(offset: int, room: int, ahead: Sequence[Table]) -> int:
    """How much text from ``offset`` fits in ``room`` with each table starting in it counted more."""
    count = 0
    while count < len(ahead) and ahead[count].start - offset < room - FALLBACK_COST * count:
        count += 1
    return max(room - FALLBACK_COST * count, 1)


def _outside_tables(offset: int, cut: int, ahead: Sequence[Table]) -> int:
    """``cut``, or the start of the table it would cut in two when the part holds text before it
    (a table longer than a part is cut like text)."""
    for table in ahead:
        if table.start - offset < cut < table.end - offset and table.start > offset:
            return table.start - offset
    return cut


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
