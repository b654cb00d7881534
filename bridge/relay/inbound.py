"""Slack messages -> Coder: start a chat for a new thread, relay replies as follow-ups.

Every step that must happen once is claimed in the database first: the Slack event id (retries),
the thread (a second chat for the same thread), and the message's (channel, ts) (Slack delivers a
mention both as ``app_mention`` and as ``message``). Messages of one thread are handled one at a
time, in arrival order, so follow-ups reach Coder in the order people wrote them.

When Coder fails, the claim is released and the person is told in the thread that their message
was not delivered, so nothing they wrote disappears silently. Before anything is claimed, the
access policy and the identity mode decide whether the message may reach Coder at all, and with
whose token; a refusal is explained to the person privately and the event is finished. The policy
is asked at every act, also when a creation a stop cut short is resumed (only by the replay of the
message that claimed the thread: anyone else's mention meanwhile is a follow-up) and before an edit
or deletion of a relayed message. The requester of a thread is whoever started its chat: a claim
whose chat failed to start is claimed again by the next attempt's author. Attached files go with the
text in one Coder message (``attachments``); a mention in a thread that has no chat yet brings the
thread's earlier messages by people the policy admits along, quoted (``context``); edits and
deletions of relayed messages go to ``edits``.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from bridge import tracing
from bridge.coder.backend import CoderBackend
from bridge.coder.errors import CoderAuthError, CoderError
from bridge.coder.questions import answer_in_words
from bridge.coder.types import NO_OPTIONS, Chat, ChatId, InputPart, QueuedMessage, SendResult
from bridge.db import repo
from bridge.db.engine import Database
from bridge.db.group import GroupWriter
from bridge.db.models import ThreadLink
from bridge.relay.answers import Answers
from bridge.relay.asked import reply_key
from bridge.relay.attachments import Attached, Attachments
from bridge.relay.context import earlier, render_context, strip_mention
from bridge.relay.edits import Revisions
from bridge.relay.identity import HOW_TO_LINK, Identity
from bridge.relay.intake import Intake
from bridge.relay.leases import Leases, Turns
from bridge.relay.links import HEADER_SLOT, Follows, Headers, thread_ref
from bridge.relay.marks import queued_buttons
from bridge.relay.options import PLAN_MODE_VERSION, OptionError, resolve, split_options
from bridge.relay.outbox import Outbox, ThreadRef, final_text
from bridge.relay.policy import Act, Policy
from bridge.relay.ports import FileSource, SlackError, SlackFile, ThreadHistory, ThreadMessage
from bridge.relay.slots import SlotKey
from bridge.slack.blocks import render_error, render_plan_mode, render_queued, render_skipped
from bridge.slack.failures import render_coder_error, render_warnings
from bridge.slack.workspaces import Bots, acting_enterprise
from bridge.tasks import TaskGroup

log = logging.getLogger(__name__)

_UNRECORDED_SEARCH = 20
"""Newest chat messages searched for a follow-up whose sending a stop interrupted."""


_NOW = re.compile(r"^!now(?:\s+|$)", re.IGNORECASE)
"""A reply that starts with ``!now``: stop the agent and have this message processed next."""

_STARTING_AT_ONCE = 4
"""New chats being started at the same time; more wait their turn. A hundred mentions at once all
started together shared the event loop so thinly that each chat's stream opened only seconds later,
and the replies already streaming waited with them; one at a time, each starts in milliseconds."""

_RELAYED_KEPT = 10_000
"""Messages this process relayed, remembered so the twin event of each costs no transaction."""

_CONTEXT_SEPARATOR = "\n\n"
"""Between a late-started chat's thread context and the words of the mention that started it."""


@dataclass(frozen=True)
class IncomingMessage:
    """A person's Slack message, reduced to what the relay needs."""

    event_id: str
    team_id: str
    channel_id: str
    user_id: str
    text: str
    ts: str
    thread_ts: str | None
    mentioned: bool
    direct: bool
    files: tuple[SlackFile, ...] = ()
    edited: bool = False
    """A ``message_changed``: ``text`` and ``files`` are the message's new content."""
    previous_text: str = ""

    @property
    def root_ts(self) -> str:
        """The thread this message belongs to (a top-level message starts its own)."""
        return self.thread_ts or self.ts


@dataclass(frozen=True)
class MessageDeletion:
    """A person deleted a message (``message_deleted``)."""

    event_id: str
    team_id: str
    channel_id: str
    ts: str
    thread_ts: str | None

    @property
    def root_ts(self) -> str:
        """The thread the deleted message was in."""
        return self.thread_ts or self.ts


@dataclass(frozen=True)
class ContextLimits:
    """How much of a thread's earlier conversation a chat started late in it gets."""

    messages: int = 20
    chars: int = 8000


def _relayed_as(stored: str, words: str) -> bool:
    """Whether a user message in Coder is the relay of a Slack message with these words: the same
    text, or (a chat started late in a thread) the thread's context, then those words."""
    return stored == words or (bool(words) and stored.endswith(f"{_CONTEXT_SEPARATOR}{words}"))


def _words(text: str) -> str:
    """A task's words without the options at its start (the text as it reached Coder)."""
    try:
        return split_options(text)[1]
    except OptionError:
        return text


def chat_labels(message: IncomingMessage) -> dict[str, str]:
    """Labels naming the chat's Slack origin (``interface.md``), so chats can be found from Coder."""
    return {
        "slack_team": message.team_id,
        "slack_channel": message.channel_id,
        "slack_thread": message.root_ts,
        "slack_user": message.user_id,
    }


async def _attach(session: AsyncSession, created: tuple[int, Chat]) -> None:
    link_id, chat = created
    await repo.attach_chat(
        session, link_id, chat_id=chat.id, status=chat.status.name, phase=chat.status.phase.value
    )


async def _claim_message(session: AsyncSession, link: ThreadLink, message: IncomingMessage) -> bool:
    """Claim a person's message for relaying on ``link``; False when its twin or a retry was first."""
    assert link.id is not None
    return await repo.claim_inbound(
        session, link_id=link.id, channel_id=message.channel_id, ts=message.ts, user_id=message.user_id
    )


class Inbound:
    """Takes people's messages in, quickly, and relays them in the background."""

    def __init__(
        self,
        db: Database,
        identity: Identity,
        policy: Policy,
        outbox: Outbox,
        follows: Follows,
        headers: Headers,
        intake: Intake,
        *,
        files: FileSource,
        history: ThreadHistory,
        bots: Bots,
        organization_id: str | None,
        context: ContextLimits = ContextLimits(),
        leases: Leases | None = None,
    ) -> None:
        self._db = db
        self._identity = identity
        self._policy = policy
        self._outbox = outbox
        self._follows = follows
        self._headers = headers
        self._intake = intake
        self._bots = bots
        """Who the bot is in the workspace of each message (every installation has a bot user of its
        own): its mention is stripped, its messages left out of a thread's context."""
        self._organization_id = organization_id
        self._history = history
        self._context = context
        self._attachments = Attachments(files, organization_id=organization_id)
        self._revisions = Revisions(db, identity, outbox, follows)
        self._answers = Answers(db, identity, policy, follows)
        # A thread's messages one at a time, also across replicas (without ``leases``: this process alone).
        self._turns = Turns(leases or Leases(db, "", shared=False), "inbound:")
        self._tasks = TaskGroup("inbound")
        self._starting = asyncio.Semaphore(_STARTING_AT_ONCE)
        self._relayed: dict[tuple[str, str], None] = {}  # (channel, ts), oldest first
        # Chats created together record their ids in one transaction (group commit).
        self._writes = TaskGroup("inbound-writes")
        self._attaches = GroupWriter(db, _attach, self._writes.spawn)

    def submit(self, message: IncomingMessage | MessageDeletion) -> None:
        """Queue a message (or an edit or deletion) and return at once (Slack wants its ack within 3 s)."""
        self._tasks.spawn(f"{message.channel_id}:{message.ts}", self._handle(message))

    async def drain(self, timeout: float) -> bool:
        """Let in-flight messages finish (shutdown); True when none is left."""
        return await self._tasks.wait(timeout)

    async def close(self) -> None:
        """Cancel whatever is still in flight."""
        await self._tasks.cancel()
        await self._writes.cancel()

    async def _handle(self, message: IncomingMessage | MessageDeletion) -> None:
        # The lock is taken before the first await, so tasks of one thread run in submission order.
        with tracing.span("relay.inbound"):
            async with self._turns.hold(message.channel_id, message.root_ts):
                if isinstance(message, MessageDeletion) or message.edited:
                    await self._intake.settle(message.event_id, self._revise(message))
                elif (message.channel_id, message.ts) in self._relayed:
                    await self._intake.finish(message.event_id)  # its twin (or a retry) was relayed here
                else:
                    await self._intake.settle(message.event_id, self._relay(message))

    def _claimed(self, message: IncomingMessage) -> None:
        """This process claimed the message for relaying. Slack delivers a mention twice
        (``app_mention`` and ``message``): the twin, handled after it here, is dropped without a
        look-up in the database (in another replica, or after a restart, the claim stops it)."""
        self._outbox.untouched(message.ts)
        self._relayed[(message.channel_id, message.ts)] = None
        if len(self._relayed) > _RELAYED_KEPT:
            del self._relayed[next(iter(self._relayed))]

    async def _release(self, message: IncomingMessage) -> None:
        """Forget the message's claim (its relay failed), so that it can be relayed again."""
        async with self._db.unit() as session:
            await repo.release_inbound(session, channel_id=message.channel_id, ts=message.ts)
        self._relayed.pop((message.channel_id, message.ts), None)

    async def _revise(self, message: IncomingMessage | MessageDeletion) -> None:
        """An edit or deletion of a message this bridge relayed; any other is not our business."""
        async with self._db.unit() as session:
            row = await repo.find_inbound(session, channel_id=message.channel_id, ts=message.ts)
            link = await repo.find_link(session, row.link_id) if row is not None else None
        if row is None or link is None or link.chat_id is None:
            log.debug("ignoring a change to unrelayed message %s/%s", message.channel_id, message.ts)
            return
        # Slack lets only a message's author edit it, and a deletion names nobody: the author it is.
        refusal = await self._policy.refusal(row.user_id, Act.FOLLOW_UP, link=link)
        if refusal is not None:
            deleted = isinstance(message, MessageDeletion)
            change = "deletion was not passed on to" if deleted else "edit was not sent to"
            log.info("refused a change by %s in %s: %s", row.user_id, link.channel_id, refusal)
            await self._identity.whisper(
                link.channel_id, row.user_id, link.thread_ts, f"{refusal} Your {change} the agent."
            )
            return
        if isinstance(message, MessageDeletion):
            await self._revisions.delete(link, row)
            return
        bot = await self._bots.user_id()
        await self._revisions.edit(
            link, row, strip_mention(message.text, bot), strip_mention(message.previous_text, bot)
        )

    async def _report_skipped(
        self, link: ThreadLink, message: IncomingMessage, attached: Attached, *, rest_sent: bool
    ) -> None:
        if attached.skipped:
            text = render_skipped(attached.skipped, rest_sent=rest_sent)
            await self._say(thread_ref(link), SlotKey.files(message.ts).encode(), text)

    async def _prompt(self, message: IncomingMessage, prompt: str) -> tuple[str, tuple[SlackFile, ...]]:
        """The chat's first text and files: with the thread's earlier messages when it starts late."""
        if message.thread_ts is None or message.thread_ts == message.ts or not self._context.messages:
            return prompt, message.files
        try:
            thread = await self._history.thread(message.channel_id, message.thread_ts)
        except SlackError as exc:
            log.warning("reading thread %s/%s failed: %s", message.channel_id, message.thread_ts, exc)
            return prompt, message.files
        before = await self._admitted(
            message, earlier(thread, before_ts=message.ts, bot_user_id=await self._bots.user_id())
        )
        context, files = render_context(
            before, max_messages=self._context.messages, max_chars=self._context.chars
        )
        if not context:
            return prompt, message.files
        return f"{context}{_CONTEXT_SEPARATOR}{prompt}".strip(), (*files, *message.files)

    async def _admitted(
        self, message: IncomingMessage, thread: Sequence[ThreadMessage]
    ) -> list[ThreadMessage]:
        """The thread's messages by people the access policy lets start chats there: nobody else's
        words reach the agent, not even as context."""
        admitted: dict[str, bool] = {}
        for author in dict.fromkeys(m.user_id for m in thread):
            refusal = await self._policy.refusal(
                author, Act.START, channel_id=message.channel_id, direct=message.direct
            )
            admitted[author] = refusal is None
        return [m for m in thread if admitted[m.user_id]]

    async def _relay(self, message: IncomingMessage) -> None:
        starts = message.mentioned or message.direct
        if message.thread_ts is None and not starts:  # a channel's own message: no thread, no chat
            log.debug("ignoring message %s/%s outside threads", message.channel_id, message.ts)
            return
        if message.thread_ts is None and await self._start_new(message):
            return
        async with self._db.unit() as session:
            link = await repo.find_link_by_thread(
                session, team_id=message.team_id, channel_id=message.channel_id, thread_ts=message.root_ts
            )
        if link is not None and link.chat_id is None and starts and link.phase == repo.STARTING_PHASE:
            if await self._started_by(link, message):
                await self._resume(link, message)
            else:  # someone else's mention while the chat is set up: their follow-up, as the policy says
                await self._follow_up(link, message)
        elif link is None or (link.chat_id is None and link.phase == repo.FAILED_PHASE):
            if starts:
                backend = await self._admit(message)
                if backend is not None:
                    async with self._starting:
                        await self._start_chat(link, message, backend)
            elif link is not None:
                await self._say(
                    thread_ref(link),
                    SlotKey.answer(message.ts).encode(),
                    render_error("This thread has no Coder chat yet: mention me with the task to start one."),
                )
            else:
                log.debug("ignoring message in unlinked thread %s/%s", message.channel_id, message.root_ts)
        else:
            await self._follow_up(link, message)

    async def _start_new(self, message: IncomingMessage) -> bool:
        """A mention that begins a thread, so that only it (or its twin) can have linked the thread:
        claimed at once, without reading the link first (a burst of mentions was a transaction each
        more). False when the thread was claimed before (a replay after a stop, a retry): the
        stored link then decides, as for any message."""
        backend = await self._admit(message)
        if backend is None:
            return True
        async with self._starting:
            return await self._start_chat(None, message, backend)

    async def _started_by(self, link: ThreadLink, message: IncomingMessage) -> bool:
        """Whether ``message`` is the one that claimed the link (its replay after a stop), not another."""
        async with self._db.unit() as session:
            row = await repo.find_inbound(session, channel_id=message.channel_id, ts=message.ts)
        return row is not None and row.link_id == link.id and row.user_id == link.requester_user_id

    async def _resume(self, link: ThreadLink, message: IncomingMessage) -> None:
        """Continue a creation a stop cut short, if its author may still start chats (and has a link)."""
        backend = await self._admit(message)
        if backend is None:
            await self._fail(link)
            return
        await self._start_chat(link, message, backend, resumed=True)

    async def _admit(self, message: IncomingMessage) -> CoderBackend | None:
        """The backend to start this person's chat with, or None after telling them privately why not."""
        refusal = await self._policy.refusal(
            message.user_id, Act.START, channel_id=message.channel_id, direct=message.direct
        )
        if refusal is not None:
            await self._whisper(message, refusal)
            return None
        backend = await self._identity.backend_for(message.team_id, message.user_id)
        if backend is None:
            await self._whisper(message, HOW_TO_LINK)
        return backend

    async def _whisper(self, message: IncomingMessage, text: str) -> None:
        """Tell only the author, in the thread they wrote in (a DM's own message is not a thread)."""
        thread_ts = None if message.direct and message.thread_ts is None else message.root_ts
        log.info("refused a message of %s in %s: %s", message.user_id, message.channel_id, text)
        await self._identity.whisper(message.channel_id, message.user_id, thread_ts, text)

    async def _refused_token(self, message: IncomingMessage) -> bool:
        """Coder refused a linked user's token: their link is marked broken and they are told."""
        return await self._identity.refused(
            message.team_id, message.user_id, message.channel_id, message.root_ts
        )

    async def _claim_thread(self, link: ThreadLink | None, message: IncomingMessage) -> ThreadLink | None:
        """The thread's link, newly claimed (or a failed one claimed again), with this message claimed
        on it. Its author is the requester: a failed attempt leaves its author nothing in the thread."""
        async with self._db.unit() as session:
            if link is None:  # None again when the same message's twin event got here first
                link = await repo.claim_thread(
                    session,
                    team_id=message.team_id,
                    channel_id=message.channel_id,
                    thread_ts=message.root_ts,
                    requester_user_id=message.user_id,
                    enterprise_id=acting_enterprise(),
                )
                claimed = link is not None and await _claim_message(session, link, message)
            else:  # the message first, so a link claimed again always has its creation under way
                assert link.id is not None
                claimed = await _claim_message(session, link, message)
                if claimed:  # None when another attempt claimed it again first
                    link = await repo.reclaim_thread(session, link.id, requester_user_id=message.user_id)
            if link is None or not claimed:
                return None
        self._claimed(message)
        return link

    async def _start_chat(
        self,
        existing: ThreadLink | None,
        message: IncomingMessage,
        backend: CoderBackend,
        *,
        resumed: bool = False,
    ) -> bool:
        """Create the thread's chat; ``resumed`` continues a creation a stop cut short (claims held).
        False when the thread (with no ``existing`` link known) turned out to be claimed already."""
        try:
            requested, prompt = split_options(strip_mention(message.text, await self._bots.user_id()))
            options = await resolve(backend, requested) if requested else NO_OPTIONS
        except OptionError as exc:
            await self._whisper(message, str(exc))  # nothing claimed yet: only a private answer
            if resumed and existing is not None:  # the options passed before the stop; not now
                await self._fail(existing)
            return True
        link = existing if resumed else await self._claim_thread(existing, message)
        if link is None:
            return existing is not None
        assert link.id is not None
        ref = thread_ref(link)
        if not prompt and not message.files:
            await self._say(
                ref, HEADER_SLOT, "Tell me what to do, e.g. `@Coder Agents fix the flaky auth test`."
            )
            await self._fail(link)
            return True
        try:
            chat = await self._created_before(backend, message) if resumed else None
            if chat is None:
                content = await self._content(backend, link, message, *await self._prompt(message, prompt))
                if not content:
                    await self._say(ref, HEADER_SLOT, render_error("Nothing in that message could be sent."))
                    await self._fail(link)
                    return True
                chat = await backend.create_chat(
                    content,
                    labels=chat_labels(message),
                    organization_id=self._organization_id,
                    options=options,
                )
        except CoderError as exc:
            log.warning("creating a chat for %s/%s failed: %s", message.channel_id, message.root_ts, exc)
            if isinstance(exc, CoderAuthError) and await self._refused_token(message):
                await self._fail(link)
                return True
            await self._say(
                ref,
                HEADER_SLOT,
                render_error(
                    f"Couldn't start a Coder chat: {render_coder_error(exc)}. Mention me again to retry."
                ),
            )
            await self._fail(link)
            return True
        await self._attaches((link.id, chat))
        await self._headers.show(ref, chat, archived=False)
        if chat.warnings:
            await self._say(ref, SlotKey.warnings(message.ts).encode(), render_warnings(chat.warnings))
        if options.plan:
            await self._say(
                ref, SlotKey.answer(message.ts).encode(), render_plan_mode(chat.plan_mode, PLAN_MODE_VERSION)
            )
        log.info(
            "started chat %s for %s/%s",
            chat.id,
            message.channel_id,
            message.root_ts,
            extra={"chat_id": chat.id},
        )
        self._follows.follow(chat.id)
        return True

    async def _content(
        self,
        backend: CoderBackend,
        link: ThreadLink,
        message: IncomingMessage,
        text: str,
        files: Sequence[SlackFile],
    ) -> list[InputPart]:
        """Text and uploaded files as one message's parts; skipped files are named in the thread."""
        attached = await self._attachments.upload(backend, files)
        content = ([InputPart.of_text(text)] if text else []) + list(attached.parts)
        await self._report_skipped(link, message, attached, rest_sent=bool(content))
        return content

    async def _created_before(self, backend: CoderBackend, message: IncomingMessage) -> Chat | None:
        """The chat a creation cut short may have made already, found by its slack_* labels."""
        found = await backend.list_chats(labels=chat_labels(message))
        if found:
            log.info(
                "found chat %s made before the stop for %s/%s", found[0].id, message.channel_id, message.ts
            )
        return found[0] if found else None

    async def _say(self, ref: ThreadRef, slot: str, text: str) -> None:
        """Answer in the thread durably: stored before the event counts as handled."""
        await self._outbox.put(ref, [final_text(slot, text)])

    async def _fail(self, link: ThreadLink) -> None:
        assert link.id is not None
        async with self._db.unit() as session:
            await repo.mark_failed(session, link.id)

    async def _follow_up(self, link: ThreadLink, message: IncomingMessage) -> None:
        if message.ts == link.thread_ts:  # the thread's first message started the chat; not a follow-up
            return
        refusal = await self._policy.refusal(message.user_id, Act.FOLLOW_UP, link=link)
        if refusal is not None:
            await self._whisper(message, refusal)
            return
        ref = thread_ref(link)
        if link.archived:
            deleted = self._identity.shared.capabilities.archive == "delete"
            await self._say(
                ref,
                SlotKey.answer(message.ts).encode(),
                render_error(
                    "This chat was deleted in Coder, so your message was not sent. Mention me in a new "
                    "message to start another chat."
                    if deleted
                    else "This chat is archived, so your message was not sent. Unarchive it first."
                ),
            )
            return
        if link.chat_id is None:
            await self._say(
                ref,
                SlotKey.answer(message.ts).encode(),
                render_error(
                    "This thread's chat is still being set up; send your message again in a moment."
                ),
            )
            return
        chat_id = ChatId(link.chat_id)
        text = strip_mention(message.text, await self._bots.user_id())
        now = _NOW.match(text)
        text = text[now.end() :] if now else text
        if not text and not message.files:
            if now:
                await self._whisper(message, "Write the message after `!now`, e.g. `!now use the v2 API`.")
            return
        backend = await self._identity.backend_for_link(link)
        if backend is None:  # linked mode: only the requester gets here, and their link is gone
            await self._whisper(message, HOW_TO_LINK)
            return
        async with self._db.unit() as session:
            claimed = await _claim_message(session, link, message)
            row = (
                None
                if claimed
                else await repo.find_inbound(session, channel_id=message.channel_id, ts=message.ts)
            )
        if claimed:
            self._claimed(message)
        unrecorded = row is not None and row.coder_message_id is None and row.queued_message_id is None
        if unrecorded and await self._never_arrived(backend, ref, chat_id, message, text):
            async with self._db.unit() as session:  # the claim was released: relay it as new
                claimed = await _claim_message(session, link, message)
        if not claimed:
            return
        content = await self._content(backend, link, message, text, message.files)
        if not content:
            await self._release(message)
            return
        # The turn ended waiting for a person (stored with its ending): this message is the answer.
        waited = link.phase == repo.WAITING_PHASE
        async with self._db.unit() as session:  # a crash after the send still finds the chat busy
            assert link.id is not None
            await repo.mark_busy(session, link.id)
        try:
            stopped = await self._stop_for(backend, link, message) if now else None
            if stopped is not None:  # said before the send, so the thread reads before the agent's answer
                await self._say(ref, SlotKey.stop(message.ts).encode(), stopped)
            elif waited and text and await self._answers.in_words(backend, chat_id, message.user_id, text):
                await self._answered(backend, chat_id, message, text)
                return
            self._follows.answering(chat_id, reply_key(text), message.user_id)  # it may answer a question
            result = await backend.send_message(chat_id, content, resume=waited)
            if stopped is not None and result.queued_message is not None:  # the stop had not landed yet
                result = await self._to_front(backend, chat_id, result)
        except CoderError as exc:
            log.warning("follow-up to chat %s failed: %s", chat_id, exc, extra={"chat_id": chat_id})
            await self._release(message)
            if isinstance(exc, CoderAuthError) and await self._refused_token(message):
                return
            await self._say(
                ref,
                SlotKey.answer(message.ts).encode(),
                render_error(
                    f"Your message did not reach the agent: {render_coder_error(exc)}. Please send it again."
                ),
            )
            return
        await self._record(
            ref,
            chat_id,
            message,
            coder_message_id=result.message.id if result.message else None,
            queued=result.queued_message,
            warnings=result.warnings,
        )
        self._follows.follow(chat_id)

    async def _answered(
        self, backend: CoderBackend, chat_id: ChatId, message: IncomingMessage, text: str
    ) -> None:
        """A reply that answered the agent's open question is recorded as the message that holds the
        answer (Coder keeps it as the question's result), so a redelivery of it is not sent again."""
        answer = answer_in_words(await backend.recent_messages(chat_id, limit=_UNRECORDED_SEARCH), text)
        if answer is not None:
            async with self._db.unit() as session:
                await repo.record_inbound(
                    session,
                    channel_id=message.channel_id,
                    ts=message.ts,
                    coder_message_id=answer.id,
                    queued_message_id=None,
                )

    async def _stop_for(
        self, backend: CoderBackend, link: ThreadLink, message: IncomingMessage
    ) -> str | None:
        """``!now``: stop the running turn so this message goes next; the line the thread shows.

        Stopping is a control, so it needs the access policy's leave; without it the message goes
        as an ordinary follow-up and the person is told why (None)."""
        refusal = await self._policy.refusal(message.user_id, Act.CONTROL, link=link)
        if refusal is not None:
            await self._whisper(message, f"{refusal} Your message was sent as a normal reply instead.")
            return None
        chat_id = ChatId(str(link.chat_id))
        if not (await backend.get_chat(chat_id)).status.phase.busy:
            return "Nothing was running, so your `!now` message went to the agent as a normal reply."
        self._follows.stopping(chat_id)  # before Coder answers: its idle status may come first
        await backend.interrupt(chat_id)
        return f"⏭️ Stopped the agent at <@{message.user_id}>'s request; it takes this message next."

    async def _to_front(self, backend: CoderBackend, chat_id: ChatId, sent: SendResult) -> SendResult:
        """A ``!now`` message Coder queued: promoted, unless Coder took it from its queue by itself
        once the stop landed (then the promote fails, and the message is delivered all the same).
        Where Coder only accepts the promotion (202) it stays recorded as queued: the stream shows
        it taken, as for Coder's own promotions."""
        assert sent.queued_message is not None
        try:
            promoted = await backend.promote_queued(chat_id, sent.queued_message.id)
        except CoderError as exc:
            log.info("a !now message left the queue before its promote (%s)", exc, extra={"chat_id": chat_id})
            return sent
        return sent if promoted is None else SendResult(queued=False, message=promoted)

    async def _record(
        self,
        ref: ThreadRef,
        chat_id: ChatId,
        message: IncomingMessage,
        *,
        coder_message_id: int | None,
        queued: QueuedMessage | None,
        warnings: Sequence[str] = (),
    ) -> None:
        """Store what Coder made of a follow-up, and the "Queued" notice and Coder's warnings with it
        (one transaction: a crash leaves neither or both, and the warnings' slot is the message's, so
        a redelivered event shows them once); the chat's queue then shows its place, or the turn it
        started its reaction (the stream may have shown that turn before Coder's answer came)."""
        notice = (
            [
                final_text(
                    SlotKey.answer(message.ts).encode(),
                    render_queued(None),
                    queued_buttons(chat_id, queued.id),
                )
            ]
            if queued is not None
            else []
        )
        if warnings:
            notice.append(final_text(SlotKey.warnings(message.ts).encode(), render_warnings(warnings)))
        async with self._db.unit() as session:
            await repo.record_inbound(
                session,
                channel_id=message.channel_id,
                ts=message.ts,
                coder_message_id=coder_message_id,
                queued_message_id=queued.id if queued is not None else None,
                queued_text=queued.text if queued is not None else "",
            )
            stored = await self._outbox.stage(session, ref, notice)
        self._outbox.show(ref, stored)
        if queued is not None:
            await self._follows.queue_changed(chat_id)
        elif coder_message_id is not None:
            await self._follows.recorded(chat_id, coder_message_id)

    async def _never_arrived(
        self, backend: CoderBackend, ref: ThreadRef, chat_id: ChatId, message: IncomingMessage, text: str
    ) -> bool:
        """A replay of a follow-up claimed before a stop but never recorded: the stop came between the
        claim and Coder's answer. Coder's queue and newest messages tell whether it arrived: if so it
        is recorded now; if not, its claim is released and True returned, to relay it as new (so it
        reaches Coder exactly once). The ``message`` twin of a mention that started the chat late in
        a thread, handled after its ``app_mention``, gets here too: its words are found at the end of
        the chat's first message, after the thread's context, and it is recorded, not sent again."""
        try:
            queued = [q for q in await backend.queued_messages(chat_id) if q.text == text]
            messages = await backend.recent_messages(chat_id, limit=_UNRECORDED_SEARCH)
            recent = [
                m
                for m in messages
                if m.role == "user" and (_relayed_as(m.text, text) or _relayed_as(m.text, _words(text)))
            ]
            answer = answer_in_words(messages, text)  # it answered a question
            recent += [answer] if answer is not None else []
        except CoderError as exc:
            log.warning("could not check whether follow-up %s reached Coder: %s", message.ts, exc)
            return False
        if queued or recent:
            await self._record(
                ref,
                chat_id,
                message,
                coder_message_id=recent[-1].id if recent and not queued else None,
                queued=queued[-1] if queued else None,
            )
            self._follows.follow(chat_id)
            return False
        await self._release(message)
        return True
