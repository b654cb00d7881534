"""Table ``outbox``: the texts a thread's slots must show, kept until Slack shows them.

The durable half of the relay's outbox: one row per (link, slot), the latest text winning. A row is
deleted once Slack shows its text (the delete names the digest it delivered, so a text stored
meanwhile survives it); a row Slack refuses for good is kept as failed, for the operator. The texts
are the relay's (``bridge.relay.output.SlotText``); this module takes anything shaped like one and
hands back rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from bridge.db.models import OutboxEntry, utcnow
from bridge.db.repo._sql import insert

OUTBOX_PENDING = "pending"
OUTBOX_FAILED = "failed"


class TextToStore(Protocol):
    """What storing a slot's text reads of it."""

    @property
    def slot(self) -> str: ...
    @property
    def text(self) -> str: ...
    @property
    def final(self) -> bool: ...
    @property
    def digest(self) -> str: ...
    @property
    def buttons(self) -> str:
        """The buttons under the text, encoded by the relay (the database does not read them)."""
        ...


async def stage_texts(session: AsyncSession, link_id: int, texts: Sequence[TextToStore]) -> None:
    """Store the texts a thread's slots must show (latest wins per slot), in one statement."""
    if not texts:
        return
    now = utcnow()
    stmt = insert(session, OutboxEntry).values(
        [
            {
                "link_id": link_id,
                "slot": t.slot,
                "text": t.text,
                "buttons": t.buttons,
                "final": t.final,
                "digest": t.digest,
                "state": OUTBOX_PENDING,
                "error": "",
                "updated_at": now,
            }
            for t in texts
        ]
    )
    await session.execute(
        stmt.on_conflict_do_update(
            index_elements=["link_id", "slot"],
            set_={
                "text": stmt.excluded.text,
                "buttons": stmt.excluded.buttons,
                "final": stmt.excluded.final,
                "digest": stmt.excluded.digest,
                "state": stmt.excluded.state,
                "error": stmt.excluded.error,
                "updated_at": stmt.excluded.updated_at,
            },
        )
    )


async def find_pending_texts(session: AsyncSession, link_id: int) -> Sequence[OutboxEntry]:
    """The texts of a thread not yet shown in Slack, in the order their slots were first set."""
    stmt = (
        select(OutboxEntry)
        .where(col(OutboxEntry.link_id) == link_id, col(OutboxEntry.state) == OUTBOX_PENDING)
        .order_by(col(OutboxEntry.id))
    )
    return (await session.execute(stmt)).scalars().all()


async def settle_text(session: AsyncSession, *, link_id: int, slot: str, digest: str) -> None:
    """Forget a slot's stored text once Slack shows it; a newer text (other digest) stays."""
    await session.execute(
        delete(OutboxEntry).where(
            col(OutboxEntry.link_id) == link_id,
            col(OutboxEntry.slot) == slot,
            col(OutboxEntry.digest) == digest,
        )
    )


async def fail_texts(session: AsyncSession, link_id: int, error: str) -> None:
    """Mark every pending text of a thread undeliverable (the channel is gone or closed to the bot)."""
    await session.execute(
        update(OutboxEntry)
        .where(col(OutboxEntry.link_id) == link_id, col(OutboxEntry.state) == OUTBOX_PENDING)
        .values(state=OUTBOX_FAILED, error=error[:64], updated_at=utcnow())
    )
