"""Pure renderers for the bridge's own lines in a thread (the chat header, notices)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from bridge.coder.types import ChatPhase, ChatStatus

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
    """Told when Coder queued a follow-up because the agent is busy."""
    where = f" (#{position} in line)" if position else ""
    return f"📥 Queued{where}: the agent gets this message when it finishes its current turn."


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
