"""Table ``seen_event``: the Slack events and requests taken in, so a retry or replay is one claim.

An event keeps its payload until it is handled, so one acknowledged just before a crash is handled
after the restart; a slash command or an interaction keeps only its key (Slack never retries those).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from bridge.db.models import SeenEvent, utcnow
from bridge.db.repo._sql import insert_ignore


async def claim_event(
    session: AsyncSession, event_id: str, payload: str, tag: str | None = None, replica: str | None = None
) -> bool:
    """Record a Slack event before it is acknowledged (taken in by ``replica``); False when it was
    seen before (a retry, also one another replica took in)."""
    values = {"event_id": event_id, "received_at": utcnow(), "payload": payload, "done": False, "tag": tag}
    return await insert_ignore(session, SeenEvent, {**values, "replica": replica})


async def claim_request(session: AsyncSession, key: str) -> bool:
    """Record a slash command or an interaction by its key; False when it was seen before (a replay).
    Nothing is kept to replay: Slack never retries these, so one cut short by a stop is not resumed."""
    return await insert_ignore(
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


async def find_unfinished_events(session: AsyncSession) -> list[RecordedEvent]:
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


async def claim_orphaned_events(session: AsyncSession, replica: str, prefix: str) -> list[RecordedEvent]:
    """Take over the events recorded but not handled by replicas whose lease (``prefix<replica>``)
    has expired, or by a bridge from before replicas were told apart; oldest first (PostgreSQL)."""
    result = await session.execute(
        text(
            """
            UPDATE seen_event SET replica = :replica
            WHERE NOT done AND payload IS NOT NULL AND replica IS DISTINCT FROM :replica
              AND NOT EXISTS (
                  SELECT 1 FROM lease WHERE name = :prefix || seen_event.replica AND expires_at >= now()
              )
            RETURNING event_id, payload, tag, received_at
            """
        ),
        {"replica": replica, "prefix": prefix},
    )
    rows = sorted(result.all(), key=lambda row: row.received_at)
    return [RecordedEvent(str(r.event_id), str(r.payload), r.tag) for r in rows]


async def prune_events(session: AsyncSession, before: datetime) -> int:
    """Forget handled events received before ``before`` (Slack retries an event for minutes, not
    days); how many."""
    result = await session.execute(
        delete(SeenEvent).where(col(SeenEvent.done).is_(True), col(SeenEvent.received_at) < before)
    )
    return int(getattr(result, "rowcount", 0) or 0)
