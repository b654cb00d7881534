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

from collections.abc import Iterator
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
