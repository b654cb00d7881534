"""Splitting a long reply for Slack loses nothing: the shown parts read back as the agent's text, and
a table cut between parts goes on under its header."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bridge.sim.slack_state import SimMessage
from bridge.sim.slack_tables import tables_error
from bridge.slack.mrkdwn import split_markdown
from bridge.slack.tables import find_tables, message_blocks
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
long_tables = st.builds(
    lambda cells: "| n | cell |\n|---|---:|\n" + "\n".join(f"| {i} | {c} |" for i, c in enumerate(cells)),
    st.lists(st.sampled_from(["x", "漢字", "`y` \\| z", "w" * 30]), min_size=1, max_size=80),
)
"""Tables of up to 80 rows: many longer than a part, a few longer than a table block."""
lines = st.one_of(lines, lines, lines, long_tables)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(lines, max_size=120), st.booleans(), st.booleans())
def test_split_parts_rejoin_to_the_exact_text(
    text_lines: list[str], trailing_newline: bool, table_blocks: bool
) -> None:
    """Any Markdown of lines shorter than a quarter of the limit, and of tables, survives split and rejoin;
    measured by its source (to be streamed as Markdown text), no part is over the limit."""
    text = "\n".join(text_lines) + ("\n" if trailing_newline else "")
    parts = split_markdown(text, LIMIT, table_blocks=table_blocks)
    assert table_blocks or all(len(part) <= LIMIT for part in parts)
    assert rejoin(parts) == text


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(lines, max_size=120), st.booleans())
def test_a_table_cut_between_parts_goes_on_under_its_header(
    text_lines: list[str], table_blocks: bool
) -> None:
    """Each part after a cut between a table's rows starts with that table's header and delimiter
    rows, so no part shows rows without their header."""
    text = "\n".join(text_lines)
    parts = split_markdown(text, LIMIT, table_blocks=table_blocks)
    tables = find_tables(text)
    for index in range(1, len(parts)):
        before = rejoin(parts[:index])  # with a closing fence the split added: then no table is cut
        at = len(before) if text.startswith(before) else 0
        for table in (t for t in tables if t.start < at < t.end):
            header, delimiter, _ = text[table.start :].split("\n", 2)
            assert at > table.start + len(header) + len(delimiter) + 1
            assert parts[index].startswith(f"{header}\n{delimiter}\n")


def _posted(part: str, *, table_blocks: bool) -> SimMessage:
    """The message Slack keeps for one part, posted as the bridge's poster posts it (as blocks
    when it has tables), or as native streaming sends it (Markdown text)."""
    blocks = message_blocks(part, LIMIT) if table_blocks else None
    if blocks is None:
        assert len(part) <= LIMIT
        return SimMessage(channel="C1", ts="1.0", markdown_text=part)
    assert sum(len(b["text"]) for b in blocks if b["type"] == "markdown") <= LIMIT
    assert tables_error(blocks) is None
    return SimMessage(channel="C1", ts="1.0", text=part, blocks=blocks)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(lines, max_size=120), st.booleans(), st.booleans())
def test_posted_parts_read_back_as_the_text(
    text_lines: list[str], trailing_newline: bool, table_blocks: bool
) -> None:
    """Posted with tables as table blocks or code blocks, or streamed as Markdown text, within
    Slack's limits, every part reads back as its text with its tables in normal form
    (tests/slack_text.py)."""
    text = "\n".join(text_lines) + ("\n" if trailing_newline else "")
    parts = split_markdown(text, LIMIT, table_blocks=table_blocks)
    posted = [shown(_posted(p, table_blocks=table_blocks)) for p in parts]
    assert rejoin(posted) == rejoin([as_shown(p) if table_blocks else p for p in parts])
