"""Table ``outbox_reaction``: the reactions the bridge wishes on a thread's messages, kept until
Slack shows them.

Written in the transaction that decides them, so a crash right after cannot leave 👀 on a finished
turn; one row per (link, message, role), the latest wish winning. The wishes are the relay's
(``bridge.relay.output.ReactionWish``): this module takes anything shaped like one and hands back
``StoredWish`` values, the emoji names decoded from their JSON lists.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from bridge.db.models import OutboxReaction, utcnow
from bridge.db.repo._sql import insert


class WishToStore(Protocol):
    """What storing a wish reads of it: the role's ``names`` wanted on message ``ts``, the rest of
    ``among`` (every name the role uses) off."""

    @property
    def ts(self) -> str: ...
    @property
    def role(self) -> str: ...
    @property
    def names(self) -> frozenset[str]: ...
    @property
    def among(self) -> frozenset[str]: ...


@dataclass(frozen=True)
class StoredWish:
    """A row of ``outbox_reaction``, its JSON lists decoded."""

    ts: str
    role: str
    names: frozenset[str]
    among: frozenset[str]


def _names(names: Iterable[str]) -> str:
    return json.dumps(sorted(names))


async def stage_reactions(session: AsyncSession, link_id: int, wishes: Sequence[WishToStore]) -> None:
    """Store wished reactions (latest wins per message and role), in one statement."""
    if not wishes:
        return
    now = utcnow()
    stmt = insert(session, OutboxReaction).values(
        [
            {
                "link_id": link_id,
                "ts": w.ts,
                "role": w.role,
                "names": _names(w.names),
                "among": _names(w.among),
                "updated_at": now,
            }
            for w in wishes
        ]
    )
    await session.execute(
        stmt.on_conflict_do_update(
            index_elements=["link_id", "ts", "role"],
            set_={
                "names": stmt.excluded.names,
                "among": stmt.excluded.among,
                "updated_at": stmt.excluded.updated_at,
            },
        )
    )


async def find_pending_reactions(session: AsyncSession, link_id: int) -> list[StoredWish]:
    """The wished reactions of a thread that Slack was not seen showing."""
    stmt = (
        select(OutboxReaction).where(col(OutboxReaction.link_id) == link_id).order_by(col(OutboxReaction.id))
    )
    return [
        StoredWish(row.ts, row.role, frozenset(json.loads(row.names)), frozenset(json.loads(row.among)))
        for row in (await session.execute(stmt)).scalars()
    ]


async def settle_reaction(
    session: AsyncSession, *, link_id: int, ts: str, role: str, names: frozenset[str]
) -> None:
    """Forget a wished reaction once Slack shows it; a newer wish (other names) stays."""
    await session.execute(
        delete(OutboxReaction).where(
            col(OutboxReaction.link_id) == link_id,
            col(OutboxReaction.ts) == ts,
            col(OutboxReaction.role) == role,
            col(OutboxReaction.names) == _names(names),
        )
    )


async def drop_reactions(session: AsyncSession, link_id: int) -> None:
    """Forget every wished reaction of a thread (its channel takes no more calls from the bot)."""
    await session.execute(delete(OutboxReaction).where(col(OutboxReaction.link_id) == link_id))
