"""Table ``link_attempt``: the ``/coder link`` token checks of each person, within the window.

Counted in the database, not in memory, so the throttle on guessing tokens through the bridge holds
across restarts and replicas.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from bridge.db.models import LinkAttempt


async def find_link_attempts_since(
    session: AsyncSession, *, team_id: str, slack_user_id: str, since: datetime
) -> list[datetime]:
    """When the person's recent ``/coder link`` token checks were, oldest first; anyone's older ones
    are forgotten."""
    await session.execute(delete(LinkAttempt).where(col(LinkAttempt.attempted_at) < since))
    stmt = (
        select(col(LinkAttempt.attempted_at))
        .where(col(LinkAttempt.team_id) == team_id, col(LinkAttempt.slack_user_id) == slack_user_id)
        .order_by(col(LinkAttempt.attempted_at))
    )
    # SQLite hands timestamps back without their zone; every stored one is UTC.
    return [t if t.tzinfo else t.replace(tzinfo=UTC) for t in (await session.execute(stmt)).scalars()]


async def add_link_attempt(session: AsyncSession, *, team_id: str, slack_user_id: str, at: datetime) -> None:
    """Count a token check of the person's."""
    session.add(LinkAttempt(team_id=team_id, slack_user_id=slack_user_id, attempted_at=at))
