"""Table ``slack_pace``: what the bridge learned of each Slack budget Slack does not publish.

Read and written by every replica of a workspace: the lesson of one (Slack's 429) holds for all.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from bridge.db.models import SlackPace, utcnow
from bridge.db.repo._sql import insert_ignore


@dataclass(frozen=True)
class StoredPace:
    """A method's learned pace, calls a minute, and the pace Slack refused (None: none yet)."""

    per_minute: float
    ceiling: float | None


async def find_paces(session: AsyncSession, *, team_id: str, lock: bool = False) -> dict[str, StoredPace]:
    """The workspace's learned paces by method; ``lock``: held until the transaction ends (PostgreSQL),
    so replicas merging their lessons take turns."""
    stmt = select(SlackPace).where(col(SlackPace.team_id) == team_id)
    if lock:
        stmt = stmt.with_for_update()
    rows = (await session.execute(stmt)).scalars()
    return {row.method: StoredPace(row.per_minute, row.ceiling) for row in rows}


async def save_pace(session: AsyncSession, *, team_id: str, method: str, pace: StoredPace) -> None:
    """Store a method's learned pace for the workspace."""
    values = {"per_minute": pace.per_minute, "ceiling": pace.ceiling, "updated_at": utcnow()}
    if not await insert_ignore(session, SlackPace, {"team_id": team_id, "method": method, **values}):
        await session.execute(
            update(SlackPace)
            .where(col(SlackPace.team_id) == team_id, col(SlackPace.method) == method)
            .values(**values)
        )
