"""Native streaming (``BRIDGE_NATIVE_STREAMING``): a ``SlackPoster`` that streams replies as they grow.

It wraps the edit-in-place poster and changes one thing: the outbox's streaming reply (its ``draft``
slot) is sent with ``chat.startStream`` / ``appendStream`` / ``stopStream`` through slack-sdk's
``AsyncChatStream`` helper instead of ``chat.postMessage`` / ``chat.update``. The outbox stays the one
scheduler: it still decides when a text goes out (pacing, coalescing, 429 pauses); this class only
turns "the draft now reads X" into "append what Slack does not show yet". The outbox's wait covers
the method it asked for (``chat.postMessage``, ``chat.update``, with the channel's budget); each
streaming call draws on its own method's budget as well, so none goes unmetered.

A stream ends when a new message follows it in the thread (the next reply, the turn's outcome, a
notice). Not sooner: the outbox sends no call for a final text that equals the streamed one, and a
call under the persisted reply's key may still carry an older text. The turn's status card and
edits of older messages (the header) go alongside and leave it open. A text
that is not a continuation of what was streamed (a reconnect that rewrote the draft) ends the
stream and replaces the message with ``chat.update``, which works on a stopped stream.

Fallbacks: a workspace that refuses streaming (an older Slack, the feature not enabled, a missing
scope) is told once in the log and the poster edits in place from then on. A single stream that
Slack ended by itself (a user's Stop, a server-side timeout: ``message_not_in_streaming_state``)
is finished with ``chat.update``.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from slack_sdk.web.async_chat_stream import AsyncChatStream
from slack_sdk.web.async_client import AsyncWebClient

from bridge.metrics import Metrics
from bridge.relay.limits import SlackLimits
from bridge.relay.ports import Button, SlackPermanent
from bridge.relay.view import CARD, DRAFT
from bridge.slack.poster import WebPoster, message_tag, slack_call

log = logging.getLogger(__name__)

REFUSALS = frozenset(
    {
        "unknown_method",
        "not_allowed",
        "not_authorized",
        "feature_not_enabled",
        "feature_disabled",
        "method_deprecated",
        "missing_scope",
        "not_allowed_token_type",
        "channel_type_not_supported",
        "invalid_arguments",
        "invalid_chunks",
    }
)
"""Answers meaning this workspace (or this app's setup) will not stream: edit in place instead."""
ENDED = "message_not_in_streaming_state"

Recipient = Callable[[str, str], Awaitable[tuple[str, str] | None]]
"""(channel, thread_ts) -> (team id, user id) of the person a stream is addressed to."""
SessionStatus = Callable[[str, str], str | None]
"""(channel, thread_ts) -> the Agent Session status a stopped stream leaves, None to let Slack pick."""


def _thread(key: str) -> str:
    """The thread part of an outbox tag ``<link id>:<slot>``: one writer per thread at a time."""
    return key.partition(":")[0]


def _slot(key: str) -> str:
    """The slot part of an outbox tag, without a split part's ``#1``."""
    return key.partition(":")[2].split("#", 1)[0]


def _is_draft(key: str) -> bool:
    """Whether the tag names the streaming reply (``draft``, or a split part ``draft#1``)."""
    return _slot(key) == DRAFT


def _is_card(key: str) -> bool:
    """Whether the tag names a turn's status card, which accompanies the reply rather than follows it."""
    return _slot(key).startswith(f"{CARD}:")


@dataclass
class _Stream:
    streamer: AsyncChatStream
    channel: str
    thread_ts: str
    ts: str
    key: str
    shown: str
    held: str = ""
    """Text the helper still buffers from a call that failed; it goes out with the next one."""

    @property
    def sent(self) -> str:
        return self.shown + self.held


class StreamingPoster:
    """``SlackPoster`` streaming the draft natively; everything else goes to the wrapped poster."""

    def __init__(
        self,
        inner: WebPoster,
        client: AsyncWebClient,
        metrics: Metrics,
        limits: SlackLimits,
        *,
        recipient: Recipient,
        session_status: SessionStatus,
    ) -> None:
        self._inner = inner
        self._client = client
        self._metrics = metrics
        self._limits = limits
        self._recipient = recipient
        self._session_status = session_status
        self._streams: dict[str, _Stream] = {}  # thread (outbox link) -> its open stream
        self.enabled = True
        """False once Slack refused streaming: the poster edits in place from then on."""

    async def post(
        self, channel: str, thread_ts: str, markdown: str, *, key: str, buttons: Sequence[Button] = ()
    ) -> str:
        """A new draft starts a stream; a new message after the reply ends the thread's open stream."""
        if not _is_card(key):
            await self._end(_thread(key))
        if self.enabled and _is_draft(key) and not buttons:
            try:
                return await self._start(channel, thread_ts, markdown, key)
            except SlackPermanent as exc:
                if exc.code not in REFUSALS:
                    raise
                self._refused(exc)
        return await self._inner.post(channel, thread_ts, markdown, key=key, buttons=buttons)

    async def update(
        self, channel: str, ts: str, markdown: str, *, key: str, buttons: Sequence[Button] = ()
    ) -> None:
        """Append to the open stream when ``ts`` is it; otherwise edit in place."""
        thread = _thread(key)
        stream = self._streams.get(thread)
        if stream is None or stream.ts != ts or buttons:
            await self._inner.update(channel, ts, markdown, key=key, buttons=buttons)
        else:
            stream.key = key  # renamed from the draft: the reply is persisted, its text may still grow
            await self._append(thread, stream, markdown, key)

    async def announce(self, channel: str, markdown: str) -> str:
        """As the wrapped poster: a thread's root is never streamed."""
        return await self._inner.announce(channel, markdown)

    async def react(self, channel: str, ts: str, name: str, *, on: bool) -> None:
        """As the wrapped poster."""
        await self._inner.react(channel, ts, name, on=on)

    async def tagged(self, channel: str, thread_ts: str) -> dict[str, str]:
        """As the wrapped poster (a stream is tagged when it stops)."""
        return await self._inner.tagged(channel, thread_ts)

    async def whisper(self, channel: str, user: str, thread_ts: str | None, markdown: str) -> None:
        """As the wrapped poster: ephemeral messages are never streamed."""
        await self._inner.whisper(channel, user, thread_ts, markdown)

    async def _start(self, channel: str, thread_ts: str, markdown: str, key: str) -> str:
        team, user = await self._recipient(channel, thread_ts) or (None, None)
        # buffer_size 1: the outbox already paces and coalesces, so every text it sends goes out.
        streamer = await self._client.chat_stream(
            channel=channel,
            thread_ts=thread_ts,
            recipient_team_id=team,
            recipient_user_id=user,
            buffer_size=1,
        )
        await self._limits.acquire("chat.startStream")  # the channel's budget: drawn by the outbox's post
        await self._call("chat.startStream", lambda: streamer.append(markdown_text=markdown))
        assert streamer.ts is not None
        self._streams[_thread(key)] = _Stream(streamer, channel, thread_ts, streamer.ts, key, shown=markdown)
        return streamer.ts

    async def _append(self, thread: str, stream: _Stream, markdown: str, key: str) -> None:
        if not markdown.startswith(stream.sent):
            if not stream.sent.startswith(markdown):  # rewritten, not just replayed shorter
                await self._end(thread)
                await self._inner.update(stream.channel, stream.ts, markdown, key=key)
            return
        delta = markdown[len(stream.sent) :]
        if not delta and not stream.held:
            return
        await self._limits.acquire("chat.appendStream")
        try:
            # Empty chunks make the helper send what it still holds from a failed call.
            await self._call(
                "chat.appendStream",
                lambda: stream.streamer.append(markdown_text=delta or None, chunks=None if delta else []),
            )
        except SlackPermanent as exc:
            self._lost(thread, exc)
            await self._limits.acquire("chat.update")  # a second call for the outbox's one token
            await self._inner.update(stream.channel, stream.ts, markdown, key=key)
            return
        except Exception:
            stream.held += delta
            raise
        stream.shown, stream.held = markdown, ""

    async def _end(self, thread: str) -> None:
        """Stop the thread's open stream, if any, as it stands (tagged with its slot, like a post);
        the session keeps the status the bridge wants for it (Slack would make it ``active``)."""
        stream = self._streams.get(thread)
        if stream is None:
            return
        await self._limits.acquire("chat.stopStream", stream.channel)
        status = self._session_status(stream.channel, stream.thread_ts)
        try:
            await self._call(
                "chat.stopStream",
                lambda: stream.streamer.stop(session_status=status, metadata=message_tag(stream.key)),
            )
        except SlackPermanent as exc:
            self._lost(thread, exc)  # ended by Slack already: the outbox edits it from now on
            return
        del self._streams[thread]

    def _lost(self, thread: str, exc: SlackPermanent) -> None:
        """Slack will take no more of this stream: forget it (its message is edited in place)."""
        del self._streams[thread]
        if exc.code != ENDED:
            log.info("stream in thread %s refused (%s); editing its message in place", thread, exc.code)
        if exc.code in REFUSALS:
            self._refused(exc)

    def _refused(self, exc: SlackPermanent) -> None:
        if self.enabled:
            self.enabled = False
            log.warning(
                "Slack refused native streaming (%s: %s); editing replies in place instead "
                "(set BRIDGE_NATIVE_STREAMING=false to stop trying)",
                exc.method,
                exc.code,
            )

    async def _call(self, method: str, call: Callable[[], Awaitable[Any]]) -> Any:
        return await slack_call(self._metrics, method, call)
