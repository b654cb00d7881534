"""Table ``replica``: the bridge processes sharing the database, and their heartbeats.

Counted in the database because the count is what each replica's share of Slack's per-workspace
budgets is made of: no replica can know of the others otherwise.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from bridge.db.models import Replica
from bridge.db.repo._sql import insert_ignore


async def beat_replica(session: AsyncSession, *, replica_id: str, team_id: str, at: datetime) -> None:
    """The replica is alive at ``at`` (its row made at its first beat)."""
    if not await insert_ignore(
        session, Replica, {"replica_id": replica_id, "team_id": team_id, "heartbeat_at": at}
    ):
        await session.execute(
            update(Replica).where(col(Replica.replica_id) == replica_id).values(heartbeat_at=at)
        )


async def count_live_replicas(session: AsyncSession, *, team_id: str, since: datetime) -> int:
    """Replicas of the workspace whose last heartbeat is ``since`` or later."""
    stmt = select(func.count()).where(col(Replica.team_id) == team_id, col(Replica.heartbeat_at) >= since)
    return int((await session.execute(stmt)).scalar_one())


async def remove_replica(session: AsyncSession, *, replica_id: str, stale_before: datetime) -> None:
    """The replica stops: its row goes, and so do rows of replicas silent since ``stale_before``."""
    await session.execute(
        delete(Replica).where(
            (col(Replica.replica_id) == replica_id) | (col(Replica.heartbeat_at) < stale_before)
        )
    )
