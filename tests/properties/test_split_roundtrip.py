"""Splitting a long reply for Slack loses nothing: the shown parts read back as the agent's text."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bridge.slack.mrkdwn import split_markdown
from tests.slack_text import rejoin

LIMIT = 200
lines = st.sampled_from(
    [
        "```python",
        "```",
        "~~~",
        "| a | b |",
        "|---|---|",
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
