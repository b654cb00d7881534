"""Pure renderer of the App Home tab: a person's chats, each with its state, links and buttons.

The Home tab is one view per person, replaced whole by every ``views.publish``, so it is rendered
from scratch each time. The buttons carry the same action ids as those in threads (``chat_stop``,
``chat_archive``, ``chat_unarchive``, ``chat_open``) and the chat id as their value, so a click here
is handled exactly like one in the thread. Slack allows 100 blocks per view; each chat takes two,
and the list is capped well below that.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from bridge.coder.types import ChatDiffStatus, ChatStatus
from bridge.slack.blocks import ButtonAction, pull_request_state, render_status

MAX_CHATS = 15
TITLE_LIMIT = 200
"""Characters of a title shown on the Home tab, once escaped: a title chosen in Slack has no cap of
its own, and a section's text may not pass 3,000 characters (Slack refuses the whole view)."""
"""Chats shown (2 blocks each, plus a few around them: far under Slack's 100 blocks per view)."""
SUMMARY_LIMIT = 400
"""Characters of a chat's summary shown, once escaped: with the title, far under a section's 3,000."""


@dataclass(frozen=True)
class HomeChat:
    """One chat as the Home tab shows it."""

    chat_id: str
    title: str
    status: ChatStatus | None
    archived: bool
    diff: ChatDiffStatus | None
    thread_url: str
    """Permalink of the Slack thread that drives the chat."""
    coder_url: str
    """The chat in Coder's web UI."""
    summary: str = ""
    """Coder's summary of the chat (newest builds), empty when it has none."""


@dataclass(frozen=True)
class HowTo:
    """The reaction names the how-to mentions (they are settings)."""

    interrupt: str
    archive: str


def render_home(
    chats: Sequence[HomeChat], how_to: HowTo, *, older: int = 0, refusal: str = ""
) -> dict[str, Any]:
    """The Home view (``views.publish``'s ``view``): a short how-to, then the chats, newest first;
    for someone the access policy refuses, its reason in place of the chats."""
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": "Your Coder Agents chats"}},
        _section(
            "Mention me with a task in a channel, or send me a direct message: each thread becomes a "
            "Coder chat, and every reply in it goes to the agent. Stop the agent with "
            f":{how_to.interrupt}: or *Stop*, archive a chat with :{how_to.archive}: or *Archive*. "
            "`/coder help` lists the commands."
        ),
        {"type": "divider"},
    ]
    if refusal:
        blocks.append(_section(refusal))
    elif not chats:
        blocks.append(_section("No chats yet. Mention me in a channel to start one."))
    for chat in chats[:MAX_CHATS]:
        blocks.append(_section(_describe(chat)))
        blocks.append({"type": "actions", "block_id": f"chat:{chat.chat_id}", "elements": _buttons(chat)})
    hidden = older + max(0, len(chats) - MAX_CHATS)
    if hidden:
        blocks.append(
            {
                "type": "context",
                "elements": [{"type": "mrkdwn", "text": f"…and {hidden} older chat(s), not shown."}],
            }
        )
    return {"type": "home", "callback_id": "coder_home", "blocks": blocks}


def _describe(chat: HomeChat) -> str:
    """``*<thread|title>*`` then a line of status, pull request and archive state."""
    title = _shortened(_escape(chat.title.strip() or "Coder chat"))
    facts = [render_status(chat.status)] if chat.status is not None else []
    if chat.diff is not None:
        state = pull_request_state(chat.diff)
        if state:
            pr = f"PR #{chat.diff.pr_number}" if chat.diff.pr_number else "PR"
            facts.append(f"<{_target(chat.diff.url)}|{pr}> {state}" if chat.diff.url else f"{pr} {state}")
        elif chat.diff.changed_files:
            diff = chat.diff
            facts.append(f"+{diff.additions} / −{diff.deletions} in {diff.changed_files} file(s)")
    if chat.archived:
        facts.append("🗄️ archived")
    summary = _shortened(_escape(" ".join(chat.summary.split())), SUMMARY_LIMIT)
    return f"*<{chat.thread_url}|{title}>*\n" + " · ".join(facts) + (f"\n_{summary}_" if summary else "")


def _buttons(chat: HomeChat) -> list[dict[str, Any]]:
    buttons: list[dict[str, Any]] = []
    if chat.status is not None and chat.status.phase.busy and not chat.archived:
        buttons.append(_button(ButtonAction.CHAT_STOP, "Stop", value=chat.chat_id, style="danger"))
    if chat.archived:
        buttons.append(_button(ButtonAction.CHAT_UNARCHIVE, "Unarchive", value=chat.chat_id))
    else:
        buttons.append(_button(ButtonAction.CHAT_ARCHIVE, "Archive", value=chat.chat_id))
    buttons.append(_button(ButtonAction.CHAT_OPEN, "Open in Coder", url=chat.coder_url))
    return buttons


def _button(
    action: ButtonAction, text: str, *, value: str = "", url: str = "", style: str = ""
) -> dict[str, Any]:
    button: dict[str, Any] = {
        "type": "button",
        "action_id": str(action),
        "text": {"type": "plain_text", "text": text},
    }
    if value:
        button["value"] = value
    if url:
        button["url"] = url
    if style:
        button["style"] = style
    return button


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def _target(url: str) -> str:
    """A link target from Coder with the characters that would end a mrkdwn link (and so let the
    rest of it become the label of another target) percent-encoded."""
    return url.replace("|", "%7C").replace("<", "%3C").replace(">", "%3E").replace(" ", "%20")


def _shortened(escaped: str, limit: int = TITLE_LIMIT) -> str:
    """An escaped text cut to ``limit`` with an ellipsis, never inside an ``&…;`` entity."""
    if len(escaped) <= limit:
        return escaped
    cut = escaped[: limit - 1]
    entity = cut.rfind("&")
    if entity != -1 and ";" not in cut[entity:]:
        cut = cut[:entity]
    return cut + "…"


def _escape(text: str) -> str:
    """mrkdwn control characters in a title (Slack's escaping), and ``|`` that would end a link's text."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("|", "¦")
