"""Slack messages -> Coder: start a chat for a new thread, relay replies as follow-ups.

Every step that must happen once is claimed in the database first: the Slack event id (retries),
the thread (a second chat for the same thread), and the message's (channel, ts) (Slack delivers a
mention both as ``app_mention`` and as ``message``). Messages of one thread are handled one at a
time, in arrival order, so follow-ups reach Coder in the order people wrote them.

When Coder fails, the claim is released and the person is told in the thread that their message
was not delivered, so nothing they wrote disappears silently.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from bridge.coder.backend import CoderBackend
from bridge.coder.errors import CoderError
from bridge.coder.types import Chat, ChatId, InputPart
from bridge.db import repo
from bridge.db.engine import Database
from bridge.db.models import ThreadLink
from bridge.relay.intake import Intake
from bridge.relay.outbox import Outbox
from bridge.relay.supervisor import HEADER_SLOT, Supervisor, thread_ref
from bridge.slack.blocks import render_error, render_header, render_queued
from bridge.tasks import KeyedLocks, TaskGroup

log = logging.getLogger(__name__)

_MENTION = re.compile(r"<@([UW][A-Z0-9]+)(?:\|[^>]*)?>")


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

    @property
    def root_ts(self) -> str:
        """The thread this message belongs to (a top-level message starts its own)."""
        return self.thread_ts or self.ts


def strip_mention(text: str, bot_user_id: str) -> str:
    """The prompt without the bot's own mention(s); other people's mentions stay."""
    return _MENTION.sub(lambda m: "" if m.group(1) == bot_user_id else m.group(0), text).strip()


def chat_labels(message: IncomingMessage) -> dict[str, str]:
    """Labels naming the chat's Slack origin (``interface.md``), so chats can be found from Coder."""
    return {
        "slack_team": message.team_id,
        "slack_channel": message.channel_id,
        "slack_thread": message.root_ts,
        "slack_user": message.user_id,
    }


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
        backend: CoderBackend,
        outbox: Outbox,
        supervisor: Supervisor,
        intake: Intake,
        *,
        bot_user_id: str,
        organization_id: str | None,
    ) -> None:
        self._db = db
        self._backend = backend
        self._outbox = outbox
        self._supervisor = supervisor
        self._intake = intake
        self._bot_user_id = bot_user_id
        self._organization_id = organization_id
        self._locks = KeyedLocks()
        self._tasks = TaskGroup("inbound")

    def submit(self, message: IncomingMessage) -> None:
        """Queue a message for relaying and return at once (Slack wants its ack within 3 s)."""
        self._tasks.spawn(f"{message.channel_id}:{message.ts}", self._handle(message))

    async def drain(self, timeout: float) -> bool:
        """Let in-flight messages finish (shutdown); True when none is left."""
        return await self._tasks.wait(timeout)

    async def close(self) -> None:
        """Cancel whatever is still in flight."""
        await self._tasks.cancel()

    async def _handle(self, message: IncomingMessage) -> None:
        # The lock is taken before the first await, so tasks of one thread run in submission order.
        async with self._locks.hold((message.channel_id, message.root_ts)):
            await self._intake.settle(message.event_id, self._relay(message))

    async def _relay(self, message: IncomingMessage) -> None:
        async with self._db.unit() as session:
            link = await repo.find_link_by_thread(
                session, team_id=message.team_id, channel_id=message.channel_id, thread_ts=message.root_ts
            )
        starts = message.mentioned or message.direct
        if link is not None and link.chat_id is None and starts and link.phase == repo.STARTING_PHASE:
            await self._start_chat(link, message, resumed=True)  # a creation cut short by a stop
        elif link is None or (link.chat_id is None and link.phase == repo.FAILED_PHASE):
            if starts:
                await self._start_chat(link, message)
            elif link is not None:
                self._outbox.set_text(
                    thread_ref(link),
                    f"reply:{message.ts}",
                    render_error("This thread has no Coder chat yet: mention me with the task to start one."),
                    final=True,
                )
            else:
                log.debug("ignoring message in unlinked thread %s/%s", message.channel_id, message.root_ts)
        else:
            await self._follow_up(link, message)

    async def _claim_thread(self, link: ThreadLink | None, message: IncomingMessage) -> ThreadLink | None:
        """The thread's link, newly claimed (or a failed one reused), with this message claimed on it."""
        async with self._db.unit() as session:
            if link is None:
                link = await repo.claim_thread(
                    session,
                    team_id=message.team_id,
                    channel_id=message.channel_id,
                    thread_ts=message.root_ts,
                    requester_user_id=message.user_id,
                )
                if link is None:  # the same message's twin event got here first
                    return None
            if not await _claim_message(session, link, message):
                return None
        return link

    async def _start_chat(
        self, existing: ThreadLink | None, message: IncomingMessage, *, resumed: bool = False
    ) -> None:
        """Create the thread's chat; ``resumed`` continues a creation a stop cut short (claims held)."""
        link = existing if resumed else await self._claim_thread(existing, message)
        if link is None:
            return
        assert link.id is not None
        ref = thread_ref(link)
        prompt = strip_mention(message.text, self._bot_user_id)
        if not prompt:
            self._outbox.set_text(
                ref,
                HEADER_SLOT,
                "Tell me what to do, e.g. `@Coder Agents fix the flaky auth test`.",
                final=True,
            )
            await self._fail(link)
            return
        try:
            chat = await self._created_before(message) if resumed else None
            if chat is None:
                chat = await self._backend.create_chat(
                    [InputPart.of_text(prompt)],
                    labels=chat_labels(message),
                    organization_id=self._organization_id,
                )
        except CoderError as exc:
            log.warning("creating a chat for %s/%s failed: %s", message.channel_id, message.root_ts, exc)
            self._outbox.set_text(
                ref,
                HEADER_SLOT,
                render_error(f"Couldn't start a Coder chat: {exc}. Mention me again to retry."),
                final=True,
            )
            await self._fail(link)
            return
        async with self._db.unit() as session:
            await repo.attach_chat(
                session, link.id, chat_id=chat.id, status=chat.status.name, phase=chat.status.phase.value
            )
        url = self._backend.chat_url(chat.id)
        self._outbox.set_text(ref, HEADER_SLOT, render_header(title=chat.title, url=url, status=chat.status))
        log.info(
            "started chat %s for %s/%s",
            chat.id,
            message.channel_id,
            message.root_ts,
            extra={"chat_id": chat.id},
        )
        self._supervisor.follow(chat.id)

    async def _created_before(self, message: IncomingMessage) -> Chat | None:
        """The chat a creation cut short may have made already, found by its slack_* labels."""
        found = await self._backend.list_chats(labels=chat_labels(message))
        if found:
            log.info(
                "found chat %s made before the stop for %s/%s", found[0].id, message.channel_id, message.ts
            )
        return found[0] if found else None

    async def _fail(self, link: ThreadLink) -> None:
        assert link.id is not None
        async with self._db.unit() as session:
            await repo.mark_failed(session, link.id)

    async def _follow_up(self, link: ThreadLink, message: IncomingMessage) -> None:
        if message.ts == link.thread_ts:  # the thread's first message started the chat; not a follow-up
            return
        ref = thread_ref(link)
        if link.archived:
            deleted = self._backend.capabilities.archive == "delete"
            self._outbox.set_text(
                ref,
                f"reply:{message.ts}",
                render_error(
                    "This chat was deleted in Coder, so your message was not sent. Mention me in a new "
                    "message to start another chat."
                    if deleted
                    else "This chat is archived, so your message was not sent. Unarchive it first."
                ),
                final=True,
            )
            return
        if link.chat_id is None:
            self._outbox.set_text(
                ref,
                f"reply:{message.ts}",
                render_error(
                    "This thread's chat is still being set up; send your message again in a moment."
                ),
                final=True,
            )
            return
        chat_id = ChatId(link.chat_id)
        text = strip_mention(message.text, self._bot_user_id)
        if not text:
            return
        async with self._db.unit() as session:
            if not await _claim_message(session, link, message):
                return
        try:
            result = await self._backend.send_message(chat_id, [InputPart.of_text(text)])
        except CoderError as exc:
            log.warning("follow-up to chat %s failed: %s", chat_id, exc, extra={"chat_id": chat_id})
            async with self._db.unit() as session:
                await repo.release_inbound(session, channel_id=message.channel_id, ts=message.ts)
            self._outbox.set_text(
                ref,
                f"reply:{message.ts}",
                render_error(f"Your message did not reach the agent: {exc}. Please send it again."),
                final=True,
            )
            return
        async with self._db.unit() as session:
            await repo.record_inbound(
                session,
                channel_id=message.channel_id,
                ts=message.ts,
                coder_message_id=result.message.id if result.message else None,
                queued_message_id=result.queued_message.id if result.queued_message else None,
            )
        if result.queued:
            self._outbox.set_text(ref, f"reply:{message.ts}", render_queued(None), final=True)
        self._supervisor.follow(chat_id)
