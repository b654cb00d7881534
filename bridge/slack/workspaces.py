"""The workspaces the bridge acts in, and which installation (bot token) acts in each.

Slack counts rate limits per workspace and per method, an Enterprise Grid org-wide install serves
every workspace of its org with one token, and an app installed in many workspaces holds a token for
each: so every Slack call is made *for one workspace*, and which one is a fact of the act, not of the
process. The act names it: a Bolt request by the workspace it came from (``bridge.slack.routing``),
the outbox by its thread (``ThreadRef.workspace``). It is carried in a context variable rather than
through every signature between the act and the Slack call (the poster, the budgets, the directory,
the uploads): tasks spawned for the act inherit it, and code that makes a Slack call outside any act
is found at once, since the call cannot tell whose token to send.

This module is plain data and the ``BotTokens`` port: the relay reads the acting workspace from it
(budgets and policy are per workspace), the Slack adapters resolve tokens through it, and where the
installations come from (``SLACK_BOT_TOKEN`` or the installation store) is the composition root's
choice.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class WorkspaceKey:
    """A workspace (``team_id``) of an Enterprise Grid org (``enterprise_id``, None off Grid).

    As an installation's key, ``team_id`` None is an org-wide install, serving every team of its org;
    as the workspace being acted for, it names the team the act happens in."""

    enterprise_id: str | None
    team_id: str | None

    @property
    def budget_team(self) -> str:
        """Whose Slack budgets a call draws on: Slack counts per workspace, and a call for the org as
        a whole (an org-wide install's ``auth.test``) counts as the org's."""
        return self.team_id or self.enterprise_id or ""

    def serves(self, workspace: WorkspaceKey) -> bool:
        """Whether the installation with this key may act in ``workspace``: a team install in its
        team, an org-wide install in every team of its org."""
        if self.team_id is not None:
            return workspace.team_id == self.team_id
        return self.enterprise_id is not None and workspace.enterprise_id == self.enterprise_id

    def __str__(self) -> str:
        return "/".join(part for part in (self.enterprise_id, self.team_id) if part) or "-"


@dataclass(frozen=True)
class BotInstall:
    """One installation of the app: the bot token and who the bot is there."""

    key: WorkspaceKey
    bot_token: str
    bot_user_id: str
    bot_id: str
    scopes: frozenset[str]
    url: str = ""
    """The workspace's address (``https://example.slack.com/``) when known, for permalinks built
    without a call; "" for installations made through OAuth (Slack's answer names no address)."""

    def __repr__(self) -> str:  # the token stays out of logs and test reports
        return f"BotInstall(key={self.key}, bot_user_id={self.bot_user_id!r})"


class BotTokens(Protocol):
    """Where the bridge finds the installation serving a workspace."""

    async def bot(self, enterprise_id: str | None, team_id: str | None) -> BotInstall | None:
        """The installation serving that workspace: its team's own install first, else its org's
        install; None when the app is not installed there."""


class SingleInstall:
    """``BotTokens`` over the one installation of ``SLACK_BOT_TOKEN`` (from ``auth.test`` at start):
    a workspace install, or an org-wide one serving every workspace of its org."""

    def __init__(self, install: BotInstall) -> None:
        self.install = install

    async def bot(self, enterprise_id: str | None, team_id: str | None) -> BotInstall | None:
        return self.install if self.install.key.serves(WorkspaceKey(enterprise_id, team_id)) else None


TOKEN_TTL = 60.0
"""How long an answer of ``BotTokens`` is kept: a token revoked or reinstalled is picked up within it."""


class Bots:
    """The installation serving each workspace, kept ``ttl`` seconds, and who the bot is in the
    workspace acted for.

    Each installation has a bot user and a bot id of its own (separate installs in separate
    workspaces), so "is this the bot?" and "strip the bot's mention" depend on the act's workspace,
    not on the process. Asking ``BotTokens`` each time would cost a query (and with OAuth an unseal)
    per Slack call and per message; the answers are kept a minute instead, for a workspace
    installed, not installed, or uninstalled alike.

    ``default``: the installation outside any act (``SLACK_BOT_TOKEN``'s); None where several serve.
    """

    def __init__(
        self,
        tokens: BotTokens,
        *,
        default: BotInstall | None = None,
        ttl: float = TOKEN_TTL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._tokens = tokens
        self.default = default
        self._ttl = ttl
        self._clock = clock
        self._known: dict[WorkspaceKey, tuple[float, BotInstall | None]] = {}

    async def bot(self, enterprise_id: str | None, team_id: str | None) -> BotInstall | None:
        """``BotTokens.bot``, from what was found within the last ``ttl`` seconds."""
        workspace = WorkspaceKey(enterprise_id, team_id)
        now = self._clock()
        known = self._known.get(workspace)
        if known is None or now - known[0] >= self._ttl:
            known = self._known[workspace] = (now, await self._tokens.bot(enterprise_id, team_id))
        return known[1]

    async def here(self) -> BotInstall | None:
        """The installation acting in the workspace acted for (``default`` outside any act)."""
        workspace = acting()
        if workspace is None:
            return self.default
        return await self.bot(workspace.enterprise_id, workspace.team_id)

    async def user_id(self) -> str:
        """The bot's user id in the workspace acted for; "" where the app is not installed."""
        install = await self.here()
        return install.bot_user_id if install is not None else ""


_ACTING: ContextVar[WorkspaceKey | None] = ContextVar("bridge_acting_for", default=None)


def acting() -> WorkspaceKey | None:
    """The workspace the current act is for; None outside any act."""
    return _ACTING.get()


def acting_enterprise() -> str | None:
    """The Enterprise Grid org of the workspace acted for (None off Grid or outside any act), kept
    with what the act creates so later acts for it find the same installation."""
    workspace = _ACTING.get()
    return workspace.enterprise_id if workspace is not None else None


def act_for(workspace: WorkspaceKey | None) -> None:
    """Act for ``workspace`` for the rest of the current task (and in every task it spawns)."""
    _ACTING.set(workspace)


@contextmanager
def acting_for(workspace: WorkspaceKey | None) -> Iterator[None]:
    """Act for ``workspace`` within the block (and in every task spawned from it)."""
    token = _ACTING.set(workspace)
    try:
        yield
    finally:
        _ACTING.reset(token)
