"""Emoji reactions that control a chat: interrupt the agent, archive or unarchive the chat.

Reactions count on the thread's first message and on the bot's messages in it (``interface.md``);
a reaction anywhere else, or with another emoji, is ignored. Only the person who started the chat
may control it. Each control is confirmed in the thread, and a failure is said there too.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from enum import StrEnum

from bridge.coder.backend import CoderBackend
from bridge.coder.errors import CoderError
from bridge.coder.types import ChatId
from bridge.db import repo
from bridge.db.engine import Database
from bridge.db.models import ThreadLink
from bridge.relay.outbox import Outbox
from bridge.relay.ports import SlackError, SlackPoster
from bridge.relay.supervisor import Supervisor, thread_ref
from bridge.slack.blocks import render_error
from bridge.tasks import TaskGroup

log = logging.getLogger(__name__)


class Control(StrEnum):
    """What a reaction asks for."""

    INTERRUPT = "interrupt"
    ARCHIVE = "archive"


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


class Controls:
    """Carries out reaction controls in the background."""

    def __init__(
        self,
        db: Database,
        backend: CoderBackend,
        outbox: Outbox,
        supervisor: Supervisor,
        poster: SlackPoster,
        *,
        emoji: dict[str, Control],
    ) -> None:
        self._db = db
        self._backend = backend
        self._outbox = outbox
        self._supervisor = supervisor
        self._poster = poster
        self._emoji = emoji
        self._tasks = TaskGroup("controls")

    def submit(self, reaction: Reaction) -> None:
        """Handle a reaction in the background (Slack wants its ack at once)."""
        if reaction.emoji in self._emoji:
            self._tasks.spawn(reaction.event_id, self._handle(reaction))

    async def drain(self, timeout: float) -> bool:
        """Let controls in flight finish (shutdown)."""
        return await self._tasks.wait(timeout)

    async def _handle(self, reaction: Reaction) -> None:
        control = self._emoji[reaction.emoji]
        async with self._db.unit() as session:
            if not await repo.claim_event(session, reaction.event_id):
                return
            just_posted = self._outbox.link_of(reaction.channel_id, reaction.item_ts)
            if just_posted is not None:
                link = await repo.get_link(session, just_posted)
            else:
                link = await repo.find_link_by_message(
                    session, channel_id=reaction.channel_id, ts=reaction.item_ts
                )
        if link is None or link.chat_id is None:
            return
        if reaction.user_id != link.requester_user_id:
            await self._refuse(reaction, link)
            return
        chat_id, ref = ChatId(link.chat_id), thread_ref(link)
        who = f"<@{reaction.user_id}>"
        try:
            if control is Control.INTERRUPT:
                if not reaction.added:
                    return
                await self._backend.interrupt(chat_id)
                text = f"🛑 Stopped the agent at {who}'s request."
                self._supervisor.follow(chat_id)
            else:
                await self._backend.set_archived(chat_id, reaction.added)
                async with self._db.unit() as session:
                    await repo.set_archived(session, chat_id, reaction.added)
                text = (
                    f"🗄️ Archived by {who}; remove the reaction to unarchive."
                    if reaction.added
                    else f"📤 Unarchived by {who}; replies here reach the agent again."
                )
        except CoderError as exc:
            log.warning("%s of chat %s failed: %s", control, chat_id, exc, extra={"chat_id": chat_id})
            text = render_error(f"Couldn't {control} the chat: {exc}")
        self._outbox.set_text(ref, f"control:{reaction.event_id}", text, final=True)

    async def _refuse(self, reaction: Reaction, link: ThreadLink) -> None:
        """Tell only the person who reacted why nothing happened."""
        try:
            await self._poster.whisper(
                reaction.channel_id,
                reaction.user_id,
                link.thread_ts,
                f"Only <@{link.requester_user_id}>, who started this chat, can control it with reactions.",
            )
        except SlackError as exc:
            log.warning("could not explain a refused control: %s", exc)
