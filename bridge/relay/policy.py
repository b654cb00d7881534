"""Who may use the bridge where: the access policy of ``docs/security.md``, asked by every path.

``Policy.refusal`` is the one question every path asks, at the time of the act, naming what the
person wants to do (``Act``): a mention, a DM or ``/coder new`` starts a chat, a reply (or an edit or
deletion of one) follows one up, a reaction, a button, ``!now``, a rename or ``/coder archive``
controls one, and ``/coder link``, ``unlink``, ``list``, ``status`` and the App Home tab concern the
person's own account. The answer is ``None`` (allowed) or the reason to tell the person privately;
nothing refused reaches Coder.

Who is a member depends on the installation that received the act (``bridge.slack.workspaces``):
a workspace install's members are its team's people; an Enterprise Grid org-wide install's are the
people of every workspace of its org. ``BRIDGE_ALLOWED_TEAMS`` limits the workspaces served, both
the one the act happens in and the person's own.

Who the person is comes first, for everyone, the requester of a chat included: someone the operator
no longer allows (moved out of ``BRIDGE_ALLOWED_USERS``, now a guest, from another organisation) loses
what they started too, and so does everyone in a channel taken off ``BRIDGE_ALLOWED_CHANNELS``. Only
the bridge's admins control any chat regardless. The defaults are the safe ones: guests and people
from other organisations (Slack Connect) are refused, only the requester and admins control a chat,
and in linked mode only the requester may add to their chat (a colleague's words would otherwise run
with the requester's Coder identity). When Slack cannot be asked who someone is, the answer is no,
with a reason.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

from bridge.db.models import ThreadLink
from bridge.relay.ports import SlackDirectory, SlackError, SlackUser
from bridge.slack.workspaces import BotTokens, WorkspaceKey, acting

log = logging.getLogger(__name__)

ControlPolicy = Literal["requester", "channel"]


class Act(StrEnum):
    """What a person asks of the bridge; every entry point names one."""

    START = "start"
    """A mention, a DM, ``/coder new``, or a creation cut short and resumed."""
    FOLLOW_UP = "follow up"
    """A reply in a chat's thread, or an edit or deletion of a relayed one."""
    CONTROL = "control"
    """Stop, archive, unarchive, promote, remove, rename, ``!now``, send-now, ``/coder archive``."""
    ACCOUNT = "account"
    """``/coder link``, ``unlink``, ``list``, ``status``, the App Home tab: the person's own."""


@dataclass(frozen=True)
class Rules:
    """The operator's access settings (``BRIDGE_ALLOWED_*``, ``BRIDGE_ALLOW_*``, ``BRIDGE_ADMINS``…)."""

    team_id: str | None
    """The workspace of the bot's installation (None: an org-wide install): users of any other team
    are external. With several installations, the one serving the act's workspace counts instead."""
    enterprise_id: str | None = None
    """The installation's Enterprise Grid org: under an org-wide install, people of every workspace of
    the org are members, not external."""
    allowed_teams: frozenset[str] = frozenset()
    """Workspace (``T…``) and org (``E…``) ids whose people, in whose channels, may use the bridge;
    empty: every workspace the app is installed in."""
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


def _member(user: SlackUser, installation: WorkspaceKey) -> bool:
    """Whether the person belongs to the installation's workspace: its team's member, or under an
    org-wide install a member of any workspace of its org. A Slack Connect partner never does."""
    if user.is_stranger:
        return False
    if installation.team_id is not None:
        return user.team_id == installation.team_id
    return installation.enterprise_id is not None and user.enterprise_id == installation.enterprise_id


def direct_channel(channel_id: str) -> bool:
    """Whether a conversation is a direct message with the bot (Slack's ``D…`` ids)."""
    return channel_id.startswith("D")


class Policy:
    """Applies ``Rules`` with what Slack says about people (``SlackDirectory``)."""

    def __init__(self, rules: Rules, directory: SlackDirectory, installs: BotTokens | None = None) -> None:
        self.rules = rules
        self._directory = directory
        self._installs = installs

    async def refusal(
        self,
        user_id: str,
        act: Act,
        *,
        link: ThreadLink | None = None,
        channel_id: str = "",
        direct: bool = False,
    ) -> str | None:
        """None when this person may do ``act`` now, else why not. ``link`` is the chat acted on (its
        channel is where the act happens); without one, ``channel_id`` is (``direct`` for a DM)."""
        if act is Act.CONTROL and await self._is_admin(user_id):
            return None
        refused = await self._may_use(user_id)
        if refused is not None or act is Act.ACCOUNT:
            return refused
        if link is not None:
            channel_id, direct = link.channel_id, direct_channel(link.channel_id)
        refused = self.channel_refusal(channel_id, direct=direct)
        if refused is not None:
            return refused
        if link is None or act is Act.START or user_id == link.requester_user_id:
            return None
        requester = link.requester_user_id
        if act is Act.FOLLOW_UP:
            if not self.rules.linked:
                return None
            return (
                f"Only <@{requester}>, who started this chat, can add to it: it runs with their "
                "own Coder account. Mention me in a new thread to start a chat of your own."
            )
        if self.rules.control == "channel":
            return None
        return f"Only <@{requester}>, who started this chat, and the bridge's admins can control it."

    def channel_refusal(self, channel_id: str, *, direct: bool = False) -> str | None:
        """None when the bridge serves this conversation, else why not: the one question for a chat
        that asks to be followed in a channel on its own say-so, owned by the bridge's own identity."""
        allowed = self.rules.allowed_channels
        if allowed and not direct and channel_id not in allowed:
            return "I don't take tasks in this channel: the bridge's operator limited it to certain channels."
        return None

    async def _installation(self) -> WorkspaceKey:
        """The installation that received the act: the one serving the workspace acted for."""
        rules = self.rules
        workspace = acting()
        if workspace is not None and self._installs is not None:
            install = await self._installs.bot(workspace.enterprise_id, workspace.team_id)
            if install is not None:
                return install.key
        return WorkspaceKey(rules.enterprise_id, rules.team_id)

    def _team_refusal(self, user: SlackUser | None) -> str | None:
        """``BRIDGE_ALLOWED_TEAMS``: both the workspace acted in and the person's own must be listed
        (by their team or their org)."""
        allowed = self.rules.allowed_teams
        if not allowed:
            return None
        workspace = acting() or WorkspaceKey(self.rules.enterprise_id, self.rules.team_id)
        places = [(workspace.team_id, workspace.enterprise_id)]
        if user is not None:
            places.append((user.team_id, user.enterprise_id))
        if all(team in allowed or (org is not None and org in allowed) for team, org in places):
            return None
        return "Coder Agents isn't available here: the bridge's operator limited it to certain workspaces."

    async def _may_use(self, user_id: str) -> str | None:
        """The person checks: workspace, organisation, guest status, then the allow-list."""
        rules = self.rules
        try:
            user = await self._directory.user(user_id)
            refused = self._team_refusal(user)
            if refused is not None:
                return refused
            if user is None or not _member(user, await self._installation()):
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
