"""Table ``user_link``: a Slack user's own Coder account (linked identity mode), token encrypted.

The row outlives a refused token (``broken``: it still says who the person was) until they link
again; a key rotation re-encrypts every token in place.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from bridge.db.models import UserLink, utcnow
from bridge.db.repo._sql import insert


async def save_user_link(
    session: AsyncSession,
    *,
    team_id: str,
    slack_user_id: str,
    coder_user_id: str,
    coder_username: str,
    token_ciphertext: str,
) -> None:
    """Link (or re-link) a Slack user to a Coder account; a re-link replaces the token and heals it."""
    now = utcnow()
    stmt = insert(session, UserLink).values(
        team_id=team_id,
        slack_user_id=slack_user_id,
        coder_user_id=coder_user_id,
        coder_username=coder_username,
        token_ciphertext=token_ciphertext,
        broken=False,
        created_at=now,
        updated_at=now,
    )
    await session.execute(
        stmt.on_conflict_do_update(
            index_elements=["team_id", "slack_user_id"],
            set_={
                "coder_user_id": stmt.excluded.coder_user_id,
                "coder_username": stmt.excluded.coder_username,
                "token_ciphertext": stmt.excluded.token_ciphertext,
                "broken": False,
                "updated_at": stmt.excluded.updated_at,
            },
        )
    )


async def find_user_link(session: AsyncSession, *, team_id: str, slack_user_id: str) -> UserLink | None:
    """A Slack user's Coder link, if they made one."""
    stmt = select(UserLink).where(
        col(UserLink.team_id) == team_id, col(UserLink.slack_user_id) == slack_user_id
    )
    return (await session.execute(stmt)).scalar_one_or_none()


async def find_user_links_of_coder_user(
    session: AsyncSession, *, team_id: str, coder_user_id: str
) -> Sequence[UserLink]:
    """The working links of the Slack users of a team who linked this Coder account, oldest first."""
    stmt = (
        select(UserLink)
        .where(
            col(UserLink.team_id) == team_id,
            col(UserLink.coder_user_id) == coder_user_id,
            col(UserLink.broken).is_(False),
        )
        .order_by(col(UserLink.id))
    )
    return (await session.execute(stmt)).scalars().all()


async def find_all_user_links(session: AsyncSession) -> Sequence[UserLink]:
    """Every stored Coder link (re-encrypting them all when keys rotate)."""
    return (await session.execute(select(UserLink).order_by(col(UserLink.id)))).scalars().all()


async def replace_user_token(
    session: AsyncSession, *, team_id: str, slack_user_id: str, old: str, new: str
) -> bool:
    """Store ``new`` in place of the ciphertext ``old``; False when the row no longer holds ``old``
    (a re-link or unlink happened meanwhile, and its token wins)."""
    result = await session.execute(
        update(UserLink)
        .where(
            col(UserLink.team_id) == team_id,
            col(UserLink.slack_user_id) == slack_user_id,
            col(UserLink.token_ciphertext) == old,
        )
        .values(token_ciphertext=new)
    )
    return bool(getattr(result, "rowcount", 0))


async def delete_user_link(session: AsyncSession, *, team_id: str, slack_user_id: str) -> bool:
    """Forget a Slack user's Coder link (and its token); False when there was none."""
    result = await session.execute(
        delete(UserLink).where(col(UserLink.team_id) == team_id, col(UserLink.slack_user_id) == slack_user_id)
    )
    return bool(getattr(result, "rowcount", 0))


async def mark_user_link_broken(session: AsyncSession, *, team_id: str, slack_user_id: str) -> bool:
    """Coder refused the user's token: keep the row (it says who they were) until they link again.

    True only for the call that broke it, so the person is told once.
    """
    result = await session.execute(
        update(UserLink)
        .where(
            col(UserLink.team_id) == team_id,
            col(UserLink.slack_user_id) == slack_user_id,
            col(UserLink.broken).is_(False),
        )
        .values(broken=True, updated_at=utcnow())
    )
    return bool(getattr(result, "rowcount", 0))
