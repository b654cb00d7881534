"""Table ``legacy_chat`` (model ``AisdkChat``): the chats of Coder's 2025 AI-SDK API, whose chats
carry no labels, so the bridge keeps them, and whether each has started and is replying.

The table keeps the name it was created with (the API generation was once called "legacy").
Labels are JSON; matching them is the caller's job.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from bridge.db.models import AisdkChat, AisdkFollowUp, utcnow
from bridge.db.repo._sql import insert


async def save_aisdk_chat(session: AsyncSession, chat_id: str, **values: Any) -> None:
    """Insert or update a chat's record; a record made here for a chat the bridge did not create
    (no labels known) counts as started."""
    now = utcnow()
    stmt = insert(session, AisdkChat).values(
        chat_id=chat_id,
        **{"labels": "{}", "started": True, "replying": False, **values},
        created_at=now,
        updated_at=now,
    )
    await session.execute(
        stmt.on_conflict_do_update(index_elements=["chat_id"], set_={**values, "updated_at": now})
    )


async def find_aisdk_chat(session: AsyncSession, chat_id: str) -> AisdkChat | None:
    """One chat's record, if the bridge keeps one."""
    return await session.get(AisdkChat, chat_id)


async def find_all_aisdk_chats(session: AsyncSession) -> Sequence[AisdkChat]:
    """Every chat record, oldest first (label matching happens in the caller: labels are JSON)."""
    stmt = select(AisdkChat).order_by(col(AisdkChat.created_at))
    return (await session.execute(stmt)).scalars().all()


async def delete_aisdk_chat(session: AsyncSession, chat_id: str) -> None:
    """Drop a chat's record and the follow-ups held for it."""
    await session.execute(delete(AisdkFollowUp).where(col(AisdkFollowUp.chat_id) == chat_id))
    await session.execute(delete(AisdkChat).where(col(AisdkChat.chat_id) == chat_id))
