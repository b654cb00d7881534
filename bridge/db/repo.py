"""Named queries. Each takes the unit of work (``AsyncSession``) so callers decide the transaction.

Claims are ``INSERT … ON CONFLICT DO NOTHING``: the database, not process memory, decides who was
first, which holds across retries, restarts and replicas.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from bridge.db.models import (
    InboundMessage,
    LegacyChat,
    LegacyFollowUp,
    SeenEvent,
    SlackMessage,
    StreamCursor,
    ThreadLink,
    utcnow,
)

STARTING_PHASE = "starting"  # claimed, the chat being created or waiting for a worker
BUSY_PHASES = (STARTING_PHASE, "working")
FAILED_PHASE = "failed"


def _insert(session: AsyncSession, model: type[Any]) -> Any:
    """The dialect's INSERT, which (unlike the generic one) has ON CONFLICT clauses."""
    dialect = session.get_bind().dialect.name
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(model)


async def _insert_ignore(session: AsyncSession, model: type[Any], values: Mapping[str, Any]) -> bool:
    """Insert unless a unique constraint says the row exists; True when this call inserted it."""
    stmt = _insert(session, model).values(**values).on_conflict_do_nothing()
    result = await session.execute(stmt)
    return bool(getattr(result, "rowcount", 0) == 1)


async def record_event(session: AsyncSession, event_id: str, payload: str) -> bool:
    """Record a Slack event before it is acknowledged; False when it was seen before (a retry)."""
    return await _insert_ignore(
        session, SeenEvent, {"event_id": event_id, "received_at": utcnow(), "payload": payload, "done": False}
    )


async def finish_event(session: AsyncSession, event_id: str) -> None:
    """Mark an event handled; its payload is no longer needed."""
    await session.execute(
        update(SeenEvent).where(col(SeenEvent.event_id) == event_id).values(done=True, payload=None)
    )


async def unfinished_events(session: AsyncSession) -> list[str]:
    """Payloads of events recorded but not handled (the process stopped in between), oldest first."""
    stmt = (
        select(col(SeenEvent.payload))
        .where(col(SeenEvent.done).is_(False), col(SeenEvent.payload).is_not(None))
        .order_by(col(SeenEvent.received_at))
    )
    return [str(p) for p in (await session.execute(stmt)).scalars()]


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


async def set_status(session: AsyncSession, chat_id: str, *, status: str, phase: str) -> None:
    """Remember a chat's last known status (drives which chats are followed after a restart)."""
    await session.execute(
        update(ThreadLink)
        .where(col(ThreadLink.chat_id) == chat_id)
        .values(status=status, phase=phase, updated_at=utcnow())
    )


async def set_archived(session: AsyncSession, chat_id: str, archived: bool) -> None:
    """Remember that a chat was archived or unarchived."""
    await session.execute(
        update(ThreadLink)
        .where(col(ThreadLink.chat_id) == chat_id)
        .values(archived=archived, updated_at=utcnow())
    )


async def busy_links(session: AsyncSession) -> Sequence[ThreadLink]:
    """Links whose chat was last seen busy: the chats to follow again after a restart."""
    stmt = select(ThreadLink).where(
        col(ThreadLink.chat_id).is_not(None),
        col(ThreadLink.archived).is_(False),
        col(ThreadLink.phase).in_(BUSY_PHASES),
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
