"""Pure renderers for the bridge's own lines in a thread (the chat header, notices, diff summary)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from bridge.coder.types import ChatDiff, ChatDiffStatus, ChatPhase, ChatStatus

_PHASE_ICONS = {
    ChatPhase.STARTING: "⏳",
    ChatPhase.WORKING: "⚙️",
    ChatPhase.IDLE: "💤",
    ChatPhase.NEEDS_USER: "✋",
    ChatPhase.DONE: "✅",
    ChatPhase.ERROR: "❌",
    ChatPhase.UNKNOWN: "❔",
}


def render_header(*, title: str, url: str, status: ChatStatus | None) -> str:
    """The bot's first reply: which Coder chat this thread drives, where to open it, and its status."""
    name = _escape_link_text(title) or "Coder chat"
    line = f"Started a Coder chat for this thread: [{name}]({url})"
    if status is not None:
        line += f" · {_PHASE_ICONS[status.phase]} {status.name}"
    return line + "\nReplies in this thread go to the agent."


def render_queued(position: int | None) -> str:
    """Told when Coder queued a follow-up because the agent is busy; kept current with its place."""
    where = f" (#{position})" if position else ""
    return f"📥 Queued{where}: the agent gets this message when it finishes its current turn."


def render_unqueued(*, taken: bool) -> str:
    """What a queued follow-up's notice says once it left the queue."""
    if taken:
        return "📨 The agent took this queued message."
    return "📤 This message is no longer queued."


def render_error(message: str) -> str:
    """An error from Coder, shown in one line."""
    return f"⚠️ {message}"


def render_skipped(skipped: Sequence[tuple[str, str]], *, rest_sent: bool) -> str:
    """Files left out of a message, each with the reason, and whether the rest went through."""
    names = "; ".join(f"`{_code(name)}` ({reason})" for name, reason in skipped)
    tail = " The rest of your message was sent." if rest_sent else ""
    return f"⚠️ Not sent to the agent: {names}.{tail}"


def _escape_link_text(text: str) -> str:
    return text.replace("[", "(").replace("]", ")").strip()


CARD_MARKS = ("⏳ ", "✅ ", "❌ ")
"""How a turn's status card begins (tests and tools use it to tell cards from replies)."""
_SHOWN_CALLS = 5
_STATE_MARKS = {"running": "⏳", "ok": "✓", "error": "✗"}


@dataclass(frozen=True)
class ToolLine:
    """One tool call as the card shows it."""

    name: str
    summary: str
    state: str  # running | ok | error


def render_card(
    calls: Sequence[ToolLine], *, phase: ChatPhase, touched: Sequence[str], reason: str = ""
) -> str:
    """A turn's status card: one compact message per turn, rewritten as tools run, never one per call."""
    count = f"{len(calls)} tool{'s' if len(calls) != 1 else ''}"
    if phase.busy:
        head = f"⏳ Working · {count}"
    elif phase is ChatPhase.ERROR:
        head = f"❌ Failed · {count}" + (f" · {reason}" if reason else "")
    else:
        head = f"✅ Done · {count}"
    if touched:
        shown = ", ".join(f"`{_code(name)}`" for name in touched[:4])
        more = f" and {len(touched) - 4} more" if len(touched) > 4 else ""
        head += f" · touched {shown}{more}"
    lines = [head]
    hidden = len(calls) - _SHOWN_CALLS
    if hidden > 0:
        lines.append(f"…{hidden} earlier")
    for call in calls[-_SHOWN_CALLS:]:
        summary = f" `{_code(call.summary)}`" if call.summary else ""
        state = call.state if phase.busy or call.state != "running" else "unknown"  # no result came
        lines.append(f"- {_STATE_MARKS.get(state, '•')} {call.name}{summary}")
    return "\n".join(lines)


def is_card(text: str) -> bool:
    """Whether a bot message is a turn's status card."""
    return text.startswith(CARD_MARKS) and (" tool" in text.split("\n", 1)[0])


def _code(text: str) -> str:
    return text.replace("`", "'")


_OUTCOME = re.compile(r"^<@[UW][A-Z0-9]+> (✅|❌|🛑) The agent ")


def render_outcome(
    user: str, *, phase: ChatPhase, touched: Sequence[str], reason: str = "", stopped: bool = False
) -> str:
    """The one new message that notifies the requester that the agent is done (edits notify nobody)."""
    if phase is ChatPhase.ERROR:
        return f"<@{user}> ❌ The agent stopped with an error" + (f": {reason}" if reason else ".")
    if stopped:
        return f"<@{user}> 🛑 The agent stopped as asked."
    files = ", ".join(f"`{_code(name)}`" for name in touched[:4])
    more = f" and {len(touched) - 4} more" if len(touched) > 4 else ""
    return f"<@{user}> ✅ The agent is done" + (f" · touched {files}{more}." if files else ".")


def is_outcome(text: str) -> bool:
    """Whether a bot message is the end-of-work notice."""
    return _OUTCOME.match(text) is not None


_PR_STATES = {"draft": "📝", "open": "🟢", "merged": "🟣", "closed": "🔴"}
_SHOWN_FILES = 5
DIFF_MARK = "🔀 "
"""How the diff summary begins (tests and tools use it to find it in a thread)."""


def render_diff_summary(status: ChatDiffStatus | None, diff: ChatDiff | None) -> str | None:
    """The thread's one summary of the agent's changes: PR title, link and state, line counts, files.

    ``status`` is what Coder tracks for the chat (3.7), ``diff`` what ``GET /diff`` resolved (3.8);
    either may be missing. ``None`` while there is nothing to show: no PR, branch or changed file.
    """
    files = diff.files if diff is not None else ()
    url = (status.url if status is not None else "") or (diff.pull_request_url if diff is not None else "")
    head = _pull_request_line(status, url) or _branch_line(status, diff, url)
    if head is None and not files:
        return None
    additions = status.additions if status is not None else 0
    deletions = status.deletions if status is not None else 0
    if not (additions or deletions):
        additions, deletions = sum(f.additions for f in files), sum(f.deletions for f in files)
    count = max(status.changed_files if status is not None else 0, len(files))
    lines = [head or f"{DIFF_MARK}Changes"]
    lines.append(f"+{additions} / −{deletions} · {count} file{'s' if count != 1 else ''} changed")
    for change in files[:_SHOWN_FILES]:
        lines.append(f"- `{_code(change.path)}` (+{change.additions} −{change.deletions})")
    if count > _SHOWN_FILES and files:
        lines.append(f"and {count - min(len(files), _SHOWN_FILES)} more")
    return "\n".join(lines)


def is_diff_summary(text: str) -> bool:
    """Whether a bot message is the thread's diff summary."""
    return text.startswith(DIFF_MARK)


def _pull_request_line(status: ChatDiffStatus | None, url: str) -> str | None:
    """``🔀 [title](url) · 🟢 open`` once Coder knows of a pull request, else ``None``."""
    if status is None or not (status.pull_request_state or status.pull_request_title or status.pr_number):
        return None
    state = status.pull_request_state.lower()
    if status.pull_request_draft and state in ("", "open"):
        state = "draft"
    name = _escape_link_text(status.pull_request_title)
    if status.pr_number:
        name = f"#{status.pr_number} {name}".strip()
    name = name or "Pull request"
    line = f"{DIFF_MARK}[{name}]({url})" if url else f"{DIFF_MARK}{name}"
    if state:
        line += f" · {_PR_STATES.get(state, '⚪')} {state}"
    if status.changes_requested:
        line += " · ✋ changes requested"
    return line


def _branch_line(status: ChatDiffStatus | None, diff: ChatDiff | None, url: str) -> str | None:
    """``🔀 Branch fix`` (linked) while there is a branch but no pull request, else ``None``."""
    branch = (status.head_branch if status is not None else "") or (diff.branch if diff is not None else "")
    if not branch and not url:
        return None
    name = _escape_link_text(branch) or "the agent's branch"
    return f"{DIFF_MARK}Branch [{name}]({url})" if url else f"{DIFF_MARK}Branch {name}"
