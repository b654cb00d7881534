"""Rendering the PR / diff summary a thread shows for the agent's changes."""

from __future__ import annotations

from typing import Any

import pytest

from bridge.coder.types import ChatDiff, ChatDiffStatus, ChatId, FileChange
from bridge.slack.blocks import render_diff_summary

PR = "https://github.com/acme/app/pull/12"


def status(**fields: Any) -> ChatDiffStatus:
    base: dict[str, Any] = {
        "url": PR,
        "pull_request_state": "open",
        "pull_request_title": "Fix login",
        "additions": 10,
        "deletions": 2,
        "changed_files": 2,
    }
    return ChatDiffStatus(**{**base, **fields})


def diff(*paths: str, **fields: Any) -> ChatDiff:
    files = tuple(FileChange(path=p, additions=3, deletions=1) for p in paths)
    return ChatDiff(chat_id=ChatId("c1"), files=files, **fields)


def test_open_pull_request_with_its_files() -> None:
    """Title, link, state, line counts and each changed file."""
    assert render_diff_summary(status(), diff("src/auth.py", "tests/test_auth.py")) == (
        f"🔀 [Fix login]({PR}) · 🟢 open\n"
        "+10 / −2 · 2 files changed\n"
        "- `src/auth.py` (+3 −1)\n"
        "- `tests/test_auth.py` (+3 −1)"
    )


@pytest.mark.parametrize(
    ("fields", "shown"),
    [
        ({"pull_request_draft": True}, "📝 draft"),
        ({"pull_request_state": "merged"}, "🟣 merged"),
        ({"pull_request_state": "closed"}, "🔴 closed"),
        ({"pull_request_state": "reopened"}, "⚪ reopened"),
    ],
)
def test_state_is_shown_with_an_emoji(fields: dict[str, Any], shown: str) -> None:
    """Draft, open, merged and closed each get their emoji; an unknown state keeps its name."""
    summary = render_diff_summary(status(**fields), None)
    assert summary is not None
    assert summary.splitlines()[0] == f"🔀 [Fix login]({PR}) · {shown}"


def test_many_files_end_with_and_n_more() -> None:
    """The first five files are listed, the rest counted."""
    paths = [f"f{i}.py" for i in range(8)]
    summary = render_diff_summary(status(changed_files=8), diff(*paths))
    assert summary is not None
    lines = summary.splitlines()
    assert lines[2:7] == [f"- `f{i}.py` (+3 −1)" for i in range(5)]
    assert lines[7] == "and 3 more"


def test_branch_without_pull_request() -> None:
    """Before a PR exists the summary names the branch; counts come from the diff's files."""
    summary = render_diff_summary(None, diff("app.py", branch="fix-login"))
    assert summary == "🔀 Branch fix-login\n+3 / −1 · 1 file changed\n- `app.py` (+3 −1)"


def test_pull_request_number_changes_requested_and_brackets() -> None:
    """The PR number leads the title, brackets cannot break the link, changes requested is said."""
    summary = render_diff_summary(
        status(pr_number=12, pull_request_title="[WIP] x", changes_requested=True), None
    )
    assert summary is not None
    assert summary.splitlines()[0] == f"🔀 [#12 (WIP) x]({PR}) · 🟢 open · ✋ changes requested"


def test_nothing_to_summarize() -> None:
    """No PR, no branch and no files: no summary at all."""
    empty = ChatDiffStatus(url="", pull_request_state="", pull_request_title="")
    assert render_diff_summary(None, None) is None
    assert render_diff_summary(empty, diff()) is None
