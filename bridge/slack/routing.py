"""Every Slack call with the token of the workspace it is made for (``bridge.slack.workspaces``).

One ``RoutedClient`` serves the whole bridge over one HTTP session: each call sends the bot token of
the installation serving the workspace acted for, resolved through ``BotTokens`` and kept a minute
(``workspaces.Bots``: asking the installation store for every call would cost a query per message
edit). Bolt's side sets the workspace of each request (``act_for_request``) and finds the
installation the same way (``BotAuthorize``).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import aiohttp
from slack_bolt.authorization import AuthorizeResult
from slack_bolt.authorization.async_authorize import AsyncAuthorize
from slack_bolt.context.async_context import AsyncBoltContext
from slack_bolt.request.internals import extract_enterprise_id, extract_team_id
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.async_slack_response import AsyncSlackResponse

from bridge.relay.ports import SlackPermanent
from bridge.slack.workspaces import BotInstall, Bots, BotTokens, WorkspaceKey, act_for, acting

log = logging.getLogger(__name__)


class NoWorkspace(RuntimeError):
    """A Slack call made outside any act while the bridge serves several workspaces: a bug, since
    the call cannot tell whose token (and whose budgets) it may use."""


class RoutedClient(AsyncWebClient):
    """An ``AsyncWebClient`` whose every call carries the acting workspace's bot token.

    ``default``: the installation a call made outside any act uses (the one workspace of a single
    ``SLACK_BOT_TOKEN``); None where there is no such one (an org-wide install, many installs) and
    such a call raises ``NoWorkspace``. Handed ``Bots``, it shares their cache with the relay's
    questions of who the bot is."""

    def __init__(
        self,
        tokens: BotTokens,
        *,
        default: BotInstall | None,
        base_url: str,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        super().__init__(base_url=base_url, session=session)
        self._bots = tokens if isinstance(tokens, Bots) else Bots(tokens)
        self._default = default

    async def installation(self) -> BotInstall:
        """The installation acting for the current workspace."""
        workspace = acting()
        if workspace is None:
            if self._default is None:
                raise NoWorkspace("a Slack call made outside any workspace's act: whose token is unknown")
            return self._default
        install = await self._bots.bot(workspace.enterprise_id, workspace.team_id)
        if install is None:
            raise SlackPermanent("not_installed", f"the app is not installed in workspace {workspace}")
        return install

    async def bot_token(self) -> str:
        """The current workspace's bot token, for requests that are not Web API calls (file bytes)."""
        return (await self.installation()).bot_token

    async def api_call(
        self,
        api_method: str,
        *,
        http_verb: str = "POST",
        files: dict[str, Any] | None = None,
        data: Any = None,
        params: dict[str, Any] | None = None,
        json: dict[str, Any] | None = None,
        headers: dict[str, Any] | None = None,
        auth: dict[str, Any] | None = None,
    ) -> AsyncSlackResponse:
        # A request's own Authorization header wins over the client's token (slack_sdk's
        # internal_utils._get_headers merges it last), so the shared client keeps no token at all.
        routed = {**(headers or {}), "Authorization": f"Bearer {await self.bot_token()}"}
        return await super().api_call(
            api_method,
            http_verb=http_verb,
            files=files,
            data=data,
            params=params,
            json=json,
            headers=routed,
            auth=auth,
        )


def workspace_of(body: Mapping[str, Any]) -> WorkspaceKey | None:
    """The workspace a Slack request happened in: for events ``context_team_id`` (Slack's name for
    the workspace the installation saw it in; an org-wide install's ``authorizations[0].team_id`` is
    null), else where Bolt reads the team of commands and interactions, else the outer ``team_id``."""
    payload = dict(body)
    team = payload.get("context_team_id") or extract_team_id(payload) or payload.get("team_id")
    enterprise = payload.get("context_enterprise_id") or extract_enterprise_id(payload)
    if not team and not enterprise:
        return None
    return WorkspaceKey(str(enterprise) if enterprise else None, str(team) if team else None)


async def act_for_request(body: dict[str, Any], next: Callable[[], Awaitable[None]]) -> None:
    """Bolt middleware: the request's handling (and every task it spawns) acts for its workspace.

    Set for the rest of the request's task, not around ``next``: Bolt's ``next`` only marks the
    middleware passed, and runs the listeners after every middleware has returned. Each request is
    a task of its own (aiohttp's handler, Socket Mode's per-message task), so none inherits another's."""
    act_for(workspace_of(body))
    await next()


class BotAuthorize(AsyncAuthorize):
    """Bolt's ``authorize``: the installation serving the request's workspace (its own, or its org's),
    from ``BotTokens``, without a Slack call.

    Bolt would otherwise call ``auth.test`` on every request until one answer is cached; a burst of
    events right after a start exceeds that method's rate limit, and Bolt then acknowledges and drops
    the events whose check was refused (the latency benchmark lost 11 of 20 mentions so). An
    ``AsyncAuthorize`` rather than a function, so Bolt takes it beside an OAuth flow instead of
    building its own from the environment's ``SLACK_CLIENT_ID``.
    """

    def __init__(self, tokens: BotTokens) -> None:
        self._tokens = tokens

    async def __call__(
        self,
        *,
        context: AsyncBoltContext,
        enterprise_id: str | None,
        team_id: str | None,
        user_id: str | None,
        actor_enterprise_id: str | None = None,
        actor_team_id: str | None = None,
        actor_user_id: str | None = None,
    ) -> AuthorizeResult | None:
        install = await self._tokens.bot(enterprise_id, team_id)
        if install is None:
            log.warning(
                "an event came from workspace %s (org %s), where the app is not installed",
                team_id or "-",
                enterprise_id or "-",
            )
            return None
        return AuthorizeResult(
            enterprise_id=enterprise_id,
            team_id=team_id,
            user_id=user_id,
            bot_user_id=install.bot_user_id,
            bot_id=install.bot_id,
            bot_token=install.bot_token,
            bot_scopes=sorted(install.scopes),
        )
