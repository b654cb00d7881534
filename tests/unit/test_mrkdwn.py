"""Splitting long Markdown under Slack's limits."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from bridge.slack.mrkdwn import split_markdown


def _fences_balanced(part: str) -> bool:
    return sum(1 for line in part.splitlines() if line.strip().startswith("```")) % 2 == 0


def test_short_text_is_one_part() -> None:
    """Text under the limit is posted as is."""
    assert split_markdown("hello", 100) == ["hello"]


def test_splits_at_paragraphs() -> None:
    """Long text is cut at blank lines and nothing is lost."""
    text = "\n\n".join(f"paragraph {i} " + "x" * 40 for i in range(10))
    parts = split_markdown(text, 120)
    assert all(len(p) <= 120 for p in parts)
    assert "".join(parts) == text


def test_code_fence_is_closed_and_reopened() -> None:
    """A split inside a fenced block closes it and reopens it with its language."""
    code = "```python\n" + "\n".join(f"print({i})" for i in range(60)) + "\n```"
    parts = split_markdown("intro\n\n" + code, 200)
    assert len(parts) > 1
    assert all(len(p) <= 200 for p in parts)
    assert all(_fences_balanced(p) for p in parts)
    assert parts[1].startswith("```python\n")


@given(st.lists(st.sampled_from(["word ", "\n", "\n\n", "```py\n", "```\n", "é漢🙂 "]), max_size=400))
def test_parts_respect_limit_and_fences(tokens: list[str]) -> None:
    """Every part fits the limit and leaves no fence opened by the split itself."""
    text = "".join(tokens)
    parts = split_markdown(text, 100)
    assert all(len(p) <= 100 for p in parts)
    if _fences_balanced(text):
        assert all(_fences_balanced(p) for p in parts)
