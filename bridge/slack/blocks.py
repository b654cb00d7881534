"""Pure renderers for the bridge's own lines in a thread (the chat header, notices)."""

from __future__ import annotations

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


def _escape_link_text(text: str) -> str:
    return text.replace("[", "(").replace("]", ")").strip()
