"""A chat started elsewhere (Coder's UI, its API, CI) gets a Slack thread, once, and is followed there.

Two paths lead here: a person's ``/coder follow`` (``relay.chat_commands``) and a chat whose labels
name a channel (``relay.pickup``). Both end the same way: the thread is linked to the chat like one
started from Slack, so its output streams in and replies there are follow-ups.

Once per chat: adoptions of one chat in this process take turns (two watch events, a catch-up and a
command), and each first looks for the chat's link, which the table keeps unique per chat, so a
restart or a second event finds the thread made before instead of posting another. The thread's
link and its chat are written in one transaction; for ``/coder follow`` with a stream cursor at the
chat's newest message, so the thread shows what happens from then on, not the chat's past (the
header links to all of it); a labelled chat was made for Slack and is shown from its start.
A new thread's first message is tagged with the chat (message metadata), and an adoption looks for
it in the channel's recent history before posting one: a crash between Slack's answer and that
transaction, or an answer lost on its way back, leaves a message the next adoption takes as the
thread's root instead of posting a second. (Replicas adopting the same chat at the same moment could
still both post; only one wins the chat's link. Several replicas do not share work yet.)
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy.exc import IntegrityError

from bridge.coder.backend import CoderBackend
from bridge.coder.types import Chat
from bridge.db import repo
from bridge.db.engine import Database
from bridge.db.models import ThreadLink
from bridge.relay.links import Follows, Headers, thread_ref
from bridge.relay.outbox import Outbox
from bridge.relay.ports import SlackError, ThreadHistory
from bridge.slack.blocks import render_followed
from bridge.slack.workspaces import acting_enterprise
from bridge.tasks import KeyedLocks

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Place:
    """Where a chat asks to be followed: a channel, and an existing thread there or a new one."""

    team_id: str
    channel_id: str
    thread_ts: str | None = None


@dataclass(frozen=True)
class Adopted:
    """The thread that follows the chat; ``before``: it did already, nothing was posted now."""

    link: ThreadLink
    before: bool = False


@dataclass(frozen=True)
class NotAdopted:
    """Why no thread follows the chat: ``code`` is Slack's error, or ``thread_taken``."""

    code: str

    @property
    def not_member(self) -> bool:
        """The bot is not in the channel (or cannot see it): it may not post there."""
        return self.code in ("not_in_channel", "channel_not_found")


THREAD_TAKEN = "thread_taken"
_LOOK_BACK = timedelta(days=1)
"""How far back a channel's history is searched for a thread root posted before a crash."""
_CLOCK_SKEW = timedelta(minutes=5)
"""Coder's and Slack's clocks may differ: a root is looked for from a little before its chat began."""


def _since(chat: Chat) -> str:
    """The Slack ts from which a root of ``chat``'s thread may have been posted."""
    now, created = datetime.now(UTC), chat.created_at
    if created is not None and created.tzinfo is None:  # Coder writes UTC (RFC 3339)
        created = created.replace(tzinfo=UTC)
    began = created - _CLOCK_SKEW if created is not None else now - _LOOK_BACK
    return f"{max(began, now - _LOOK_BACK).timestamp():.6f}"


class Adoption:
    """Ties chats started elsewhere to Slack threads, each chat to one."""

    def __init__(
        self, db: Database, outbox: Outbox, headers: Headers, follows: Follows, history: ThreadHistory
    ) -> None:
        self._db = db
        self._outbox = outbox
        self._headers = headers
        self._follows = follows
        self._history = history
        self._locks = KeyedLocks()

    async def tied(self, chat: Chat) -> ThreadLink | None:
        """The thread that follows the chat already, if one does (archived or not)."""
        async with self._db.unit() as session:
            return await repo.find_link_by_chat(session, chat.id)

    async def adopt(
        self, chat: Chat, place: Place, *, requester: str, by: str | None, backend: CoderBackend
    ) -> Adopted | NotAdopted:
        """Follow ``chat`` in ``place`` for ``requester`` (who is notified and controls it, as for a
        chat they started). ``by``: who asked, named in a new thread's first message; the thread
        shows what the agent does from then on. None: the chat's labels asked, so it was made to be
        followed in Slack, and the thread shows it from its start. ``backend`` reads the chat.
        Raises ``CoderError`` when Coder can't be asked."""
        async with self._locks.hold(chat.id):
            existing = await self.tied(chat)
            if existing is not None:
                return Adopted(existing, before=True)
            if place.thread_ts is not None:
                try:  # the thread exists, and the bot is in its channel
                    thread = await self._history.thread(place.channel_id, place.thread_ts)
                except SlackError as exc:
                    return NotAdopted(exc.code)
                thread_ts = thread[0].ts if thread else place.thread_ts  # a reply's ts names its root's
            else:
                announcement = render_followed(title=chat.title, url=backend.chat_url(chat.id), by=by)
                try:  # a root posted before a crash (or an answer lost) is found by its tag
                    found = await self._outbox.announced(place.channel_id, chat.id, oldest=_since(chat))
                    thread_ts = found or await self._outbox.announce(
                        place.channel_id, announcement, chat_id=chat.id
                    )
                except SlackError as exc:
                    return NotAdopted(exc.code)
            newest = await backend.recent_messages(chat.id, limit=1) if by is not None else []
            link = await self._link(chat, place, thread_ts, requester, newest[-1].id if newest else None)
            if link is None:
                return NotAdopted(THREAD_TAKEN)
        await self._headers.show(thread_ref(link), chat, archived=False)
        log.info(
            "following chat %s in %s/%s", chat.id, place.channel_id, thread_ts, extra={"chat_id": chat.id}
        )
        if chat.status.phase.busy or by is None:
            self._follows.follow(chat.id)
        return Adopted(link)

    async def _link(
        self, chat: Chat, place: Place, thread_ts: str, requester: str, after_id: int | None
    ) -> ThreadLink | None:
        """Claim the thread and tie it to the chat in one transaction; None when the thread is linked
        already (to another chat, or to one being started from Slack)."""
        try:
            async with self._db.unit() as session:
                link = await repo.claim_thread(
                    session,
                    team_id=place.team_id,
                    channel_id=place.channel_id,
                    thread_ts=thread_ts,
                    requester_user_id=requester,
                    enterprise_id=acting_enterprise(),
                )
                if link is None:
                    return None
                assert link.id is not None
                # Shown from its start: followed (again after a restart) until its stream stores it.
                phase = repo.STARTING_PHASE if after_id is None else chat.status.phase.value
                await repo.attach_chat(
                    session, link.id, chat_id=chat.id, status=chat.status.name, phase=phase
                )
                await repo.save_shown_title(session, chat.id, chat.title)
                if after_id is not None:
                    await repo.save_cursor(session, chat.id, after_id)
        except IntegrityError:  # another replica tied the chat first
            return None
        async with self._db.unit() as session:
            return await repo.find_link(session, link.id)
