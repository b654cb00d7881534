"""Pure text helpers for what the bridge posts: splitting long Markdown under Slack's size limits.

Agent output is posted as standard Markdown (``markdown_text``), which Slack renders itself and caps
at 12,000 characters per message. Longer replies are split at paragraph boundaries; a split inside a
fenced code block closes the fence and reopens it (with its info string) in the next part.
"""

from __future__ import annotations

MARKDOWN_LIMIT = 12_000
_FENCE = "```"


def split_markdown(text: str, limit: int = MARKDOWN_LIMIT) -> list[str]:
    """Cut ``text`` into parts of at most ``limit`` characters; joining them restores the text.

    Parts end at a blank line where possible, else at a line end, else hard. A part that ends
    inside a code fence gets a closing fence line, and the next part reopens it; nothing else is
    added or removed, so dropping those two lines gives back the text exactly.
    """
    if len(text) <= limit:
        return [text]
    parts: list[str] = []
    rest = text
    reopen = ""
    while rest:
        budget = limit - len(reopen) - len(_FENCE) - 2
        if len(reopen) + len(rest) <= limit:
            parts.append(reopen + rest)
            break
        cut = _cut_point(rest, budget)
        chunk, rest = rest[:cut], rest[cut:]
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
