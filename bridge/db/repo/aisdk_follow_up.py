"""Table ``legacy_follow_up`` (model ``AisdkFollowUp``): follow-ups held while an AI-SDK chat's
reply streams, since Coder's 2025 API has no queue; sent in ``id`` order, each row gone once Coder
has its message.

The table keeps the name it was created with, like ``legacy_chat``.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from bridge.db.models import AisdkFollowUp


async def hold_aisdk_follow_up(session: AsyncSession, chat_id: str, content: str) -> AisdkFollowUp:
    """Append a held follow-up; its id (from the database) orders it after those held before."""
    row = AisdkFollowUp(chat_id=chat_id, content=content)
    session.add(row)
    await session.flush()
    return row


async def find_aisdk_follow_ups(session: AsyncSession, chat_id: str) -> Sequence[AisdkFollowUp]:
    """A chat's held follow-ups, oldest first."""
    stmt = select(AisdkFollowUp).where(col(AisdkFollowUp.chat_id) == chat_id).order_by(col(AisdkFollowUp.id))
    return (await session.execute(stmt)).scalars().all()


async def release_aisdk_follow_up(session: AsyncSession, chat_id: str, follow_up_id: int) -> bool:
    """Remove one held follow-up; False if it was not held."""
    result = await session.execute(
        delete(AisdkFollowUp).where(
            col(AisdkFollowUp.chat_id) == chat_id, col(AisdkFollowUp.id) == follow_up_id
        )
    )
    return bool(getattr(result, "rowcount", 0))
