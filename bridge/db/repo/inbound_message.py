"""Table ``inbound_message``: a person's Slack messages relayed to a chat, and what Coder made of each.

One claim per message (Slack delivers a mention twice and retries either), and the Coder message
or queue entry it became: what an edit or a deletion in Slack must change, and which message a
turn's reactions go on.
"""

from __future__ import annotations

import hashlib

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from bridge.db.models import InboundMessage, utcnow
from bridge.db.repo._sql import insert_ignore


async def claim_inbound(
    session: AsyncSession, *, link_id: int, channel_id: str, ts: str, user_id: str
) -> bool:
    """Claim a person's Slack message for relaying; False when it was already relayed."""
    return await insert_ignore(
        session,
        InboundMessage,
        {"link_id": link_id, "channel_id": channel_id, "ts": ts, "user_id": user_id, "created_at": utcnow()},
    )


async def release_inbound(session: AsyncSession, *, channel_id: str, ts: str) -> None:
    """Forget a claim whose relay failed, so a retry by Slack or by the user can relay it."""
    await session.execute(
        delete(InboundMessage).where(
            col(InboundMessage.channel_id) == channel_id, col(InboundMessage.ts) == ts
        )
    )


def _text_digest(text: str) -> str:
    """What a row keeps of a queue entry's text while the entry waits: enough to recognise it."""
    return hashlib.sha256(text.encode()).hexdigest()


async def record_inbound(
    session: AsyncSession,
    *,
    channel_id: str,
    ts: str,
    coder_message_id: int | None,
    queued_message_id: int | None,
    queued_text: str = "",
) -> None:
    """Remember what Coder made of a relayed Slack message (needed for edits and deletions);
    ``queued_text``: the text of the queue entry it became, when Coder queued it."""
    await session.execute(
        update(InboundMessage)
        .where(col(InboundMessage.channel_id) == channel_id, col(InboundMessage.ts) == ts)
        .values(
            coder_message_id=coder_message_id,
            queued_message_id=queued_message_id,
            queued_digest=_text_digest(queued_text) if queued_message_id is not None else None,
        )
    )


async def find_inbound(session: AsyncSession, *, channel_id: str, ts: str) -> InboundMessage | None:
    """A person's message the bridge relayed, with what Coder made of it."""
    stmt = select(InboundMessage).where(
        col(InboundMessage.channel_id) == channel_id, col(InboundMessage.ts) == ts
    )
    return (await session.execute(stmt)).scalar_one_or_none()


async def replace_queued(
    session: AsyncSession,
    *,
    link_id: int,
    old_queued_id: int,
    coder_message_id: int | None,
    queued_message_id: int | None,
    queued_text: str = "",
) -> None:
    """A queued follow-up was sent again (edited or to keep its place): point its row at the new entry."""
    await session.execute(
        update(InboundMessage)
        .where(col(InboundMessage.link_id) == link_id, col(InboundMessage.queued_message_id) == old_queued_id)
        .values(
            coder_message_id=coder_message_id,
            queued_message_id=queued_message_id,
            queued_digest=_text_digest(queued_text) if queued_message_id is not None else None,
        )
    )


async def forget_after(session: AsyncSession, *, link_id: int, coder_message_id: int) -> None:
    """Coder dropped every message after ``coder_message_id`` and the whole queue (an edit)."""
    await session.execute(
        update(InboundMessage)
        .where(
            col(InboundMessage.link_id) == link_id,
            (col(InboundMessage.coder_message_id) > coder_message_id)
            | col(InboundMessage.queued_message_id).is_not(None),
        )
        .values(coder_message_id=None, queued_message_id=None, queued_digest=None)
    )


async def find_turn_message(session: AsyncSession, *, link_id: int, coder_message_id: int) -> str | None:
    """The ts of the Slack message that became Coder message ``coder_message_id``, if one did.

    The message that started the chat is claimed before Coder gives it an id: while no message of
    the link has one, the first user message seen is bound to the oldest claim still unbound. That
    claim is the starting message (claimed first); a newer one may be a follow-up claimed just
    before a crash that never reached Coder, and binding it would make its replay look delivered.
    """
    rows = select(InboundMessage).where(col(InboundMessage.link_id) == link_id)
    found = await session.execute(rows.where(col(InboundMessage.coder_message_id) == coder_message_id))
    row = found.scalars().first()
    if row is not None:
        return row.ts
    bound = await session.execute(rows.where(col(InboundMessage.coder_message_id).is_not(None)).limit(1))
    if bound.scalars().first() is not None:
        return None
    unbound = rows.where(col(InboundMessage.queued_message_id).is_(None))
    start = (await session.execute(unbound.order_by(col(InboundMessage.id)).limit(1))).scalars().first()
    if start is None:
        return None
    start.coder_message_id = coder_message_id
    return start.ts


async def find_queued_inbound(session: AsyncSession, link_id: int) -> dict[int, str]:
    """The link's follow-ups last known to wait in Coder's queue: queued message id -> Slack ts."""
    stmt = select(InboundMessage).where(
        col(InboundMessage.link_id) == link_id, col(InboundMessage.queued_message_id).is_not(None)
    )
    return {
        row.queued_message_id: row.ts
        for row in (await session.execute(stmt)).scalars()
        if row.queued_message_id is not None
    }


async def find_queued_by_text(session: AsyncSession, *, link_id: int, text: str) -> int | None:
    """The queue entry of the link's waiting follow-ups whose text is ``text``, the oldest first: the
    one a user message with that text was taken from, when the queue itself is no longer known."""
    stmt = (
        select(col(InboundMessage.queued_message_id))
        .where(
            col(InboundMessage.link_id) == link_id,
            col(InboundMessage.queued_digest) == _text_digest(text),
        )
        .order_by(col(InboundMessage.queued_message_id))
        .limit(1)
    )
    return (await session.execute(stmt)).scalars().first()


async def unqueue(
    session: AsyncSession, *, link_id: int, queued_message_id: int, coder_message_id: int | None
) -> None:
    """A follow-up left Coder's queue: taken as message ``coder_message_id``, or removed (None)."""
    await session.execute(
        update(InboundMessage)
        .where(
            col(InboundMessage.link_id) == link_id, col(InboundMessage.queued_message_id) == queued_message_id
        )
        .values(coder_message_id=coder_message_id, queued_message_id=None, queued_digest=None)
    )
