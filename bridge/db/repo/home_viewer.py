"""Table ``home_viewer``: who opened the App Home tab, on any replica, so the one replica that
watches Coder keeps every such tab current (PostgreSQL; one replica on SQLite keeps them in memory).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from bridge.db.models import HomeViewer, utcnow
from bridge.db.repo._sql import insert


async def note_home_viewer(session: AsyncSession, user_id: str) -> None:
    """The person opened their Home tab now."""
    now = utcnow()
    stmt = insert(session, HomeViewer).values(user_id=user_id, opened_at=now)
    await session.execute(stmt.on_conflict_do_update(index_elements=["user_id"], set_={"opened_at": now}))


async def is_home_viewer(session: AsyncSession, user_id: str, since: datetime) -> bool:
    """Whether the person opened their Home tab since ``since``."""
    stmt = select(col(HomeViewer.user_id)).where(
        col(HomeViewer.user_id) == user_id, col(HomeViewer.opened_at) >= since
    )
    return (await session.execute(stmt)).first() is not None
