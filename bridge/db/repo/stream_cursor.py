"""Table ``stream_cursor``: per chat, the highest Coder message id whose Slack output is durable.

A chat's stream resumes after it; it is saved in the transaction that stores that output, so a
restart neither skips nor repeats a message.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from bridge.db.models import StreamCursor, utcnow
from bridge.db.repo._sql import insert


async def find_cursor(session: AsyncSession, chat_id: str) -> int | None:
    """The highest message id whose Slack output is durable, if any."""
    row = await session.get(StreamCursor, chat_id)
    return row.after_id if row else None


async def save_cursor(session: AsyncSession, chat_id: str, after_id: int) -> None:
    """Advance (never move back) a chat's cursor, in one statement."""
    stmt = insert(session, StreamCursor).values(chat_id=chat_id, after_id=after_id, updated_at=utcnow())
    newer = stmt.excluded.after_id > col(StreamCursor.after_id)
    await session.execute(
        stmt.on_conflict_do_update(
            index_elements=["chat_id"],
            set_={"after_id": stmt.excluded.after_id, "updated_at": stmt.excluded.updated_at},
            where=newer,
        )
    )
