"""Rendering the bridge's own lines: PR / diff summary, status words, cards, retry lines, outcomes."""

from __future__ import annotations

from typing import Any

import pytest

from bridge.coder.types import (
    ChatCost,
    ChatDiff,
    ChatDiffStatus,
    ChatId,
    ChatPhase,
    ChatStatus,
    FileChange,
    Usage,
)
from bridge.relay.content import Starting
from bridge.slack.blocks import (
    card_title,
    format_bytes,
    format_elapsed,
    is_card,
    is_outcome,
    is_retry_line,
    render_card,
    render_diff_summary,
    render_file_linked,
    render_header,
    render_outcome,
    render_retry,
    render_retry_end,
    render_status,
    render_usage,
)

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


def _status(phase: ChatPhase, name: str) -> ChatStatus:
    return ChatStatus(phase=phase, name=name)


@pytest.mark.parametrize(
    ("phase", "name", "words"),
    [
        (ChatPhase.STARTING, "pending", "⏳ starting"),
        (ChatPhase.WORKING, "running", "⚙️ working"),
        (ChatPhase.WORKING, "interrupting", "⚙️ stopping"),
        (ChatPhase.IDLE, "waiting", "💤 waiting"),
        (ChatPhase.NEEDS_USER, "paused", "✋ waiting for you"),
        (ChatPhase.NEEDS_USER, "requires_action", "✋ waiting for you"),
        (ChatPhase.DONE, "completed", "✅ completed"),
        (ChatPhase.UNKNOWN, "compacting", "❔ compacting"),
    ],
)
def test_status_line_in_words(phase: ChatPhase, name: str, words: str) -> None:
    """Each status reads as a few words people understand; an unknown one keeps Coder's name."""
    assert render_status(_status(phase, name)) == words


def test_error_status_carries_its_reason_on_one_line() -> None:
    """An error status says why, on one line and cut short, also in the header."""
    status = _status(ChatPhase.ERROR, "error")
    assert render_status(status, reason="Anthropic API error:\n overloaded") == (
        "❌ error: Anthropic API error: overloaded"
    )
    assert len(render_status(status, reason="x" * 1000)) < 220
    header = render_header(title="T", url="https://c/agents/1", status=status, reason="boom")
    assert header.splitlines()[0].endswith("· ❌ error: boom")


def test_outcome_when_the_agent_waits_for_the_requester() -> None:
    """A turn that needs its requester mentions them once, naming what waits."""
    text = render_outcome("U1", phase=ChatPhase.NEEDS_USER, touched=(), waiting_for=("ask_user_question",))
    assert text == "<@U1> ✋ The agent is waiting for you (`ask_user_question`)."
    assert is_outcome(text)


def test_outcome_leads_with_coders_summary_on_one_line() -> None:
    """Coder's summary of the turn comes first, on one line, cut short, its mentions shown not sent;
    the files touched follow; a stopped turn says so before it."""
    done = render_outcome("U1", phase=ChatPhase.IDLE, touched=("a.py",), summary="Fixed\nthe <@U2> bug")
    assert done == "<@U1> ✅ The agent is done: Fixed the <\u2060@U2> bug · touched `a.py`."
    assert render_outcome("U1", phase=ChatPhase.IDLE, touched=(), summary="Fixed it") == (
        "<@U1> ✅ The agent is done: Fixed it"
    )
    stopped = render_outcome("U1", phase=ChatPhase.IDLE, touched=(), stopped=True, summary="x" * 900)
    assert stopped.startswith("<@U1> 🛑 The agent stopped as asked: xxx")
    assert stopped.endswith("…")
    assert len(stopped) < 340
    assert is_outcome(stopped)


def test_a_file_not_posted_says_why_and_links_to_coder() -> None:
    """The line names the file (a backtick in its name cannot end the code span), says why, links
    to Coder when it can; sizes read as people write them."""
    assert render_file_linked("a`b.png", "too big", "https://c/f/1") == (
        "📎 `a'b.png` is not posted here: too big. [Open it in Coder](https://c/f/1)"
    )
    assert render_file_linked("", "no account", "") == "📎 `file` is not posted here: no account."
    assert [format_bytes(n) for n in (900, 12_800, 10 << 20, 3 << 30)] == [
        "900 B",
        "12.5 KB",
        "10 MB",
        "3 GB",
    ]


def test_usage_line_adds_up_calls_and_shows_the_last_context_and_the_cost() -> None:
    """Tokens in count cached ones; the context is the last call's against its model's limit; the
    cost shows cents, or four places below a cent, with unpriced calls named; nothing known, no line."""
    calls = [
        Usage(input_tokens=900, cache_read_tokens=100, output_tokens=50),
        Usage(input_tokens=1000, cache_creation_tokens=500, output_tokens=1234, context_limit=200_000),
    ]
    cost = ChatCost(total_cost_micros=1_234_567, request_count=3, unpriced_request_count=1)
    assert render_usage(calls, cost) == (
        "🪙 2.5k tokens in · 1.3k out · context 1.5k of 200k (1%) · $1.23 so far, 1 call(s) unpriced"
    )
    assert render_usage([], ChatCost(total_cost_micros=42, request_count=1)) == "🪙 <$0.0001 so far"
    assert render_usage([Usage(output_tokens=7)], None) == "🪙 0 tokens in · 7 out"
    assert render_usage([], None) == ""
    assert render_usage([], ChatCost()) == ""


@pytest.mark.parametrize(("seconds", "text"), [(0, "0s"), (42.9, "42s"), (70, "1m 10s"), (3725, "1h 2m")])
def test_elapsed_time_reads_naturally(seconds: float, text: str) -> None:
    """Durations on cards read like people write them."""
    assert format_elapsed(seconds) == text


def test_retry_line_and_its_ends() -> None:
    """The retry line names attempt, backoff and reason; its end says how the retries went."""
    assert render_retry(2, 8000, "overloaded") == "⟳ Retrying (attempt 2) in 8s: overloaded"
    assert render_retry(1, 250, "") == "⟳ Retrying (attempt 1) in 250 ms"
    assert render_retry_end(2, outcome="recovered") == "✓ Recovered after 2 retries"
    assert render_retry_end(1, outcome="failed", error="x") == "✗ Gave up after 1 retry: x"
    assert all(is_retry_line(t) for t in (render_retry(1, 1, "e"), render_retry_end(3, outcome="stopped")))


def test_cards_are_told_from_replies() -> None:
    """Every card head is recognised as a card, and ordinary replies are not."""
    starting = render_card([], phase=ChatPhase.STARTING, touched=[], starting=Starting(5, workspace=False))
    assert starting == "⏳ Starting… 5s"
    heads = [starting, "⏳ Working · 2 tools", "✅ Done", "❌ Failed · 1 tool · x", "✋ Waiting for you"]
    assert all(is_card(h) for h in heads)
    assert not any(is_card(t) for t in ("Done.", "✅ Doneness matters", "I'm ⏳ Working"))


def test_card_titles_are_the_state_in_words() -> None:
    """A plan's title is the card's state without icon or counts, the start's clock included."""
    workspace = Starting(70, workspace=True)
    assert card_title(ChatPhase.STARTING, workspace) == "Starting workspace… 1m 10s"
    titles = [
        card_title(p) for p in (ChatPhase.WORKING, ChatPhase.DONE, ChatPhase.ERROR, ChatPhase.NEEDS_USER)
    ]
    assert titles == ["Working", "Done", "Failed", "Waiting for you"]
