"""``ThreadHistory`` over ``conversations.replies``: a thread's earlier messages, for context.

Texts are read as people typed them (``plain_text``); a root deleted while it had replies is a
``tombstone`` ("This message was deleted.", by Slackbot) and no message of the thread.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from slack_sdk.web.async_client import AsyncWebClient

from bridge.metrics import Metrics
from bridge.relay.limits import SlackLimits
from bridge.relay.ports import ThreadMessage
from bridge.slack.events import plain_text
from bridge.slack.files import parse_files
from bridge.slack.poster import budgeted_call

PAGE = 200
"""One page of replies; a thread longer than this contributes its first page only (bounded work)."""


def _thread_message(raw: Mapping[str, Any]) -> ThreadMessage | None:
    ts, user = raw.get("ts"), raw.get("user") or raw.get("bot_id")
    if not isinstance(ts, str) or not isinstance(user, str) or raw.get("subtype") == "tombstone":
        return None
    text = raw.get("text")
    return ThreadMessage(
        ts=ts,
        user_id=user,
        text=plain_text(text) if isinstance(text, str) else "",
        files=parse_files(raw.get("files")),
        from_bot=bool(raw.get("bot_id")),
    )


class ThreadReader:
    """Reads threads with the bot token (needs the ``*:history`` scope of the conversation type),
    within the workspace's ``conversations.replies`` budget (Tier 3, shared with the outbox)."""

    def __init__(self, client: AsyncWebClient, metrics: Metrics, limits: SlackLimits) -> None:
        self._client = client
        self._metrics = metrics
        self._limits = limits

    async def thread(self, channel: str, thread_ts: str) -> list[ThreadMessage]:
        """The thread's first page of messages, oldest first."""
        response = await budgeted_call(
            self._limits,
            self._metrics,
            "conversations.replies",
            lambda: self._client.conversations_replies(channel=channel, ts=thread_ts, limit=PAGE),
        )
        raw = response.get("messages") or []
        return [m for m in (_thread_message(r) for r in raw if isinstance(r, Mapping)) if m is not None]
