"""``SlackPoster`` over slack-sdk's ``AsyncWebClient``: Slack errors sorted by what to do about them."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.web.async_client import AsyncWebClient

from bridge import tracing
from bridge.metrics import Metrics
from bridge.relay.content import Plan
from bridge.relay.limits import SlackLimits
from bridge.relay.ports import Button, SlackPermanent, SlackRateLimited, SlackTransient
from bridge.relay.slots import PostTag
from bridge.slack.defuse import defuse
from bridge.slack.mrkdwn import MARKDOWN_LIMIT
from bridge.slack.tables import message_blocks

log = logging.getLogger(__name__)

_TRANSIENT = {
    "internal_error",
    "fatal_error",
    "service_unavailable",
    "request_timeout",
    "ratelimited",
    "rate_limited",
}


def _retry_after(headers: Any) -> float:
    """Slack's ``Retry-After`` in seconds; fractional values (a time-scaled simulator) are kept."""
    try:
        return max(float(headers.get("Retry-After", headers.get("retry-after", 1))), 0.0)
    except (TypeError, ValueError):
        return 1.0


TAG_EVENT = "coder_bridge_slot"
"""Message metadata event type naming which thread slot a bot message shows."""
ROOT_EVENT = "coder_bridge_root"
"""Message metadata event type naming the chat whose thread a top-level bot message roots."""
_TAGGED_PAGES = 5


_ALREADY = {True: "already_reacted", False: "no_reaction"}
"""The answer of reactions.add / reactions.remove when the message is already as asked."""


def message_tag(key: PostTag) -> dict[str, Any]:
    """The metadata naming which slot a bot message shows (what ``WebPoster.tagged`` looks for)."""
    return {"event_type": TAG_EVENT, "event_payload": {"key": key.encode()}}


def button_element(button: Button) -> dict[str, Any]:
    element: dict[str, Any] = {
        "type": "button",
        "action_id": button.action_id,
        "text": {"type": "plain_text", "text": button.text, "emoji": True},
    }
    if button.value:
        element["value"] = button.value
    if button.url is not None:
        element["url"] = button.url
    if button.style is not None:
        element["style"] = button.style
    return element


def _content(markdown: str, buttons: Sequence[Button]) -> dict[str, Any]:
    """The message body: plain ``markdown_text``, or blocks when it needs them (``markdown_text``
    cannot carry any): a ``table`` block for a GFM table, an ``actions`` block for buttons. Blocks
    come with the text as notification fallback. The text is defused first, so neither it nor a
    table cell notifies a group or disguises a link."""
    markdown = defuse(markdown)
    blocks = message_blocks(markdown, MARKDOWN_LIMIT)
    if blocks is None and not buttons:
        return {"markdown_text": markdown}
    blocks = blocks or [{"type": "markdown", "text": markdown}]
    if buttons:
        blocks.append({"type": "actions", "elements": [button_element(b) for b in buttons]})
    return {"text": markdown, "blocks": blocks}


class WebPoster:
    """Posts, edits and reacts through the Web API, counting every call; every text is ``defuse``-d."""

    def __init__(self, client: AsyncWebClient, metrics: Metrics) -> None:
        self._client = client
        self._metrics = metrics

    async def post(
        self,
        channel: str,
        thread_ts: str,
        markdown: str,
        *,
        key: PostTag,
        buttons: Sequence[Button] = (),
        plan: Plan | None = None,
    ) -> str:
        """Reply in a thread with standard Markdown (Slack renders it, tables as a table block; at
        most 12,000 characters of Markdown, the table block's cells counted apart). A card's ``plan``
        is not needed: its text says all of it."""
        response = await self._call(
            "chat.postMessage",
            lambda: self._client.chat_postMessage(
                channel=channel, thread_ts=thread_ts, metadata=message_tag(key), **_content(markdown, buttons)
            ),
        )
        return str(response["ts"])

    async def announce(self, channel: str, markdown: str, *, chat_id: str | None = None) -> str:
        """A top-level message in a channel (the root of a thread ``/coder new`` or ``follow`` starts),
        tagged with the chat it roots when there is one already."""
        metadata = {"event_type": ROOT_EVENT, "event_payload": {"chat_id": chat_id}} if chat_id else None
        response = await self._call(
            "chat.postMessage",
            lambda: self._client.chat_postMessage(
                channel=channel, markdown_text=defuse(markdown), metadata=metadata
            ),
        )
        return str(response["ts"])

    async def announced(self, channel: str, chat_id: str, *, oldest: str) -> str | None:
        """Read the channel's messages since ``oldest`` (``conversations.history`` with metadata, a few
        pages at most, newest first) for the bot's root tagged with ``chat_id``."""
        cursor: str | None = None
        for _ in range(_TAGGED_PAGES):
            response = await self._call(
                "conversations.history", partial(self._history_page, channel, oldest, cursor)
            )
            for message in response.get("messages") or []:
                metadata = message.get("metadata") or {}
                payload = metadata.get("event_payload") or {}
                if metadata.get("event_type") == ROOT_EVENT and payload.get("chat_id") == chat_id:
                    return str(message.get("ts"))
            cursor = (response.get("response_metadata") or {}).get("next_cursor") or None
            if cursor is None:
                break
        return None

    async def _history_page(self, channel: str, oldest: str, cursor: str | None) -> Any:
        return await self._client.conversations_history(
            channel=channel, oldest=oldest, include_all_metadata=True, limit=200, cursor=cursor
        )

    async def update(
        self,
        channel: str,
        ts: str,
        markdown: str,
        *,
        key: PostTag,
        buttons: Sequence[Button] = (),
        plan: Plan | None = None,
    ) -> None:
        """Replace a message's text and buttons (and its tag: a slot may have been renamed since)."""
        await self._call(
            "chat.update",
            lambda: self._client.chat_update(
                channel=channel, ts=ts, metadata=message_tag(key), **_content(markdown, buttons)
            ),
        )

    async def react(self, channel: str, ts: str, name: str, *, on: bool) -> None:
        """Add or remove the bot's reaction; Slack's "already so" answers count as done."""
        method = "reactions.add" if on else "reactions.remove"
        call = self._client.reactions_add if on else self._client.reactions_remove
        try:
            await self._call(method, lambda: call(channel=channel, timestamp=ts, name=name))
        except SlackPermanent as exc:
            if exc.code != _ALREADY[on]:
                raise

    async def tagged(self, channel: str, thread_ts: str) -> dict[PostTag, str]:
        """Read the thread (``conversations.replies`` with metadata, a few pages at most) for the
        messages this bridge tagged: a post whose answer was lost in a crash is found this way."""
        found: dict[PostTag, str] = {}
        cursor: str | None = None
        for _ in range(_TAGGED_PAGES):
            response = await self._call(
                "conversations.replies", partial(self._replies_page, channel, thread_ts, cursor)
            )
            for message in response.get("messages") or []:
                metadata = message.get("metadata") or {}
                payload = metadata.get("event_payload") or {}
                key = payload.get("key")
                ours = metadata.get("event_type") == TAG_EVENT
                tag = PostTag.decode(key) if ours and isinstance(key, str) else None
                if tag is not None:
                    found[tag] = str(message.get("ts"))
            cursor = (response.get("response_metadata") or {}).get("next_cursor") or None
            if cursor is None:
                break
        return found

    async def _replies_page(self, channel: str, thread_ts: str, cursor: str | None) -> Any:
        return await self._client.conversations_replies(
            channel=channel, ts=thread_ts, include_all_metadata=True, limit=200, cursor=cursor
        )

    async def whisper(self, channel: str, user: str, thread_ts: str | None, markdown: str) -> None:
        """Ephemeral message for one user (not stored by Slack, so never edited later)."""
        await self._call(
            "chat.postEphemeral",
            lambda: self._client.chat_postEphemeral(
                channel=channel, user=user, thread_ts=thread_ts, markdown_text=defuse(markdown)
            ),
        )

    async def _call(self, method: str, call: Callable[[], Awaitable[Any]]) -> Any:
        return await slack_call(self._metrics, method, call)


async def budgeted_call(
    limits: SlackLimits,
    metrics: Metrics,
    method: str,
    call: Callable[[], Awaitable[Any]],
    *,
    channel: str | None = None,
) -> Any:
    """``slack_call`` within the workspace's budget of ``method`` (a 429 pauses it for every caller)."""
    return await limits.call(method, lambda: slack_call(metrics, method, call), channel=channel)


async def slack_call(metrics: Metrics, method: str, call: Callable[[], Awaitable[Any]]) -> Any:
    """Run one Web API call, counted and traced, with its failure sorted into the ``SlackError`` tree."""
    try:
        with tracing.span(f"slack.{method}", {"slack.method": method}):
            response = await call()
    except SlackApiError as exc:
        code = str(exc.response.get("error", "unknown_error"))
        metrics.slack_calls.labels(method, code).inc()
        if exc.response.status_code == 429:
            raise SlackRateLimited(code, method, retry_after=_retry_after(exc.response.headers)) from None
        if exc.response.status_code >= 500 or code in _TRANSIENT:
            raise SlackTransient(code, method) from None
        raise SlackPermanent(code, method) from None
    except (SlackClientError, aiohttp.ClientError, OSError, TimeoutError) as exc:
        metrics.slack_calls.labels(method, "network_error").inc()
        raise SlackTransient(type(exc).__name__, method) from None
    metrics.slack_calls.labels(method, "ok").inc()
    return response
