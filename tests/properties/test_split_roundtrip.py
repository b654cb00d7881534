"""Splitting a long reply for Slack loses nothing: the shown parts read back as the agent's text."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bridge.sim.slack_state import SimMessage
from bridge.sim.slack_tables import tables_error
from bridge.slack.mrkdwn import split_markdown
from bridge.slack.tables import message_blocks
from tests.slack_text import as_shown, rejoin, shown

LIMIT = 200
lines = st.sampled_from(
    [
        "```python",
        "```",
        "~~~",
        "| a | b |",
        "|---|---|",
        "|:--|--:|",
        "| `x` \\| y | 漢字 |",
        "| only |",
        "- item **bold** `code`",
        "# Heading",
        "",
        "    indented",
        "é漢🙂👩‍💻 עברית",
        "def f(x):  # a comment that is long enough to matter",
        "x" * 60,
    ]
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(lines, max_size=120), st.booleans())
def test_split_parts_rejoin_to_the_exact_text(text_lines: list[str], trailing_newline: bool) -> None:
    """Any Markdown made of lines shorter than a quarter of the limit survives split and rejoin."""
    text = "\n".join(text_lines) + ("\n" if trailing_newline else "")
    parts = split_markdown(text, LIMIT)
    assert all(len(part) <= LIMIT for part in parts)
    assert rejoin(parts) == text


def _posted(part: str) -> SimMessage:
    """The message Slack keeps for one part, posted as the bridge's poster posts it."""
    blocks = message_blocks(part, LIMIT)
    if blocks is None:
        return SimMessage(channel="C1", ts="1.0", markdown_text=part)
    assert sum(len(b["text"]) for b in blocks if b["type"] == "markdown") <= LIMIT
    assert tables_error(blocks) is None
    return SimMessage(channel="C1", ts="1.0", text=part, blocks=blocks)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(lines, max_size=120), st.booleans())
def test_posted_parts_read_back_as_the_text(text_lines: list[str], trailing_newline: bool) -> None:
    """Posted with tables as table blocks or code blocks, within Slack's limits, every part reads
    back as its text with its tables in normal form (tests/slack_text.py)."""
    text = "\n".join(text_lines) + ("\n" if trailing_newline else "")
    parts = split_markdown(text, LIMIT)
    assert rejoin([shown(_posted(p)) for p in parts]) == rejoin([as_shown(p) for p in parts])
