"""Emoji reactions that control a chat: interrupt the agent, archive or unarchive, promote.

Interrupt and archive count on the thread's first message and on the bot's messages in it; promote
counts on a follow-up that Coder queued (``interface.md``). A reaction anywhere else, or with
another emoji, is ignored. Who may control a chat is the access policy's call (by default its
requester and the bridge's admins); anyone else is told privately why nothing happened. A control
runs with the chat owner's Coder token. Each control is confirmed in the thread, and a failure is
said there too.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy.ext.asyncio import AsyncSession

from bridge.coder.backend import CoderBackend
from bridge.coder.errors import CoderAuthError, CoderError
from bridge.coder.types import ChatId
from bridge.db import repo
from bridge.db.engine import Database
from bridge.db.models import ThreadLink
from bridge.relay.identity import Identity
from bridge.relay.intake import Intake
from bridge.relay.outbox import Outbox, final_text
from bridge.relay.policy import Policy
from bridge.relay.supervisor import Supervisor, thread_ref
from bridge.slack.blocks import render_error
from bridge.tasks import TaskGroup

log = logging.getLogger(__name__)


class Control(StrEnum):
    """What a reaction asks for."""

    INTERRUPT = "interrupt"
    ARCHIVE = "archive"
    PROMOTE = "promote"


@dataclass(frozen=True)
class Reaction:
    """A reaction added to or removed from a message, reduced to what the relay needs."""

    event_id: str
    user_id: str
    channel_id: str
    item_ts: str
    name: str
    added: bool

    @property
    def emoji(self) -> str:
        """The reaction without a skin tone (``thumbsup::skin-tone-2`` -> ``thumbsup``)."""
        return self.name.split("::", 1)[0]


@dataclass(frozen=True)
class SessionStop:
    """A person clicked Stop on a thread's Slack Agent Session (``agent_session_stopped``)."""

    event_id: str
    user_id: str
    channel_id: str
    thread_ts: str


class Controls:
    """Carries out reaction controls in the background."""

    def __init__(
        self,
        db: Database,
        identity: Identity,
        policy: Policy,
        outbox: Outbox,
        supervisor: Supervisor,
        intake: Intake,
        *,
        emoji: dict[str, Control],
    ) -> None:
        self._db = db
        self._identity = identity
        self._policy = policy
        self._outbox = outbox
        self._supervisor = supervisor
        self._intake = intake
        self._emoji = emoji
        self._tasks = TaskGroup("controls")

    def wanted(self, reaction: Reaction) -> bool:
        """Whether the reaction's emoji is one of the controls (others are not even recorded)."""
        return reaction.emoji in self._emoji

    def submit(self, reaction: Reaction) -> None:
        """Handle a recorded reaction in the background (Slack wants its ack at once)."""
        self._tasks.spawn(reaction.event_id, self._intake.settle(reaction.event_id, self._control(reaction)))

    def stop_session(self, stop: SessionStop) -> None:
        """Slack's own Stop button is the interrupt reaction on the thread's first message: the same
        access check, the same interrupt, the same confirmation in the thread."""
        emoji = next(e for e, c in self._emoji.items() if c is Control.INTERRUPT)
        self.submit(Reaction(stop.event_id, stop.user_id, stop.channel_id, stop.thread_ts, emoji, added=True))

    async def drain(self, timeout: float) -> bool:
        """Let controls in flight finish (shutdown)."""
        return await self._tasks.wait(timeout)

    async def close(self) -> None:
        """Cancel controls still in flight (their events are handled at the next start)."""
        await self._tasks.cancel()

    async def _control(self, reaction: Reaction) -> None:
        control = self._emoji[reaction.emoji]
        if control is not Control.ARCHIVE and not reaction.added:
            return  # taking back a stop or a promote undoes nothing
        queued_id: int | None = None
        async with self._db.unit() as session:
            if control is Control.PROMOTE:
                inbound = await repo.find_inbound(
                    session, channel_id=reaction.channel_id, ts=reaction.item_ts
                )
                if inbound is None or inbound.queued_message_id is None:
                    return
                queued_id = inbound.queued_message_id
                link = await repo.get_link(session, inbound.link_id)
            else:
                link = await self._find_link(session, reaction)
        if link is None or link.chat_id is None:
            return
        refusal = await self._policy.may_control(link, reaction.user_id)
        if refusal is not None:
            await self._identity.whisper(reaction.channel_id, reaction.user_id, link.thread_ts, refusal)
            return
        backend = await self._identity.backend_for_link(link)
        if backend is None:
            text = render_error(
                f"Couldn't {control} the chat: <@{link.requester_user_id}>'s Coder account is no longer "
                "linked (`/coder link` links it again)."
            )
            await self._outbox.put(thread_ref(link), [final_text(f"control:{reaction.event_id}", text)])
            return
        chat_id = ChatId(link.chat_id)
        try:
            if queued_id is not None:
                text = await self._promote(backend, chat_id, reaction, queued_id)
            elif control is Control.INTERRUPT:
                text = await self._interrupt(backend, chat_id, reaction)
            else:
                text = await self._archive(backend, chat_id, reaction)
        except CoderError as exc:
            log.warning("%s of chat %s failed: %s", control, chat_id, exc, extra={"chat_id": chat_id})
            if isinstance(exc, CoderAuthError):
                await self._identity.refused(
                    link.team_id, link.requester_user_id, link.channel_id, link.thread_ts
                )
            verb = "unarchive" if control is Control.ARCHIVE and not reaction.added else control
            text = render_error(f"Couldn't {verb} the chat: {exc}")
        await self._outbox.put(thread_ref(link), [final_text(f"control:{reaction.event_id}", text)])

    async def _interrupt(self, backend: CoderBackend, chat_id: ChatId, reaction: Reaction) -> str:
        self._supervisor.stopping(chat_id)  # before Coder answers: its idle status may come first
        await backend.interrupt(chat_id)
        self._supervisor.follow(chat_id)
        return f"🛑 Stopped the agent at <@{reaction.user_id}>'s request."

    async def _archive(self, backend: CoderBackend, chat_id: ChatId, reaction: Reaction) -> str:
        await backend.set_archived(chat_id, reaction.added)
        async with self._db.unit() as session:
            await repo.set_archived(session, chat_id, reaction.added)
        if backend.capabilities.archive == "delete":
            return (
                f"🗑️ Deleted the chat in Coder at <@{reaction.user_id}>'s request (this Coder version cannot "
                "archive); replies here are no longer sent."
            )
        if reaction.added:
            return f"🗄️ Archived by <@{reaction.user_id}>; remove the reaction to unarchive."
        return f"📤 Unarchived by <@{reaction.user_id}>; replies here reach the agent again."

    async def _promote(
        self, backend: CoderBackend, chat_id: ChatId, reaction: Reaction, queued_id: int
    ) -> str:
        message = await backend.promote_queued(chat_id, queued_id)
        async with self._db.unit() as session:
            await repo.record_inbound(
                session,
                channel_id=reaction.channel_id,
                ts=reaction.item_ts,
                coder_message_id=message.id,
                queued_message_id=None,
            )
        self._supervisor.follow(chat_id)
        return f"⏫ <@{reaction.user_id}> moved a queued message to the front: the agent gets it next."

    async def _find_link(self, session: AsyncSession, reaction: Reaction) -> ThreadLink | None:
        """The chat of a reacted thread root or bot message (one just posted is found in memory)."""
        just_posted = self._outbox.link_of(reaction.channel_id, reaction.item_ts)
        if just_posted is not None:
            return await repo.get_link(session, just_posted)
        return await repo.find_link_by_message(session, channel_id=reaction.channel_id, ts=reaction.item_ts)
