"""Reading a split reply back: Slack's shown parts of one agent reply, as the agent wrote it.

The bridge posts agent Markdown as Slack ``markdown_text`` (shown as written) and splits a reply over
Slack's size limit into several messages; a split inside a code block closes the fence at the end of
one part and reopens it at the start of the next. Dropping exactly those added lines gives the text
back. (A cut in the middle of an over-long line cannot be told from a line end: tests avoid those.)
"""

from __future__ import annotations

_FENCE = "```"


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
        if reopened:  # the next part starts with the fence line the split added
            part = part.split("\n", 1)[1]
        closing = index < len(parts) - 1 and part.endswith("\n" + _FENCE)
        reopened = closing and _fence_open(text + part[: -len(_FENCE)])
        text += part[: -len(_FENCE)] if reopened else part
    return text
