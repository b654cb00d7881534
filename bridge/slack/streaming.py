"""Native streaming (``BRIDGE_NATIVE_STREAMING``): a ``SlackPoster`` that streams replies as they grow.

It wraps the edit-in-place poster and changes two things: the outbox's streaming reply (its ``draft``
slot) is sent with ``chat.startStream`` / ``appendStream`` / ``stopStream`` through slack-sdk's
``AsyncChatStream`` helper instead of ``chat.postMessage`` / ``chat.update``, and so is a turn's
status card, as a plan (below). The outbox stays the one scheduler: it still decides when a text
goes out (pacing, coalescing, 429 pauses); this class only turns "the draft now reads X" into
"append what Slack does not show yet". The outbox's wait covers the method it asked for
(``chat.postMessage``, ``chat.update``, with the channel's budget); each streaming call draws on its
own method's budget as well, so none goes unmetered.

A reply's stream ends when a new message follows it in the thread (the next reply, the turn's outcome, a
notice). Not sooner: the outbox sends no call for a final text that equals the streamed one, and a
call under the persisted reply's key may still carry an older text. The turn's status card and
edits of older messages (the header) go alongside and leave it open. A text
that is not a continuation of what was streamed (a reconnect that rewrote the draft) ends the
stream and replaces the message with ``chat.update``, which works on a stopped stream.

Status cards. A card that comes with its ``Plan`` is streamed as one (``task_display_mode`` ``plan``):
the plan's title is the turn's state in words (``plan_update``), each tool call a ``task_update``
chunk under Coder's tool call id, updated in place from in progress to complete or error, and the
stream stops when the turn is over, with the card's first line (``✅ Done · 3 tools · touched …``)
as its text. The plan *is* the card: no text card is posted beside it, so the tool list is not
shown twice (and when the plan cannot go on, its message is edited into the text card: one card,
whatever happens). A card stream stays open across the turn's replies (which are streams of their
own) and only sends what changed. A card that is over before it was first shown is posted as
text: streaming it would cost two calls (one of them Tier 2) for a message that never changes.

A plan the agent proposes (plan mode) comes final and with its Approve and Revise buttons: its steps
are streamed as a plan of tasks and the stream is stopped at once with the plan's last line and the
buttons (a stream's stop is where Slack takes blocks). An edit of it later (who approved it) replaces
it with its text, as for any stopped stream.

Fallbacks: a workspace that refuses streaming (an older Slack, the feature not enabled, a missing
scope) is told once in the log and the poster edits in place from then on. One that streams but
refuses the card's chunks (``invalid_chunks``, ``invalid_arguments``) is told once too, and posts
cards as text from then on while replies still stream. A single stream that Slack ended by itself
(a user's Stop, a server-side timeout: ``message_not_in_streaming_state``; card streams, open for
a whole turn, meet the timeout more often) is finished with ``chat.update``: a card then goes on as
text. So does a card stream a restart left behind (this process never knew it) and one whose turn
called more tools than Slack takes chunks for.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from slack_sdk.models.messages.chunk import Chunk, MarkdownTextChunk, PlanUpdateChunk, TaskUpdateChunk
from slack_sdk.web.async_chat_stream import AsyncChatStream
from slack_sdk.web.async_client import AsyncWebClient

from bridge.metrics import Metrics
from bridge.relay.content import Plan, Step
from bridge.relay.limits import SlackLimits
from bridge.relay.ports import Button, SlackPermanent
from bridge.relay.slots import PostTag
from bridge.slack.defuse import defuse
from bridge.slack.poster import WebPoster, button_element, message_tag, slack_call

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
CHUNK_REFUSALS = frozenset({"invalid_chunks", "invalid_arguments"})
"""Refusals of a card's stream that may be about its chunks alone: replies may still stream."""
ENDED = "message_not_in_streaming_state"
MAX_STEPS = 50
"""Tool calls a card streams at most: Slack renders up to 50 blocks sent as chunks (reference 4.13)."""
_TASK_STATUS = {"running": "in_progress", "ok": "complete", "error": "error"}
"""Slack's task status for a step's state; ``unknown`` (no result came) is ``pending``."""

Recipient = Callable[[str, str], Awaitable[tuple[str, str] | None]]
"""(channel, thread_ts) -> (team id, user id) of the person a stream is addressed to."""
SessionStatus = Callable[[str, str], str | None]
"""(channel, thread_ts) -> the Agent Session status a stopped stream leaves, None to let Slack pick."""


@dataclass
class _Stream:
    streamer: AsyncChatStream
    channel: str
    thread_ts: str
    ts: str
    key: PostTag
    shown: str
    held: str = ""
    """Text the helper still buffers from a call that failed; it goes out with the next one."""
    wanted: str | None = None
    """The text last asked for when it was shorter than what the stream shows: a draft growing again
    from less (a reconnect) catches up, but one that stays shorter (a split moved its end to the next
    message, between table rows the stream had begun to show) is edited to it once stopped."""

    @property
    def sent(self) -> str:
        return self.shown + self.held


def _task(step: Step) -> tuple[str, str]:
    """A step as a task shows it: its title (tool name and argument hint, defused) and Slack's status."""
    title = f"{step.name} {step.summary}" if step.summary else step.name
    return defuse(title), _TASK_STATUS.get(step.state, "pending")


@dataclass
class _PlanStream:
    """A status card streamed as a plan, and what Slack shows of it, so a call sends only changes."""

    streamer: AsyncChatStream
    channel: str
    thread_ts: str
    title: str = ""
    tasks: dict[str, tuple[str, str]] = field(default_factory=dict)
    """Step id -> (title, status) as shown."""

    def changes(self, plan: Plan) -> list[Chunk]:
        """The chunks that make Slack show ``plan``: a new title, new or changed steps."""
        chunks: list[Chunk] = []
        if plan.title != self.title:
            chunks.append(PlanUpdateChunk(title=plan.title))
        for step in plan.steps:
            title, status = _task(step)
            if self.tasks.get(step.id) != (title, status):
                chunks.append(TaskUpdateChunk(id=step.id, title=title, status=status))
        return chunks

    def shown(self, plan: Plan) -> None:
        """Slack took the chunks of ``changes(plan)``."""
        self.title = plan.title
        self.tasks.update((step.id, _task(step)) for step in plan.steps)


class StreamingPoster:
    """``SlackPoster`` streaming the draft and status cards natively; everything else goes to the
    wrapped poster."""

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
        self._streams: dict[int, _Stream] = {}  # thread (outbox link) -> its open reply stream
        self._plans: dict[str, _PlanStream] = {}  # ts -> an open card stream
        self.enabled = True
        """False once Slack refused streaming: the poster edits in place from then on."""
        self.plans = True
        """False once Slack refused a card's chunks: cards are posted as text from then on."""

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
        """A new draft starts a stream, a new card with its plan a card stream; a new message after
        the reply ends the thread's open reply stream. Texts are defused before anything compares
        them with what a stream shows."""
        markdown = defuse(markdown)
        if not key.is_card:
            await self._end(key.link_id)
        if plan is not None and (not plan.final or buttons) and self._streamable(plan):
            try:
                if plan.final:
                    return await self._proposed_plan(channel, thread_ts, plan, key, buttons)
                return await self._start_plan(channel, thread_ts, plan)
            except SlackPermanent as exc:
                if exc.code not in REFUSALS:
                    raise
                self._plans_refused(exc)
        if self.enabled and key.is_draft and not buttons:
            try:
                return await self._start(channel, thread_ts, markdown, key)
            except SlackPermanent as exc:
                if exc.code not in REFUSALS:
                    raise
                self._refused(exc)
        return await self._inner.post(channel, thread_ts, markdown, key=key, buttons=buttons)

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
        """Append to the open stream when ``ts`` is it (a card's: what changed in its plan, and stop
        it once the plan is final); otherwise edit in place."""
        markdown = defuse(markdown)
        card = self._plans.get(ts)
        if card is not None:
            await self._update_plan(card, ts, markdown, key, plan)
            return
        thread = key.link_id
        stream = self._streams.get(thread)
        if stream is None or stream.ts != ts or buttons:
            await self._inner.update(channel, ts, markdown, key=key, buttons=buttons)
        else:
            stream.key = key  # renamed from the draft: the reply is persisted, its text may still grow
            await self._append(thread, stream, markdown, key)

    async def announce(self, channel: str, markdown: str, *, chat_id: str | None = None) -> str:
        """As the wrapped poster: a thread's root is never streamed."""
        return await self._inner.announce(channel, markdown, chat_id=chat_id)

    async def announced(self, channel: str, chat_id: str, *, oldest: str) -> str | None:
        """As the wrapped poster."""
        return await self._inner.announced(channel, chat_id, oldest=oldest)

    async def react(self, channel: str, ts: str, name: str, *, on: bool) -> None:
        """As the wrapped poster."""
        await self._inner.react(channel, ts, name, on=on)

    async def tagged(self, channel: str, thread_ts: str) -> dict[PostTag, str]:
        """As the wrapped poster (a stream is tagged when it stops)."""
        return await self._inner.tagged(channel, thread_ts)

    async def whisper(self, channel: str, user: str, thread_ts: str | None, markdown: str) -> None:
        """As the wrapped poster: ephemeral messages are never streamed."""
        await self._inner.whisper(channel, user, thread_ts, markdown)

    async def _open(self, channel: str, thread_ts: str, **options: Any) -> AsyncChatStream:
        """slack-sdk's helper for a new stream in the thread, addressed to the chat's person."""
        team, user = await self._recipient(channel, thread_ts) or (None, None)
        # buffer_size 1: the outbox already paces and coalesces, so every text it sends goes out.
        return await self._client.chat_stream(
            channel=channel,
            thread_ts=thread_ts,
            recipient_team_id=team,
            recipient_user_id=user,
            buffer_size=1,
            **options,
        )

    async def _start(self, channel: str, thread_ts: str, markdown: str, key: PostTag) -> str:
        streamer = await self._open(channel, thread_ts)
        await self._call("chat.startStream", lambda: streamer.append(markdown_text=markdown))
        assert streamer.ts is not None
        self._streams[key.link_id] = _Stream(streamer, channel, thread_ts, streamer.ts, key, shown=markdown)
        return streamer.ts

    async def _append(self, thread: int, stream: _Stream, markdown: str, key: PostTag) -> None:
        if not markdown.startswith(stream.sent):
            if stream.sent.startswith(markdown):  # shorter: may grow again as it was (see ``_end``)
                stream.wanted = markdown
            else:  # rewritten: edited at once, on the token the outbox took for this update
                stream.wanted = None
                await self._end(thread)
                await self._inner.update(stream.channel, stream.ts, markdown, key=key)
            return
        delta = markdown[len(stream.sent) :]
        if not delta and not stream.held:
            return
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
        stream.shown, stream.held, stream.wanted = markdown, "", None

    def _streamable(self, plan: Plan) -> bool:
        """Whether a card with this plan may be streamed (or go on streaming)."""
        return self.enabled and self.plans and len(plan.steps) <= MAX_STEPS

    async def _start_plan(self, channel: str, thread_ts: str, plan: Plan) -> str:
        """Start a card's stream showing its plan; the chunks go as such, never through the helper's
        text buffer, so a retried call sends them again rather than twice."""
        streamer = await self._open(channel, thread_ts, task_display_mode="plan")
        card = _PlanStream(streamer, channel, thread_ts)
        chunks = card.changes(plan)
        await self._call("chat.startStream", lambda: streamer.append(chunks=chunks))
        card.shown(plan)
        assert streamer.ts is not None
        self._plans[streamer.ts] = card
        return streamer.ts

    async def _proposed_plan(
        self, channel: str, thread_ts: str, plan: Plan, key: PostTag, buttons: Sequence[Button]
    ) -> str:
        """A plan the agent proposes, final from the start and with buttons: its steps as Slack's plan
        and tasks, stopped at once with its first line and the buttons (two calls: a stream is the
        only way Slack shows a plan, and only its stop carries blocks)."""
        streamer = await self._open(channel, thread_ts, task_display_mode="plan")
        chunks = _PlanStream(streamer, channel, thread_ts).changes(plan)
        await self._call("chat.startStream", lambda: streamer.append(chunks=chunks))
        assert streamer.ts is not None
        actions = {"type": "actions", "elements": [button_element(b) for b in buttons]}
        status = self._session_status(channel, thread_ts)
        await self._call(
            "chat.stopStream",
            lambda: streamer.stop(
                chunks=[MarkdownTextChunk(text=defuse(plan.head))],
                blocks=[actions],
                session_status=status,
                metadata=message_tag(key),
            ),
        )
        return streamer.ts

    async def _update_plan(
        self, card: _PlanStream, ts: str, markdown: str, key: PostTag, plan: Plan | None
    ) -> None:
        """Send what changed in the card's plan; with a final plan, stop the stream with the card's
        first line. A card that may not stream on is stopped as it stands and edited in place with its
        text, and so is one that Slack will not stream any more."""
        streamable = plan is not None and self._streamable(plan)
        try:
            if plan is not None and streamable and not plan.final:
                chunks = card.changes(plan)
                if chunks:
                    await self._call("chat.appendStream", lambda: card.streamer.append(chunks=chunks))
                card.shown(plan)
                return
            head = MarkdownTextChunk(text=defuse(plan.head)) if plan and streamable else None
            closing = [*card.changes(plan), head] if plan and head else None
            await self._stop(card.streamer, card.channel, card.thread_ts, key, chunks=closing)
            del self._plans[ts]
            if closing is not None:
                return
        except SlackPermanent as exc:
            self._plan_lost(ts, exc)
        await self._inner.update(card.channel, ts, markdown, key=key)

    async def _end(self, thread: int) -> None:
        """Stop the thread's open reply stream, if any, as it stands, then edit it to the text last
        asked for where that differs (``_Stream.wanted``)."""
        stream = self._streams.get(thread)
        if stream is None:
            return
        try:
            await self._stop(stream.streamer, stream.channel, stream.thread_ts, stream.key)
        except SlackPermanent as exc:
            self._lost(thread, exc)  # ended by Slack already: the outbox edits it from now on
            return
        del self._streams[thread]
        if stream.wanted is not None:
            await self._limits.acquire("chat.update")  # a second call for the outbox's one token
            await self._inner.update(stream.channel, stream.ts, stream.wanted, key=stream.key)

    async def _stop(
        self,
        streamer: AsyncChatStream,
        channel: str,
        thread_ts: str,
        key: PostTag,
        *,
        chunks: Sequence[Chunk] | None = None,
    ) -> None:
        """Stop a stream with its last ``chunks``, tagged with its slot, like a post; the session
        keeps the status the bridge wants for it (Slack would make it ``active``)."""
        status = self._session_status(channel, thread_ts)
        await self._call(
            "chat.stopStream",
            lambda: streamer.stop(chunks=chunks, session_status=status, metadata=message_tag(key)),
        )

    def _lost(self, thread: int, exc: SlackPermanent) -> None:
        """Slack will take no more of this stream: forget it (its message is edited in place)."""
        del self._streams[thread]
        if exc.code != ENDED:
            log.info("stream in thread %s refused (%s); editing its message in place", thread, exc.code)
        if exc.code in REFUSALS:
            self._refused(exc)

    def _plan_lost(self, ts: str, exc: SlackPermanent) -> None:
        """Slack will take no more of this card's stream: forget it (the card is edited in place)."""
        del self._plans[ts]
        if exc.code != ENDED:
            log.info("card stream %s refused (%s); editing the card in place", ts, exc.code)
        if exc.code in REFUSALS:
            self._plans_refused(exc)

    def _plans_refused(self, exc: SlackPermanent) -> None:
        """Slack refused a card's stream: its chunks alone (cards become text), or streaming at all."""
        if exc.code not in CHUNK_REFUSALS:
            self._refused(exc)
        elif self.plans:
            self.plans = False
            log.warning(
                "Slack refused the status card's task chunks (%s: %s); posting cards as text instead",
                exc.method,
                exc.code,
            )

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
        """One streaming call, on its own method's budget (the outbox's wait covered the post or edit
        it asked for, and the channel's budget with it)."""
        await self._limits.acquire(method)
        return await slack_call(self._metrics, method, call)
