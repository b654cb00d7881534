"""slack-sdk's installation and OAuth state stores over the bridge's database, and the bot serving
each workspace (``BotTokens``), refreshed before its token expires.

Bolt's OAuth flow saves what ``oauth.v2.access`` returned through ``DatabaseInstallationStore``;
``InstalledBots`` answers Bolt's ``authorize`` (``slack.routing.BotAuthorize``) and every other
caller that needs a workspace's bot. Tokens rotate here rather than in Bolt: a token found expiring
is refreshed (``oauth.v2.access`` with ``grant_type=refresh_token``) and the new pair stored, sealed,
before it is handed out, so every caller gets a working token and not only Bolt's listeners. A
refresh holds the installation's row locked (``Installations.refresh_bot``): replicas refresh a
workspace one at a time, and the later ones find the token the first stored.
"""

from __future__ import annotations

import asyncio
import logging
import time
from logging import Logger
from typing import Any

from slack_sdk.errors import SlackTokenRotationError
from slack_sdk.oauth.installation_store import Bot, Installation
from slack_sdk.oauth.installation_store.async_installation_store import AsyncInstallationStore
from slack_sdk.oauth.state_store.async_state_store import AsyncOAuthStateStore
from slack_sdk.oauth.token_rotation.async_rotator import AsyncTokenRotator

from bridge.relay.installations import Installations, InstalledApp, OAuthStates, workspace_name
from bridge.slack.workspaces import BotInstall, WorkspaceKey

log = logging.getLogger(__name__)


def _app(installation: Installation) -> InstalledApp:
    return InstalledApp(
        enterprise_id=installation.enterprise_id,
        team_id=installation.team_id,
        user_id=installation.user_id,
        is_enterprise_install=bool(installation.is_enterprise_install),
        app_id=installation.app_id or "",
        enterprise_name=installation.enterprise_name or "",
        enterprise_url=installation.enterprise_url or "",
        team_name=installation.team_name or "",
        token_type=installation.token_type or "",
        bot_id=installation.bot_id or "",
        bot_user_id=installation.bot_user_id or "",
        bot_scopes=",".join(installation.bot_scopes or ()),
        bot_token=installation.bot_token,
        bot_refresh_token=installation.bot_refresh_token,
        bot_token_expires_at=installation.bot_token_expires_at,
        user_scopes=",".join(installation.user_scopes or ()),
        user_token=installation.user_token,
        user_refresh_token=installation.user_refresh_token,
        user_token_expires_at=installation.user_token_expires_at,
    )


def _installation(app: InstalledApp) -> Installation:
    return Installation(
        app_id=app.app_id or None,
        enterprise_id=app.enterprise_id,
        enterprise_name=app.enterprise_name or None,
        enterprise_url=app.enterprise_url or None,
        team_id=app.team_id,
        team_name=app.team_name or None,
        bot_token=app.bot_token,
        bot_id=app.bot_id or None,
        bot_user_id=app.bot_user_id or None,
        bot_scopes=app.bot_scopes,
        bot_refresh_token=app.bot_refresh_token,
        bot_token_expires_at=app.bot_token_expires_at,
        user_id=app.user_id or "",
        user_token=app.user_token,
        user_scopes=app.user_scopes,
        user_refresh_token=app.user_refresh_token,
        user_token_expires_at=app.user_token_expires_at,
        is_enterprise_install=app.is_enterprise_install,
        token_type=app.token_type or None,
        installed_at=app.installed_at,
    )


def _bot(app: InstalledApp) -> Bot | None:
    if not app.bot_token:
        return None
    return Bot(
        app_id=app.app_id or None,
        enterprise_id=app.enterprise_id,
        enterprise_name=app.enterprise_name or None,
        team_id=app.team_id,
        team_name=app.team_name or None,
        bot_token=app.bot_token,
        bot_id=app.bot_id,
        bot_user_id=app.bot_user_id,
        bot_scopes=app.bot_scopes,
        bot_refresh_token=app.bot_refresh_token,
        bot_token_expires_at=app.bot_token_expires_at,
        is_enterprise_install=app.is_enterprise_install,
        installed_at=app.installed_at,
    )


def _bot_app(bot: Bot) -> InstalledApp:
    return InstalledApp(
        enterprise_id=bot.enterprise_id,
        team_id=bot.team_id,
        is_enterprise_install=bool(bot.is_enterprise_install),
        app_id=bot.app_id or "",
        enterprise_name=bot.enterprise_name or "",
        team_name=bot.team_name or "",
        bot_id=bot.bot_id,
        bot_user_id=bot.bot_user_id,
        bot_scopes=",".join(bot.bot_scopes or ()),
        bot_token=bot.bot_token,
        bot_refresh_token=bot.bot_refresh_token,
        bot_token_expires_at=bot.bot_token_expires_at,
    )


def _team(team_id: str | None, is_enterprise_install: bool | None) -> str | None:
    """An org-wide install is stored without a team, whichever team an event came from."""
    return None if is_enterprise_install else team_id


class DatabaseInstallationStore(AsyncInstallationStore):
    """slack-sdk's installation store on the bridge's database, tokens sealed (``relay.installations``)."""

    def __init__(self, installations: Installations) -> None:
        self._installations = installations

    @property
    def logger(self) -> Logger:
        return log

    async def async_save(self, installation: Installation) -> None:
        await self._installations.save(_app(installation))

    async def async_save_bot(self, bot: Bot) -> None:
        await self._installations.save_bot(_bot_app(bot))

    async def async_find_bot(
        self,
        *,
        enterprise_id: str | None,
        team_id: str | None,
        is_enterprise_install: bool | None = False,
    ) -> Bot | None:
        app = await self._installations.find_bot(enterprise_id, _team(team_id, is_enterprise_install))
        return _bot(app) if app is not None else None

    async def async_find_installation(
        self,
        *,
        enterprise_id: str | None,
        team_id: str | None,
        user_id: str | None = None,
        is_enterprise_install: bool | None = False,
    ) -> Installation | None:
        team = _team(team_id, is_enterprise_install)
        app = await self._installations.find(enterprise_id, team, user_id)
        return _installation(app) if app is not None else None

    async def async_delete_bot(self, *, enterprise_id: str | None, team_id: str | None) -> None:
        await self._installations.forget_bot(enterprise_id, team_id)

    async def async_delete_installation(
        self, *, enterprise_id: str | None, team_id: str | None, user_id: str | None = None
    ) -> None:
        await self._installations.delete(enterprise_id, team_id, user_id)

    async def async_delete_all(self, *, enterprise_id: str | None, team_id: str | None) -> None:
        await self._installations.delete(enterprise_id, team_id)


class DatabaseStateStore(AsyncOAuthStateStore):
    """slack-sdk's OAuth state store on the bridge's database: single use, expiring."""

    def __init__(self, states: OAuthStates) -> None:
        self._states = states

    @property
    def logger(self) -> Logger:
        return log

    async def async_issue(self, *args: Any, **kwargs: Any) -> str:
        return await self._states.issue()

    async def async_consume(self, state: str) -> bool:
        return await self._states.consume(state)


class InstalledBots:
    """The bot serving each workspace (``BotTokens``), its token refreshed when it is about to expire.

    ``minutes_before_expiration``: how long before its expiry a token is refreshed, so a call made
    with it does not outlive it. Refreshes of one workspace are made one at a time: in this process
    by a lock (so its callers queue here rather than on the database), across replicas by the
    installation's row lock.
    """

    def __init__(
        self,
        installations: Installations,
        rotator: AsyncTokenRotator,
        *,
        minutes_before_expiration: int = 120,
    ) -> None:
        self._installations = installations
        self._rotator = rotator
        self._minutes = minutes_before_expiration
        self._refreshing: dict[WorkspaceKey, asyncio.Lock] = {}

    async def bot(self, enterprise_id: str | None, team_id: str | None) -> BotInstall | None:
        """The installation serving that workspace: an exact team install first, else its org's."""
        app = await self._installations.find_bot(enterprise_id, team_id)
        if app is None and enterprise_id and team_id:
            app = await self._installations.find_bot(enterprise_id, None)
        if app is None:
            return None
        key = WorkspaceKey(app.enterprise_id, app.team_id)
        expires_at = app.bot_token_expires_at
        if expires_at is not None and expires_at <= time.time() + self._minutes * 60:
            async with self._refreshing.setdefault(key, asyncio.Lock()):
                app = await self._installations.refresh_bot(key.enterprise_id, key.team_id, self._refreshed)
        if app is None or not app.bot_token:
            return None
        return BotInstall(
            key=key,
            bot_token=app.bot_token,
            bot_user_id=app.bot_user_id,
            bot_id=app.bot_id,
            scopes=frozenset(s for s in app.bot_scopes.split(",") if s),
        )

    async def _refreshed(self, app: InstalledApp) -> InstalledApp | None:
        """``app`` with a token that outlives the margin: refreshed when it would not (the caller
        stores it); None when Slack refused the refresh (the installation is revoked or its refresh
        token invalid)."""
        bot = _bot(app)
        assert bot is not None
        try:
            rotated = await self._rotator.perform_bot_token_rotation(
                bot=bot, minutes_before_expiration=self._minutes
            )
        except SlackTokenRotationError as exc:
            error = exc.api_error.response.get("error")
            log.warning(
                "Slack refused to refresh the bot token of workspace %s: %s",
                workspace_name(app.enterprise_id, app.team_id),
                error or "no reason given",
            )
            return None
        if rotated is None:
            return app
        log.info("refreshed the bot token of workspace %s", workspace_name(app.enterprise_id, app.team_id))
        return _bot_app(rotated)
