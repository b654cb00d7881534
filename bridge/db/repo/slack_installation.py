"""Tables ``slack_installation`` and ``slack_oauth_state``: the app's installations into Slack
workspaces and orgs (OAuth distribution), and the OAuth states handed out and not yet back.

Ids Slack leaves out (no enterprise, an org-wide install's team) are ``""`` here; callers speak
``None``. Token columns hold ciphertexts only; sealing is the caller's (``relay.installations``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from bridge.db.models import SlackInstallation, SlackOAuthState, utcnow
from bridge.db.repo._sql import insert

SLACK_BOT_COLUMNS = (
    "app_id",
    "enterprise_name",
    "team_name",
    "is_enterprise_install",
    "bot_id",
    "bot_user_id",
    "bot_scopes",
    "bot_token_ciphertext",
    "bot_refresh_ciphertext",
    "bot_token_expires_at",
)
"""What a workspace's rows share: its bot (one bot per workspace, whoever installed it)."""

_KEY = ("enterprise_id", "team_id", "user_id")


def _workspace(enterprise_id: str | None, team_id: str | None) -> Any:
    return (col(SlackInstallation.enterprise_id) == (enterprise_id or "")) & (
        col(SlackInstallation.team_id) == (team_id or "")
    )


async def save_slack_installation(session: AsyncSession, values: Mapping[str, Any]) -> None:
    """Store an installation by its installer, replacing theirs from before; the workspace's other
    rows take its bot (a re-install gives the workspace one new bot token)."""
    row = {**values, "installed_at": utcnow()}
    stmt = insert(session, SlackInstallation).values(**row)
    await session.execute(
        stmt.on_conflict_do_update(
            index_elements=["enterprise_id", "team_id", "user_id"],
            set_={
                name: getattr(stmt.excluded, name)
                for name in row
                if name not in ("enterprise_id", "team_id", "user_id")
            },
        )
    )
    await save_slack_bot(
        session, {name: values[name] for name in SLACK_BOT_COLUMNS if name in values}, values
    )


async def save_slack_bot(session: AsyncSession, bot: Mapping[str, Any], workspace: Mapping[str, Any]) -> int:
    """Give every row of ``workspace`` (its ``enterprise_id`` and ``team_id``) this bot, e.g. after its
    token was refreshed; the number of rows changed (0: the workspace has no installation)."""
    result = await session.execute(
        update(SlackInstallation)
        .where(_workspace(workspace.get("enterprise_id"), workspace.get("team_id")))
        .values(**bot)
    )
    return int(getattr(result, "rowcount", 0))


async def find_slack_installation(
    session: AsyncSession, *, enterprise_id: str | None, team_id: str | None, user_id: str | None = None
) -> SlackInstallation | None:
    """The installation of a workspace by ``user_id``, or its latest one by anybody."""
    stmt = select(SlackInstallation).where(_workspace(enterprise_id, team_id))
    if user_id is not None:
        stmt = stmt.where(col(SlackInstallation.user_id) == user_id)
    stmt = stmt.order_by(col(SlackInstallation.installed_at).desc(), col(SlackInstallation.id).desc())
    return (await session.execute(stmt.limit(1))).scalar_one_or_none()


async def find_slack_bot(
    session: AsyncSession, *, enterprise_id: str | None, team_id: str | None, lock: bool = False
) -> SlackInstallation | None:
    """The latest installation of a workspace whose bot token still stands. ``lock``: its row is
    locked until the transaction ends (``FOR UPDATE`` on PostgreSQL; SQLite serves one process), so
    another replica reading it with ``lock`` waits for this one's refresh of the token."""
    stmt = (
        select(SlackInstallation)
        .where(_workspace(enterprise_id, team_id), col(SlackInstallation.bot_token_ciphertext) != "")
        .order_by(col(SlackInstallation.installed_at).desc(), col(SlackInstallation.id).desc())
    )
    stmt = stmt.limit(1)
    return (await session.execute(stmt.with_for_update() if lock else stmt)).scalar_one_or_none()


async def find_all_slack_installations(session: AsyncSession) -> Sequence[SlackInstallation]:
    """Every stored installation (re-encrypting them all when keys rotate)."""
    stmt = select(SlackInstallation).order_by(col(SlackInstallation.id))
    return (await session.execute(stmt)).scalars().all()


async def count_slack_bots(session: AsyncSession) -> int:
    """How many workspaces and orgs have a working bot installed."""
    stmt = select(
        func.count(func.distinct(SlackInstallation.enterprise_id + "/" + SlackInstallation.team_id))
    ).where(col(SlackInstallation.bot_token_ciphertext) != "")
    return int((await session.execute(stmt)).scalar_one())


async def forget_slack_bot(session: AsyncSession, *, enterprise_id: str | None, team_id: str | None) -> int:
    """Drop a workspace's bot token (revoked): its rows stay for their installers' user tokens."""
    result = await session.execute(
        update(SlackInstallation)
        .where(_workspace(enterprise_id, team_id))
        .values(bot_token_ciphertext="", bot_refresh_ciphertext="", bot_token_expires_at=None)
    )
    return int(getattr(result, "rowcount", 0))


async def delete_slack_installations(
    session: AsyncSession, *, enterprise_id: str | None, team_id: str | None, user_id: str | None = None
) -> int:
    """Delete a workspace's installation by ``user_id``, or all of them; how many were deleted."""
    stmt = delete(SlackInstallation).where(_workspace(enterprise_id, team_id))
    if user_id is not None:
        stmt = stmt.where(col(SlackInstallation.user_id) == user_id)
    result = await session.execute(stmt)
    return int(getattr(result, "rowcount", 0))


async def replace_slack_ciphertext(
    session: AsyncSession, *, row_id: int, column: str, old: str, new: str
) -> bool:
    """Store ``new`` in place of the ciphertext ``old`` in one token column of a row; False when the
    row no longer holds ``old`` (the token was refreshed or the app re-installed meanwhile)."""
    result = await session.execute(
        update(SlackInstallation)
        .where(col(SlackInstallation.id) == row_id, getattr(SlackInstallation, column) == old)
        .values({column: new})
    )
    return bool(getattr(result, "rowcount", 0))


async def add_oauth_state(session: AsyncSession, *, state: str, expires_at: datetime) -> None:
    """Remember a state handed out; the states that expired meanwhile are swept."""
    await session.execute(delete(SlackOAuthState).where(col(SlackOAuthState.expires_at) <= utcnow()))
    session.add(SlackOAuthState(state=state, expires_at=expires_at))


async def consume_oauth_state(session: AsyncSession, *, state: str) -> bool:
    """Take a state back: True once, for a state handed out and not yet expired."""
    result = await session.execute(
        delete(SlackOAuthState).where(
            col(SlackOAuthState.state) == state, col(SlackOAuthState.expires_at) > utcnow()
        )
    )
    return bool(getattr(result, "rowcount", 0))
