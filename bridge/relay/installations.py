"""The app's installations into Slack workspaces (OAuth distribution), tokens sealed at rest.

Each token is sealed (``relay.cipher``) bound to its purpose and to the workspace it was issued
for, the way linked people's Coder tokens are bound to their row: a ciphertext copied into another
workspace's row is refused, so whoever can write the database cannot hand one workspace's bot to
another. A token sealed under an older key is stored again under the newest when read.

This layer speaks plain data (``InstalledApp``); ``slack.installations`` adapts it to slack-sdk's
installation and state store interfaces, which Bolt's OAuth flow and ``authorize`` call.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from bridge.db import repo
from bridge.db.engine import Database
from bridge.db.models import SlackInstallation, utcnow
from bridge.relay.cipher import Binding, Opened, Refusal, TokenCipher
from bridge.relay.identity import Rotation

log = logging.getLogger(__name__)

_SEALED = {
    # column: (purpose, whether the installer's user id is part of the binding)
    "bot_token_ciphertext": ("slack_bot_token", False),
    "bot_refresh_ciphertext": ("slack_bot_refresh_token", False),
    "user_token_ciphertext": ("slack_user_token", True),
    "user_refresh_ciphertext": ("slack_user_refresh_token", True),
}
"""Where each token is stored and what it is sealed for: a bot's tokens belong to its workspace, an
installer's to them in that workspace."""


@dataclass(frozen=True)
class InstalledApp:
    """One installation, tokens in clear (never logged); ``None`` ids are the ones Slack left out."""

    enterprise_id: str | None
    team_id: str | None
    user_id: str | None = None
    is_enterprise_install: bool = False
    app_id: str = ""
    enterprise_name: str = ""
    enterprise_url: str = ""
    team_name: str = ""
    token_type: str = ""
    bot_id: str = ""
    bot_user_id: str = ""
    bot_scopes: str = ""
    bot_token: str | None = None
    bot_refresh_token: str | None = None
    bot_token_expires_at: int | None = None
    """Epoch seconds after which the bot token no longer works (token rotation), else ``None``."""
    user_scopes: str = ""
    user_token: str | None = None
    user_refresh_token: str | None = None
    user_token_expires_at: int | None = None
    installed_at: float = 0.0

    def __repr__(self) -> str:
        return f"InstalledApp(enterprise_id={self.enterprise_id!r}, team_id={self.team_id!r})"


def workspace_name(enterprise_id: str | None, team_id: str | None) -> str:
    """A workspace as the log names it: ``E…/T…``, ``-`` for an id Slack left out."""
    return f"{enterprise_id or '-'}/{team_id or '-'}"


def _binding(column: str, enterprise_id: str, team_id: str, user_id: str) -> Binding:
    purpose, per_user = _SEALED[column]
    return Binding(purpose, f"{enterprise_id}/{team_id}", user_id if per_user else "")


_TOKENS = {
    "bot_token_ciphertext": "bot_token",
    "bot_refresh_ciphertext": "bot_refresh_token",
    "user_token_ciphertext": "user_token",
    "user_refresh_ciphertext": "user_refresh_token",
}
_PLAIN = (
    "is_enterprise_install",
    "app_id",
    "enterprise_name",
    "enterprise_url",
    "team_name",
    "token_type",
    "bot_id",
    "bot_user_id",
    "bot_scopes",
    "bot_token_expires_at",
    "user_scopes",
    "user_token_expires_at",
)


class Installations:
    """Stores and finds installations, sealing their tokens with ``cipher``."""

    def __init__(self, db: Database, cipher: TokenCipher) -> None:
        self._db = db
        self._cipher = cipher

    def _row(self, app: InstalledApp) -> dict[str, Any]:
        enterprise_id, team_id, user_id = app.enterprise_id or "", app.team_id or "", app.user_id or ""
        values: dict[str, Any] = {
            "enterprise_id": enterprise_id,
            "team_id": team_id,
            "user_id": user_id,
            **{name: getattr(app, name) for name in _PLAIN},
        }
        for column, field in _TOKENS.items():
            secret = getattr(app, field)
            binding = _binding(column, enterprise_id, team_id, user_id)
            values[column] = self._cipher.seal(secret, binding) if secret else ""
        return values

    async def save(self, app: InstalledApp) -> None:
        """Store an installation (replacing its installer's previous one); the workspace's bot is
        this one's from now on."""
        async with self._db.unit() as session:
            await repo.save_slack_installation(session, self._row(app))

    async def save_bot(self, app: InstalledApp) -> None:
        """Store a workspace's bot again (its token was refreshed) on every row of the workspace."""
        async with self._db.unit() as session:
            await self._store_bot(session, app)

    async def find(
        self, enterprise_id: str | None, team_id: str | None, user_id: str | None = None
    ) -> InstalledApp | None:
        """A workspace's installation by ``user_id``, or its latest one."""
        async with self._db.unit() as session:
            row = await repo.find_slack_installation(
                session, enterprise_id=enterprise_id, team_id=team_id, user_id=user_id
            )
        return await self._open(row) if row is not None else None

    async def find_bot(self, enterprise_id: str | None, team_id: str | None) -> InstalledApp | None:
        """The installation carrying a workspace's (or, with ``team_id`` None, an org's) working bot;
        ``None`` when there is none or its token cannot be opened."""
        async with self._db.unit() as session:
            row = await repo.find_slack_bot(session, enterprise_id=enterprise_id, team_id=team_id)
        if row is None:
            return None
        app = await self._open(row)
        return app if app.bot_token else None

    async def refresh_bot(
        self,
        enterprise_id: str | None,
        team_id: str | None,
        refresh: Callable[[InstalledApp], Awaitable[InstalledApp | None]],
    ) -> InstalledApp | None:
        """A workspace's bot after ``refresh``, which no other replica runs for it meanwhile.

        Slack rotates the refresh token with every refresh: two replicas refreshing one workspace at
        once would spend the same refresh token, and the second would be refused and lose the
        workspace's bot. So the row is locked, read again (another replica may have stored a fresh
        token while this one waited) and handed to ``refresh``, and what it answers is stored before
        the lock is let go. ``refresh`` answers the app it was given (nothing to do), a new one (a
        refreshed token: stored), or None (Slack refused: None, the stored bot left alone)."""
        async with self._db.unit() as session:
            row = await repo.find_slack_bot(session, enterprise_id=enterprise_id, team_id=team_id, lock=True)
            app = await self._open(row, session) if row is not None else None
            if app is None or not app.bot_token:
                return None
            refreshed = await refresh(app)
            if refreshed is not None and refreshed != app:
                await self._store_bot(session, refreshed)
            return refreshed

    async def _store_bot(self, session: AsyncSession, app: InstalledApp) -> None:
        row = self._row(app)
        await repo.save_slack_bot(session, {name: row[name] for name in repo.SLACK_BOT_COLUMNS}, row)

    async def forget_bot(self, enterprise_id: str | None, team_id: str | None) -> int:
        """Drop a workspace's bot tokens (Slack revoked them); the rows changed."""
        async with self._db.unit() as session:
            return await repo.forget_slack_bot(session, enterprise_id=enterprise_id, team_id=team_id)

    async def delete(self, enterprise_id: str | None, team_id: str | None, user_id: str | None = None) -> int:
        """Delete a workspace's installation by ``user_id``, or all of them; how many."""
        async with self._db.unit() as session:
            return await repo.delete_slack_installations(
                session, enterprise_id=enterprise_id, team_id=team_id, user_id=user_id
            )

    async def count(self) -> int:
        """How many workspaces and orgs have a working bot."""
        async with self._db.unit() as session:
            return await repo.count_slack_bots(session)

    async def rotate(self) -> Rotation:
        """Store every installation's tokens again under the newest key, so older keys can be retired
        (``bridge rotate-keys``); counts only, never a token."""
        rotation = Rotation()
        async with self._db.unit() as session:
            rows = await repo.find_all_slack_installations(session)
        for row in rows:
            for column in _TOKENS:
                opened = await self._unseal(row, column)
                if opened is Refusal.NO_KEY:
                    rotation.unreadable += 1
                elif opened is Refusal.OTHER_ROW:
                    rotation.refused += 1
                elif opened is not None and opened.resealed is not None:
                    rotation.resealed += 1
                elif opened is not None:
                    rotation.current += 1
        return rotation

    async def _unseal(
        self, row: SlackInstallation, column: str, session: AsyncSession | None = None
    ) -> Opened | Refusal | None:
        """One token of a row (None: the row has none there); one sealed under an older key is stored
        under the newest (in ``session`` when given: the row may be locked by it), one no key opens
        or sealed for another workspace is logged (no token)."""
        sealed = getattr(row, column)
        if not sealed:
            return None
        opened = self._cipher.unseal(sealed, _binding(column, row.enterprise_id, row.team_id, row.user_id))
        if not isinstance(opened, Opened):
            log.warning(
                "the stored Slack %s of workspace %s cannot be used: %s",
                _TOKENS[column].replace("_", " "),
                workspace_name(row.enterprise_id, row.team_id),
                opened.value,
            )
        elif opened.resealed is not None:
            assert row.id is not None
            replace = {"row_id": row.id, "column": column, "old": sealed, "new": opened.resealed}
            if session is not None:
                await repo.replace_slack_ciphertext(session, **replace)
            else:
                async with self._db.unit() as own:
                    await repo.replace_slack_ciphertext(own, **replace)
        return opened

    async def _open(self, row: SlackInstallation, session: AsyncSession | None = None) -> InstalledApp:
        """The row with its tokens opened; one that cannot be used reads as absent."""
        tokens: dict[str, Any] = {}
        for column, field in _TOKENS.items():
            opened = await self._unseal(row, column, session)
            tokens[field] = opened.secret if isinstance(opened, Opened) else None
        plain: dict[str, Any] = {name: getattr(row, name) for name in _PLAIN}
        return InstalledApp(
            enterprise_id=row.enterprise_id or None,
            team_id=row.team_id or None,
            user_id=row.user_id or None,
            installed_at=row.installed_at.timestamp(),
            **plain,
            **tokens,
        )


class OAuthStates:
    """The OAuth ``state`` values handed to browsers: each comes back once, before it expires."""

    def __init__(self, db: Database, *, expiration_seconds: int) -> None:
        self._db = db
        self.expiration_seconds = expiration_seconds

    async def issue(self) -> str:
        """A new state, remembered until it expires."""
        state = secrets.token_urlsafe(32)
        expires_at = utcnow() + timedelta(seconds=self.expiration_seconds)
        async with self._db.unit() as session:
            await repo.add_oauth_state(session, state=state, expires_at=expires_at)
        return state

    async def consume(self, state: str) -> bool:
        """True once for a state this bridge issued that has not expired; never again after."""
        if not state or len(state) > 64:
            return False
        async with self._db.unit() as session:
            return await repo.consume_oauth_state(session, state=state)
