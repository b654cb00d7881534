"""Which bot serves a Slack workspace: the seam between where installations are kept and the calls
that need a workspace's token."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class WorkspaceKey:
    """A workspace, or with ``team_id`` None an org-wide (Enterprise Grid) install, which serves every
    team of its org."""

    enterprise_id: str | None
    team_id: str | None


@dataclass(frozen=True)
class BotInstall:
    """The bot installed in a workspace, with the token to call Slack as it."""

    key: WorkspaceKey
    bot_token: str
    bot_user_id: str
    bot_id: str
    scopes: frozenset[str]

    def __repr__(self) -> str:
        return f"BotInstall(key={self.key!r}, bot_user_id={self.bot_user_id!r})"


class BotTokens(Protocol):
    """Finds the bot serving a workspace."""

    async def bot(self, enterprise_id: str | None, team_id: str | None) -> BotInstall | None:
        """The installation serving that workspace: an exact team install first, else its org's."""
        ...
