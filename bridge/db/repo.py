"""Named queries. Each takes the unit of work (``AsyncSession``) so callers decide the transaction.

Claims are ``INSERT … ON CONFLICT DO NOTHING``: the database, not process memory, decides who was
first, which holds across retries, restarts and replicas.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from bridge.db.models import (
    InboundMessage,
    LegacyChat,
    LegacyFollowUp,
    LinkAttempt,
    OutboxEntry,
    OutboxReaction,
    SeenEvent,
    SlackMessage,
    StreamCursor,
    ThreadLink,
    UserLink,
    utcnow,
)

STARTING_PHASE = "starting"  # claimed, the chat being created or waiting for a worker
BUSY_PHASES = (STARTING_PHASE, "working")
WAITING_PHASE = "needs_user"  # the agent waits for its person mid-turn (the chat is followed on)
FOLLOWED_PHASES = (*BUSY_PHASES, WAITING_PHASE)
FAILED_PHASE = "failed"
OUTBOX_PENDING = "pending"
OUTBOX_FAILED = "failed"


def _insert(session: AsyncSession, model: type[Any]) -> Any:
    """The dialect's INSERT, which (unlike the generic one) has ON CONFLICT clauses."""
    dialect = session.get_bind().dialect.name
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(model)


async def _insert_ignore(session: AsyncSession, model: type[Any], values: Mapping[str, Any]) -> bool:
    """Insert unless a unique constraint says the row exists; True when this call inserted it."""
    stmt = _insert(session, model).values(**values).on_conflict_do_nothing()
    result = await session.execute(stmt)
    return bool(getattr(result, "rowcount", 0) == 1)


async def record_event(session: AsyncSession, event_id: str, payload: str, tag: str | None = None) -> bool:
    """Record a Slack event before it is acknowledged; False when it was seen before (a retry)."""
    return await _insert_ignore(
        session,
        SeenEvent,
        {"event_id": event_id, "received_at": utcnow(), "payload": payload, "done": False, "tag": tag},
    )


async def record_request(session: AsyncSession, key: str) -> bool:
    """Record a slash command or an interaction by its key; False when it was seen before (a replay).
    Nothing is kept to replay: Slack never retries these, so one cut short by a stop is not resumed."""
    return await _insert_ignore(
        session, SeenEvent, {"event_id": key, "received_at": utcnow(), "payload": None, "done": True}
    )


async def finish_event(session: AsyncSession, event_id: str) -> None:
    """Mark an event handled; its payload is no longer needed."""
    await session.execute(
        update(SeenEvent).where(col(SeenEvent.event_id) == event_id).values(done=True, payload=None)
    )


@dataclass(frozen=True)
class RecordedEvent:
    """An event recorded but not handled, as stored: its payload and integrity tag."""

    event_id: str
    payload: str
    tag: str | None


async def unfinished_events(session: AsyncSession) -> list[RecordedEvent]:
    """Events recorded but not handled (the process stopped in between), oldest first."""
    stmt = (
        select(col(SeenEvent.event_id), col(SeenEvent.payload), col(SeenEvent.tag))
        .where(col(SeenEvent.done).is_(False), col(SeenEvent.payload).is_not(None))
        .order_by(col(SeenEvent.received_at))
    )
    return [RecordedEvent(str(i), str(p), t) for i, p, t in (await session.execute(stmt)).all()]


async def tag_event(session: AsyncSession, event_id: str, tag: str) -> None:
    """Give a recorded event the integrity tag it was stored without."""
    await session.execute(update(SeenEvent).where(col(SeenEvent.event_id) == event_id).values(tag=tag))


async def claim_thread(
    session: AsyncSession, *, team_id: str, channel_id: str, thread_ts: str, requester_user_id: str
) -> ThreadLink | None:
    """Claim a thread for a new chat; None when the thread is already linked (or being linked)."""
    now = utcnow()
    inserted = await _insert_ignore(
        session,
        ThreadLink,
        {
            "team_id": team_id,
            "channel_id": channel_id,
            "thread_ts": thread_ts,
            "requester_user_id": requester_user_id,
            "status": "",
            "phase": STARTING_PHASE,
            "archived": False,
            "created_at": now,
            "updated_at": now,
        },
    )
    if not inserted:
        return None
    return await find_link_by_thread(session, team_id=team_id, channel_id=channel_id, thread_ts=thread_ts)


async def reclaim_thread(session: AsyncSession, link_id: int, *, requester_user_id: str) -> ThreadLink | None:
    """Claim a thread whose chat failed to start for another attempt, whose author becomes its
    requester; None when another attempt claimed it first."""
    result = await session.execute(
        update(ThreadLink)
        .where(
            col(ThreadLink.id) == link_id,
            col(ThreadLink.chat_id).is_(None),
            col(ThreadLink.phase) == FAILED_PHASE,
        )
        .values(requester_user_id=requester_user_id, phase=STARTING_PHASE, updated_at=utcnow())
    )
    if getattr(result, "rowcount", 0) != 1:
        return None
    return await session.get(ThreadLink, link_id, populate_existing=True)


async def find_link_by_thread(
    session: AsyncSession, *, team_id: str, channel_id: str, thread_ts: str
) -> ThreadLink | None:
    """The link of a Slack thread, if any."""
    stmt = select(ThreadLink).where(
        col(ThreadLink.team_id) == team_id,
        col(ThreadLink.channel_id) == channel_id,
        col(ThreadLink.thread_ts) == thread_ts,
    )
    return (await session.execute(stmt)).scalar_one_or_none()


async def find_link_by_chat(session: AsyncSession, chat_id: str) -> ThreadLink | None:
    """The link of a Coder chat, if any."""
    stmt = select(ThreadLink).where(col(ThreadLink.chat_id) == chat_id)
    return (await session.execute(stmt)).scalar_one_or_none()


_IN_CHUNK = 500  # ids per IN (…) list, well below SQLite's and PostgreSQL's bound-parameter limits


async def links_by_chat(session: AsyncSession, chat_ids: Sequence[str]) -> dict[str, ThreadLink]:
    """The links of those of ``chat_ids`` that have one, by chat id (archived ones left out)."""
    found: dict[str, ThreadLink] = {}
    for start in range(0, len(chat_ids), _IN_CHUNK):
        stmt = select(ThreadLink).where(
            col(ThreadLink.chat_id).in_(chat_ids[start : start + _IN_CHUNK]),
            col(ThreadLink.archived).is_(False),
        )
        for link in (await session.execute(stmt)).scalars():
            assert link.chat_id is not None
            found[link.chat_id] = link
    return found


async def links_of_requester(session: AsyncSession, user_id: str, *, limit: int) -> Sequence[ThreadLink]:
    """The chats a person started (those with a chat), open ones first, each group newest first."""
    stmt = (
        select(ThreadLink)
        .where(col(ThreadLink.requester_user_id) == user_id, col(ThreadLink.chat_id).is_not(None))
        .order_by(col(ThreadLink.archived), col(ThreadLink.created_at).desc(), col(ThreadLink.id).desc())
        .limit(limit)
    )
    return (await session.execute(stmt)).scalars().all()


async def get_link(session: AsyncSession, link_id: int) -> ThreadLink | None:
    """A link by primary key."""
    return await session.get(ThreadLink, link_id)


async def attach_chat(session: AsyncSession, link_id: int, *, chat_id: str, status: str, phase: str) -> None:
    """Complete a claim with the chat Coder created for it."""
    await session.execute(
        update(ThreadLink)
        .where(col(ThreadLink.id) == link_id)
        .values(chat_id=chat_id, status=status, phase=phase, updated_at=utcnow())
    )


async def mark_failed(session: AsyncSession, link_id: int) -> None:
    """A claim whose chat could not be created: kept (its Slack replies stay linked), open to a retry."""
    await session.execute(
        update(ThreadLink)
        .where(col(ThreadLink.id) == link_id)
        .values(phase=FAILED_PHASE, updated_at=utcnow())
    )


async def set_status(
    session: AsyncSession, chat_id: str, *, status: str, phase: str, sends_seen: int | None = None
) -> None:
    """Remember a chat's last known status (drives which chats are followed after a restart). With
    ``sends_seen`` only while no other send began: a newer send's turn keeps the chat followed."""
    stmt = update(ThreadLink).where(col(ThreadLink.chat_id) == chat_id)
    if sends_seen is not None:
        stmt = stmt.where(col(ThreadLink.sends_begun) == sends_seen)
    await session.execute(stmt.values(status=status, phase=phase, updated_at=utcnow()))


async def mark_busy(session: AsyncSession, link_id: int) -> None:
    """A message is being sent to the link's chat: follow it again after a restart, even if the bridge
    stops before the chat's stream has shown it busy (the stream then records the real status)."""
    await session.execute(
        update(ThreadLink)
        .where(col(ThreadLink.id) == link_id)
        .values(phase=STARTING_PHASE, sends_begun=col(ThreadLink.sends_begun) + 1, updated_at=utcnow())
    )


async def save_shown_title(session: AsyncSession, chat_id: str, title: str) -> None:
    """Remember the chat title the thread's header was given."""
    await session.execute(
        update(ThreadLink).where(col(ThreadLink.chat_id) == chat_id).values(shown_title=title)
    )


async def choose_title(session: AsyncSession, link_id: int, title: str) -> None:
    """Remember the title a person chose for a thread where Coder keeps its own ("" forgets it)."""
    await session.execute(update(ThreadLink).where(col(ThreadLink.id) == link_id).values(chosen_title=title))


async def save_shown_diff(session: AsyncSession, chat_id: str, digest: str) -> None:
    """Remember (a digest of) the diff status the thread's PR summary was rendered from."""
    await session.execute(
        update(ThreadLink).where(col(ThreadLink.chat_id) == chat_id).values(shown_diff=digest)
    )


async def set_archived(session: AsyncSession, chat_id: str, archived: bool) -> None:
    """Remember that a chat was archived or unarchived."""
    await session.execute(
        update(ThreadLink)
        .where(col(ThreadLink.chat_id) == chat_id)
        .values(archived=archived, updated_at=utcnow())
    )


async def busy_links(session: AsyncSession) -> Sequence[ThreadLink]:
    """Links whose chat was last seen busy, or waiting for its person in the middle of a turn: the
    chats to follow again after a restart."""
    stmt = select(ThreadLink).where(
        col(ThreadLink.chat_id).is_not(None),
        col(ThreadLink.archived).is_(False),
        col(ThreadLink.phase).in_(FOLLOWED_PHASES),
    )
    return (await session.execute(stmt)).scalars().all()


async def claim_inbound(
    session: AsyncSession, *, link_id: int, channel_id: str, ts: str, user_id: str
) -> bool:
    """Claim a person's Slack message for relaying; False when it was already relayed."""
    return await _insert_ignore(
        session,
        InboundMessage,
        {"link_id": link_id, "channel_id": channel_id, "ts": ts, "user_id": user_id, "created_at": utcnow()},
    )


async def record_inbound(
    session: AsyncSession,
    *,
    channel_id: str,
    ts: str,
    coder_message_id: int | None,
    queued_message_id: int | None,
) -> None:
    """Remember what Coder made of a relayed Slack message (needed for edits and deletions)."""
    await session.execute(
        update(InboundMessage)
        .where(col(InboundMessage.channel_id) == channel_id, col(InboundMessage.ts) == ts)
        .values(coder_message_id=coder_message_id, queued_message_id=queued_message_id)
    )


async def replace_queued(
    session: AsyncSession,
    *,
    link_id: int,
    old_queued_id: int,
    coder_message_id: int | None,
    queued_message_id: int | None,
) -> None:
    """A queued follow-up was sent again (edited or to keep its place): point its row at the new entry."""
    await session.execute(
        update(InboundMessage)
        .where(col(InboundMessage.link_id) == link_id, col(InboundMessage.queued_message_id) == old_queued_id)
        .values(coder_message_id=coder_message_id, queued_message_id=queued_message_id)
    )


async def forget_after(session: AsyncSession, *, link_id: int, coder_message_id: int) -> None:
    """Coder dropped every message after ``coder_message_id`` and the whole queue (an edit)."""
    await session.execute(
        update(InboundMessage)
        .where(
            col(InboundMessage.link_id) == link_id,
            (col(InboundMessage.coder_message_id) > coder_message_id)
            | col(InboundMessage.queued_message_id).is_not(None),
        )
        .values(coder_message_id=None, queued_message_id=None)
    )


async def turn_message(session: AsyncSession, *, link_id: int, coder_message_id: int) -> str | None:
    """The ts of the Slack message that became Coder message ``coder_message_id``, if one did.

    The message that started the chat is claimed before Coder gives it an id: while no message of
    the link has one, the first user message seen is bound to the oldest claim still unbound. That
    claim is the starting message (claimed first); a newer one may be a follow-up claimed just
    before a crash that never reached Coder, and binding it would make its replay look delivered.
    """
    rows = select(InboundMessage).where(col(InboundMessage.link_id) == link_id)
    found = await session.execute(rows.where(col(InboundMessage.coder_message_id) == coder_message_id))
    row = found.scalars().first()
    if row is not None:
        return row.ts
    bound = await session.execute(rows.where(col(InboundMessage.coder_message_id).is_not(None)).limit(1))
    if bound.scalars().first() is not None:
        return None
    unbound = rows.where(col(InboundMessage.queued_message_id).is_(None))
    start = (await session.execute(unbound.order_by(col(InboundMessage.id)).limit(1))).scalars().first()
    if start is None:
        return None
    start.coder_message_id = coder_message_id
    return start.ts


async def queued_inbound(session: AsyncSession, link_id: int) -> dict[int, str]:
    """The link's follow-ups last known to wait in Coder's queue: queued message id -> Slack ts."""
    stmt = select(InboundMessage).where(
        col(InboundMessage.link_id) == link_id, col(InboundMessage.queued_message_id).is_not(None)
    )
    return {
        row.queued_message_id: row.ts
        for row in (await session.execute(stmt)).scalars()
        if row.queued_message_id is not None
    }


async def unqueue(
    session: AsyncSession, *, link_id: int, queued_message_id: int, coder_message_id: int | None
) -> None:
    """A follow-up left Coder's queue: taken as message ``coder_message_id``, or removed (None)."""
    await session.execute(
        update(InboundMessage)
        .where(
            col(InboundMessage.link_id) == link_id, col(InboundMessage.queued_message_id) == queued_message_id
        )
        .values(coder_message_id=coder_message_id, queued_message_id=None)
    )


async def release_inbound(session: AsyncSession, *, channel_id: str, ts: str) -> None:
    """Forget a claim whose relay failed, so a retry by Slack or by the user can relay it."""
    await session.execute(
        delete(InboundMessage).where(
            col(InboundMessage.channel_id) == channel_id, col(InboundMessage.ts) == ts
        )
    )


async def get_cursor(session: AsyncSession, chat_id: str) -> int | None:
    """The highest message id whose Slack output is durable, if any."""
    row = await session.get(StreamCursor, chat_id)
    return row.after_id if row else None


async def save_cursor(session: AsyncSession, chat_id: str, after_id: int) -> None:
    """Advance (never move back) a chat's cursor, in one statement."""
    stmt = _insert(session, StreamCursor).values(chat_id=chat_id, after_id=after_id, updated_at=utcnow())
    newer = stmt.excluded.after_id > col(StreamCursor.after_id)
    await session.execute(
        stmt.on_conflict_do_update(
            index_elements=["chat_id"],
            set_={"after_id": stmt.excluded.after_id, "updated_at": stmt.excluded.updated_at},
            where=newer,
        )
    )


async def slots(session: AsyncSession, link_id: int) -> dict[str, SlackMessage]:
    """Every message the bridge posted in a thread, by slot."""
    stmt = select(SlackMessage).where(col(SlackMessage.link_id) == link_id)
    return {row.slot: row for row in (await session.execute(stmt)).scalars()}


async def save_slot(session: AsyncSession, *, link_id: int, slot: str, ts: str, digest: str) -> None:
    """Record the ``ts`` and text digest of a slot's message (insert or update, one statement)."""
    stmt = _insert(session, SlackMessage).values(
        link_id=link_id, slot=slot, ts=ts, digest=digest, updated_at=utcnow()
    )
    await session.execute(
        stmt.on_conflict_do_update(
            index_elements=["link_id", "slot"],
            set_={
                "ts": stmt.excluded.ts,
                "digest": stmt.excluded.digest,
                "updated_at": stmt.excluded.updated_at,
            },
        )
    )


async def rename_slot(session: AsyncSession, *, link_id: int, old: str, new: str) -> bool:
    """Re-key a slot (a streamed draft becoming the persisted message); False if ``old`` is absent."""
    result = await session.execute(
        update(SlackMessage)
        .where(col(SlackMessage.link_id) == link_id, col(SlackMessage.slot) == old)
        .values(slot=new, updated_at=utcnow())
    )
    return bool(getattr(result, "rowcount", 0))


async def find_link_by_message(session: AsyncSession, *, channel_id: str, ts: str) -> ThreadLink | None:
    """The link a Slack message belongs to: a thread's first message, or a message the bot posted."""
    stmt = select(ThreadLink).where(col(ThreadLink.channel_id) == channel_id, col(ThreadLink.thread_ts) == ts)
    link = (await session.execute(stmt)).scalars().first()
    if link is not None:
        return link
    posted = (
        select(ThreadLink)
        .join(SlackMessage, col(SlackMessage.link_id) == col(ThreadLink.id))
        .where(col(ThreadLink.channel_id) == channel_id, col(SlackMessage.ts) == ts)
    )
    return (await session.execute(posted)).scalars().first()


async def find_inbound(session: AsyncSession, *, channel_id: str, ts: str) -> InboundMessage | None:
    """A person's message the bridge relayed, with what Coder made of it."""
    stmt = select(InboundMessage).where(
        col(InboundMessage.channel_id) == channel_id, col(InboundMessage.ts) == ts
    )
    return (await session.execute(stmt)).scalar_one_or_none()


async def save_user_link(
    session: AsyncSession,
    *,
    team_id: str,
    slack_user_id: str,
    coder_user_id: str,
    coder_username: str,
    token_ciphertext: str,
) -> None:
    """Link (or re-link) a Slack user to a Coder account; a re-link replaces the token and heals it."""
    now = utcnow()
    stmt = _insert(session, UserLink).values(
        team_id=team_id,
        slack_user_id=slack_user_id,
        coder_user_id=coder_user_id,
        coder_username=coder_username,
        token_ciphertext=token_ciphertext,
        broken=False,
        created_at=now,
        updated_at=now,
    )
    await session.execute(
        stmt.on_conflict_do_update(
            index_elements=["team_id", "slack_user_id"],
            set_={
                "coder_user_id": stmt.excluded.coder_user_id,
                "coder_username": stmt.excluded.coder_username,
                "token_ciphertext": stmt.excluded.token_ciphertext,
                "broken": False,
                "updated_at": stmt.excluded.updated_at,
            },
        )
    )


async def find_user_link(session: AsyncSession, *, team_id: str, slack_user_id: str) -> UserLink | None:
    """A Slack user's Coder link, if they made one."""
    stmt = select(UserLink).where(
        col(UserLink.team_id) == team_id, col(UserLink.slack_user_id) == slack_user_id
    )
    return (await session.execute(stmt)).scalar_one_or_none()


async def user_links(session: AsyncSession) -> Sequence[UserLink]:
    """Every stored Coder link (re-encrypting them all when keys rotate)."""
    return (await session.execute(select(UserLink).order_by(col(UserLink.id)))).scalars().all()


async def replace_user_token(
    session: AsyncSession, *, team_id: str, slack_user_id: str, old: str, new: str
) -> bool:
    """Store ``new`` in place of the ciphertext ``old``; False when the row no longer holds ``old``
    (a re-link or unlink happened meanwhile, and its token wins)."""
    result = await session.execute(
        update(UserLink)
        .where(
            col(UserLink.team_id) == team_id,
            col(UserLink.slack_user_id) == slack_user_id,
            col(UserLink.token_ciphertext) == old,
        )
        .values(token_ciphertext=new)
    )
    return bool(getattr(result, "rowcount", 0))


async def delete_user_link(session: AsyncSession, *, team_id: str, slack_user_id: str) -> bool:
    """Forget a Slack user's Coder link (and its token); False when there was none."""
    result = await session.execute(
        delete(UserLink).where(col(UserLink.team_id) == team_id, col(UserLink.slack_user_id) == slack_user_id)
    )
    return bool(getattr(result, "rowcount", 0))


async def link_attempts_since(
    session: AsyncSession, *, team_id: str, slack_user_id: str, since: datetime
) -> list[datetime]:
    """When the person's recent ``/coder link`` token checks were, oldest first; anyone's older ones
    are forgotten."""
    await session.execute(delete(LinkAttempt).where(col(LinkAttempt.attempted_at) < since))
    stmt = (
        select(col(LinkAttempt.attempted_at))
        .where(col(LinkAttempt.team_id) == team_id, col(LinkAttempt.slack_user_id) == slack_user_id)
        .order_by(col(LinkAttempt.attempted_at))
    )
    # SQLite hands timestamps back without their zone; every stored one is UTC.
    return [t if t.tzinfo else t.replace(tzinfo=UTC) for t in (await session.execute(stmt)).scalars()]


async def add_link_attempt(session: AsyncSession, *, team_id: str, slack_user_id: str, at: datetime) -> None:
    """Count a token check of the person's."""
    session.add(LinkAttempt(team_id=team_id, slack_user_id=slack_user_id, attempted_at=at))


async def mark_user_link_broken(session: AsyncSession, *, team_id: str, slack_user_id: str) -> bool:
    """Coder refused the user's token: keep the row (it says who they were) until they link again.

    True only for the call that broke it, so the person is told once.
    """
    result = await session.execute(
        update(UserLink)
        .where(
            col(UserLink.team_id) == team_id,
            col(UserLink.slack_user_id) == slack_user_id,
            col(UserLink.broken).is_(False),
        )
        .values(broken=True, updated_at=utcnow())
    )
    return bool(getattr(result, "rowcount", 0))


@dataclass(frozen=True)
class SlotText:
    """A text a slot must show, as the outbox stores it."""

    slot: str
    text: str
    final: bool
    digest: str
    buttons: str = ""
    """The buttons under the text, encoded by the outbox (the database does not read them)."""


async def stage_texts(session: AsyncSession, link_id: int, texts: Sequence[SlotText]) -> None:
    """Store the texts a thread's slots must show (latest wins per slot), in one statement."""
    if not texts:
        return
    now = utcnow()
    stmt = _insert(session, OutboxEntry).values(
        [
            {
                "link_id": link_id,
                "slot": t.slot,
                "text": t.text,
                "buttons": t.buttons,
                "final": t.final,
                "digest": t.digest,
                "state": OUTBOX_PENDING,
                "error": "",
                "updated_at": now,
            }
            for t in texts
        ]
    )
    await session.execute(
        stmt.on_conflict_do_update(
            index_elements=["link_id", "slot"],
            set_={
                "text": stmt.excluded.text,
                "buttons": stmt.excluded.buttons,
                "final": stmt.excluded.final,
                "digest": stmt.excluded.digest,
                "state": stmt.excluded.state,
                "error": stmt.excluded.error,
                "updated_at": stmt.excluded.updated_at,
            },
        )
    )


async def pending_texts(session: AsyncSession, link_id: int) -> list[SlotText]:
    """The texts of a thread not yet shown in Slack, in the order their slots were first set."""
    stmt = (
        select(OutboxEntry)
        .where(col(OutboxEntry.link_id) == link_id, col(OutboxEntry.state) == OUTBOX_PENDING)
        .order_by(col(OutboxEntry.id))
    )
    return [
        SlotText(row.slot, row.text, row.final, row.digest, row.buttons)
        for row in (await session.execute(stmt)).scalars()
    ]


async def links_with_pending_output(session: AsyncSession) -> Sequence[ThreadLink]:
    """Threads with texts or reactions not yet shown in Slack (the outbox resumes them at start)."""
    texts = select(col(OutboxEntry.link_id)).where(col(OutboxEntry.state) == OUTBOX_PENDING)
    reactions = select(col(OutboxReaction.link_id))
    stmt = select(ThreadLink).where(col(ThreadLink.id).in_(texts) | col(ThreadLink.id).in_(reactions))
    return (await session.execute(stmt)).scalars().all()


async def settle_text(session: AsyncSession, *, link_id: int, slot: str, digest: str) -> None:
    """Forget a slot's stored text once Slack shows it; a newer text (other digest) stays."""
    await session.execute(
        delete(OutboxEntry).where(
            col(OutboxEntry.link_id) == link_id,
            col(OutboxEntry.slot) == slot,
            col(OutboxEntry.digest) == digest,
        )
    )


async def fail_texts(session: AsyncSession, link_id: int, error: str) -> None:
    """Mark every pending text of a thread undeliverable (the channel is gone or closed to the bot)."""
    await session.execute(
        update(OutboxEntry)
        .where(col(OutboxEntry.link_id) == link_id, col(OutboxEntry.state) == OUTBOX_PENDING)
        .values(state=OUTBOX_FAILED, error=error[:64], updated_at=utcnow())
    )


@dataclass(frozen=True)
class Reaction:
    """The bridge's reactions of one kind (``role``) wished on message ``ts``: ``names`` on it, the
    rest of ``among`` (every name the role uses) off."""

    ts: str
    role: str
    names: frozenset[str]
    among: frozenset[str]


def _names(names: Iterable[str]) -> str:
    return json.dumps(sorted(names))


async def stage_reactions(session: AsyncSession, link_id: int, reactions: Sequence[Reaction]) -> None:
    """Store wished reactions (latest wins per message and role), in one statement."""
    if not reactions:
        return
    now = utcnow()
    stmt = _insert(session, OutboxReaction).values(
        [
            {
                "link_id": link_id,
                "ts": r.ts,
                "role": r.role,
                "names": _names(r.names),
                "among": _names(r.among),
                "updated_at": now,
            }
            for r in reactions
        ]
    )
    await session.execute(
        stmt.on_conflict_do_update(
            index_elements=["link_id", "ts", "role"],
            set_={
                "names": stmt.excluded.names,
                "among": stmt.excluded.among,
                "updated_at": stmt.excluded.updated_at,
            },
        )
    )


async def pending_reactions(session: AsyncSession, link_id: int) -> list[Reaction]:
    """The wished reactions of a thread that Slack was not seen showing."""
    stmt = (
        select(OutboxReaction).where(col(OutboxReaction.link_id) == link_id).order_by(col(OutboxReaction.id))
    )
    return [
        Reaction(row.ts, row.role, frozenset(json.loads(row.names)), frozenset(json.loads(row.among)))
        for row in (await session.execute(stmt)).scalars()
    ]


async def settle_reaction(
    session: AsyncSession, *, link_id: int, ts: str, role: str, names: frozenset[str]
) -> None:
    """Forget a wished reaction once Slack shows it; a newer wish (other names) stays."""
    await session.execute(
        delete(OutboxReaction).where(
            col(OutboxReaction.link_id) == link_id,
            col(OutboxReaction.ts) == ts,
            col(OutboxReaction.role) == role,
            col(OutboxReaction.names) == _names(names),
        )
    )


async def drop_reactions(session: AsyncSession, link_id: int) -> None:
    """Forget every wished reaction of a thread (its channel takes no more calls from the bot)."""
    await session.execute(delete(OutboxReaction).where(col(OutboxReaction.link_id) == link_id))


# Coder's 2025 AI-SDK chat API: what it cannot store, kept by the bridge --------------------------


async def save_legacy_chat(session: AsyncSession, chat_id: str, **values: Any) -> None:
    """Insert or update a chat's record; a record made here for a chat the bridge did not create
    (no labels known) counts as started."""
    now = utcnow()
    stmt = _insert(session, LegacyChat).values(
        chat_id=chat_id,
        **{"labels": "{}", "started": True, "replying": False, **values},
        created_at=now,
        updated_at=now,
    )
    await session.execute(
        stmt.on_conflict_do_update(index_elements=["chat_id"], set_={**values, "updated_at": now})
    )


async def get_legacy_chat(session: AsyncSession, chat_id: str) -> LegacyChat | None:
    """One chat's record."""
    return await session.get(LegacyChat, chat_id)


async def legacy_chats(session: AsyncSession) -> Sequence[LegacyChat]:
    """Every chat record, oldest first (label matching happens in the caller: labels are JSON)."""
    stmt = select(LegacyChat).order_by(col(LegacyChat.created_at))
    return (await session.execute(stmt)).scalars().all()


async def delete_legacy_chat(session: AsyncSession, chat_id: str) -> None:
    """Drop a chat's record and the follow-ups held for it."""
    await session.execute(delete(LegacyFollowUp).where(col(LegacyFollowUp.chat_id) == chat_id))
    await session.execute(delete(LegacyChat).where(col(LegacyChat.chat_id) == chat_id))


async def hold_follow_up(session: AsyncSession, chat_id: str, content: str) -> LegacyFollowUp:
    """Append a held follow-up; its id (from the database) orders it after those held before."""
    row = LegacyFollowUp(chat_id=chat_id, content=content)
    session.add(row)
    await session.flush()
    return row


async def held_follow_ups(session: AsyncSession, chat_id: str) -> Sequence[LegacyFollowUp]:
    """A chat's held follow-ups, oldest first."""
    stmt = (
        select(LegacyFollowUp).where(col(LegacyFollowUp.chat_id) == chat_id).order_by(col(LegacyFollowUp.id))
    )
    return (await session.execute(stmt)).scalars().all()


async def release_follow_up(session: AsyncSession, chat_id: str, follow_up_id: int) -> bool:
    """Remove one held follow-up; False if it was not held."""
    result = await session.execute(
        delete(LegacyFollowUp).where(
            col(LegacyFollowUp.chat_id) == chat_id, col(LegacyFollowUp.id) == follow_up_id
        )
    )
    return bool(getattr(result, "rowcount", 0))
