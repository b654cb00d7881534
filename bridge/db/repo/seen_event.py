"""Table ``seen_event``: the Slack events and requests taken in, so a retry or replay is one claim.

An event keeps its payload until it is handled, so one acknowledged just before a crash is handled
after the restart; a slash command or an interaction keeps only its key (Slack never retries those).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from bridge.db.models import SeenEvent, utcnow
from bridge.db.repo._sql import insert_ignore


async def claim_event(session: AsyncSession, event_id: str, payload: str, tag: str | None = None) -> bool:
    """Record a Slack event before it is acknowledged; False when it was seen before (a retry)."""
    return await insert_ignore(
        session,
        SeenEvent,
        {"event_id": event_id, "received_at": utcnow(), "payload": payload, "done": False, "tag": tag},
    )


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
