"""Table ``slack_message``: the messages the bridge posted in a thread, by slot, with their ``ts``.

Knowing every slot's ``ts`` turns a repeated output into an edit, never a second post; the digest
of the last text sent lets an unchanged replay cost no Slack call.
"""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from bridge.db.models import SlackMessage, utcnow
from bridge.db.repo._sql import insert


async def find_posted_messages(session: AsyncSession, link_id: int) -> dict[str, SlackMessage]:
    """Every message the bridge posted in a thread, by slot."""
    stmt = select(SlackMessage).where(col(SlackMessage.link_id) == link_id)
    return {row.slot: row for row in (await session.execute(stmt)).scalars()}


async def save_slot(session: AsyncSession, *, link_id: int, slot: str, ts: str, digest: str) -> None:
    """Record the ``ts`` and text digest of a slot's message (insert or update, one statement)."""
    stmt = insert(session, SlackMessage).values(
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
