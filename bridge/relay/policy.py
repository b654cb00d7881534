"""Who may use the bridge where: the access policy of ``docs/security.md``, one decision per entry point.

Every check answers ``None`` (allowed) or the reason to tell the person privately. Nothing refused
reaches Coder. The defaults are the safe ones: guests and people from other organisations (Slack
Connect) are refused, only the requester and admins control a chat, and in linked mode only the
requester may add to their chat (a colleague's words would otherwise run with the requester's
Coder identity). When Slack cannot be asked who someone is, the answer is no, with a reason.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Literal

from bridge.db.models import ThreadLink
from bridge.relay.ports import SlackDirectory, SlackError

log = logging.getLogger(__name__)

ControlPolicy = Literal["requester", "channel"]


@dataclass(frozen=True)
class Rules:
    """The operator's access settings (``BRIDGE_ALLOWED_*``, ``BRIDGE_ALLOW_*``, ``BRIDGE_ADMINS``…)."""

    team_id: str
    """The bot's own workspace: users of any other team are external."""
    allowed_channels: frozenset[str] = frozenset()
    """Channels the bot serves; empty: every channel it is in. Direct messages are not channels."""
    allowed_users: frozenset[str] = frozenset()
    """User ids (``U…``/``W…``) and user groups (``S…``) who may start chats; empty: everyone."""
    allow_guests: bool = False
    allow_external: bool = False
    admins: frozenset[str] = frozenset()
    """User ids and groups who may control any chat."""
    control: ControlPolicy = "requester"
    linked: bool = False
    """Linked identity mode: follow-ups come only from the chat's requester."""


class Policy:
    """Applies ``Rules`` with what Slack says about people (``SlackDirectory``)."""

    def __init__(self, rules: Rules, directory: SlackDirectory) -> None:
        self.rules = rules
        self._directory = directory

    async def may_start(self, channel_id: str, user_id: str, *, direct: bool) -> str | None:
        """Whether this person may start a chat here; None, or why not."""
        allowed = self.rules.allowed_channels
        if allowed and not direct and channel_id not in allowed:
            return "I don't take tasks in this channel: the bridge's operator limited it to certain channels."
        return await self._may_use(user_id)

    async def may_follow_up(self, link: ThreadLink, user_id: str, *, direct: bool) -> str | None:
        """Whether this person's reply in a chat's thread may reach the agent."""
        if self.rules.linked:
            if user_id == link.requester_user_id:
                return None
            return (
                f"Only <@{link.requester_user_id}>, who started this chat, can add to it: it runs with their "
                "own Coder account. Mention me in a new thread to start a chat of your own."
            )
        return await self.may_start(link.channel_id, user_id, direct=direct)

    async def may_control(self, link: ThreadLink, user_id: str) -> str | None:
        """Whether this person may interrupt, archive, reorder or rename a chat."""
        if user_id == link.requester_user_id or await self._is_admin(user_id):
            return None
        if self.rules.control == "channel":
            return await self.may_start(link.channel_id, user_id, direct=False)
        requester = link.requester_user_id
        return f"Only <@{requester}>, who started this chat, and the bridge's admins can control it."

    async def _may_use(self, user_id: str) -> str | None:
        """The person checks: organisation, guest status, then the allow-list."""
        rules = self.rules
        try:
            user = await self._directory.user(user_id)
            if user is None or user.team_id != rules.team_id or user.is_stranger:
                if not rules.allow_external:
                    return "People from other organizations can't use Coder Agents here."
            elif user.is_guest and not rules.allow_guests:
                return "Guests of this workspace can't use Coder Agents here."
            if rules.allowed_users and not await self._listed(user_id, rules.allowed_users):
                return (
                    "You're not among the people allowed to use Coder Agents here; ask the bridge's operator."
                )
        except SlackError as exc:
            log.warning("could not check %s's access: %s", user_id, exc)
            return "I couldn't check your access with Slack just now, so nothing was sent. Please try again."
        return None

    async def _is_admin(self, user_id: str) -> bool:
        try:
            return await self._listed(user_id, self.rules.admins)
        except SlackError as exc:
            log.warning("could not check whether %s is an admin: %s", user_id, exc)
            return False

    async def _listed(self, user_id: str, entries: frozenset[str]) -> bool:
        """Whether the user is named in ``entries`` directly or through one of its user groups."""
        if user_id in entries:
            return True
        for entry in sorted(entries):
            if entry.startswith("S") and user_id in await self._directory.group_members(entry):
                return True
        return False
