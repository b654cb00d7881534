"""Chats made in Coder with a ``slack_channel`` label (and maybe ``slack_thread``) are followed there.

A team routes agents started from Coder's UI, its API or CI into Slack by labelling them. The labels
come from whoever made the chat, so they decide nothing by themselves: the bridge posts into a
channel on a chat's say-so only when the access policy lets the chat's owner use that channel (in
linked mode, a Slack person who linked that Coder account; in shared mode, the bridge's own Coder
account, where only the channel allow-list applies), and only where the bot is already a member
(Slack refuses its posts elsewhere).
A label naming a thread linked to another chat is refused; so is one naming another workspace, or a
direct message (a person's conversation with the bot is not a place others may post into). Each
refusal is logged once per chat and process, never told in Slack (nobody asked there); the chat is
considered again after the watch reconnects. Chats the bridge started from Slack carry the same
labels; they are linked already, or being started (the thread is claimed), and are left alone.

Who stands for the thread (``requester``: notified when a turn ends, in control as of a chat they
started) is the owner's Slack person in linked mode. In shared mode it is the person a
``slack_user`` label names when the policy lets them start chats in that channel, else the bot
itself (then only the bridge's admins control the chat).
"""

from __future__ import annotations

import logging

from bridge.coder.backend import CoderBackend
from bridge.coder.errors import CoderError
from bridge.coder.types import Chat, ChatId
from bridge.db import repo
from bridge.db.engine import Database
from bridge.relay.adoption import THREAD_TAKEN, Adoption, NotAdopted, Place
from bridge.relay.identity import Identity
from bridge.relay.policy import Act, Policy, direct_channel
from bridge.slack.workspaces import Bots, WorkspaceKey, acting_for

log = logging.getLogger(__name__)

CHANNEL_LABEL = "slack_channel"


def labelled(chat: Chat) -> bool:
    """Whether the chat's labels ask for it to be followed in a Slack channel."""
    return bool(chat.labels.get(CHANNEL_LABEL)) and not chat.archived


class Pickup:
    """Follows labelled chats in their channel, as the access policy allows."""

    def __init__(
        self,
        db: Database,
        adoption: Adoption,
        identity: Identity,
        policy: Policy,
        *,
        installation: WorkspaceKey,
        bots: Bots,
    ) -> None:
        self._db = db
        self._adoption = adoption
        self._identity = identity
        self._policy = policy
        self._installation = installation
        """The bridge's own installation (``SLACK_BOT_TOKEN``'s): its workspace is a label's default, its
        org the one a label's workspace is looked for in; empty when installed through OAuth."""
        self._bots = bots
        """Which workspaces the bridge serves, and its bot in each (who stands for a thread nobody
        in particular asked for)."""
        self._skipped: set[ChatId] = set()
        self._own_user_id: str | None = None

    async def consider(self, chat: Chat) -> None:
        """Follow ``chat`` where its labels say, if they say so and it may be; else log why, once.
        ``chat`` must be a full chat (a watch event's carries no labels). Coder failing costs only
        this chat, until the next time it is considered."""
        if not labelled(chat):
            return
        try:
            await self._consider(chat)
        except CoderError as exc:
            log.warning(
                "could not follow chat %s as its labels ask: %s", chat.id, exc, extra={"chat_id": chat.id}
            )

    async def _consider(self, chat: Chat) -> None:
        if await self._adoption.tied(chat) is not None:
            return
        labels = chat.labels
        team = labels.get("slack_team") or self._installation.team_id
        workspace = WorkspaceKey(self._installation.enterprise_id, team)
        if team is None or await self._bots.bot(workspace.enterprise_id, team) is None:
            self._skip(chat, "its slack_team label names no workspace the bridge serves")
            return
        with acting_for(workspace):  # the thread's Slack calls are that workspace's
            await self._follow(chat, Place(team, labels[CHANNEL_LABEL], labels.get("slack_thread") or None))

    async def _follow(self, chat: Chat, place: Place) -> None:
        if direct_channel(place.channel_id):
            self._skip(chat, "its slack_channel label names a direct message, not a channel")
            return
        if place.thread_ts is not None and await self._being_started(place):
            return  # the bridge is starting this very chat from that thread
        chosen = await self._requester(chat, place)
        if isinstance(chosen, str):
            self._skip(chat, chosen)
            return
        requester, backend = chosen
        result = await self._adoption.adopt(chat, place, requester=requester, by=None, backend=backend)
        if isinstance(result, NotAdopted):
            self._skip(chat, _why(result, place))

    async def _being_started(self, place: Place) -> bool:
        """Whether the thread is claimed for a chat not created yet (one started from Slack)."""
        async with self._db.unit() as session:
            link = await repo.find_link_by_thread(
                session, team_id=place.team_id, channel_id=place.channel_id, thread_ts=str(place.thread_ts)
            )
        return link is not None and link.chat_id is None and link.phase == repo.STARTING_PHASE

    async def _requester(self, chat: Chat, place: Place) -> tuple[str, CoderBackend] | str:
        """Who stands for the thread and the backend that reads the chat, or why nobody may."""
        channel_id = place.channel_id
        named = chat.labels.get("slack_user", "")
        if self._identity.linked:
            async with self._db.unit() as session:
                links = await repo.find_user_links_of_coder_user(
                    session, team_id=place.team_id, coder_user_id=chat.owner_id
                )
            people = [link.slack_user_id for link in links]
            if not people:
                return "its Coder owner has linked no Slack account here"
            person = named if named in people else people[0]
            refusal = await self._policy.refusal(person, Act.START, channel_id=channel_id)
            if refusal is not None:
                return f"its owner <@{person}> may not use that channel: {refusal}"
            backend = await self._identity.backend_for(place.team_id, person)
            if backend is None:
                return f"its owner <@{person}> has no working Coder link"
            return person, backend
        shared = self._identity.shared
        if self._own_user_id is None:
            self._own_user_id = (await shared.whoami()).id
        if chat.owner_id and chat.owner_id != self._own_user_id:
            return "it belongs to another Coder account than the bridge's own"
        refusal = self._policy.channel_refusal(channel_id)
        if refusal is not None:
            return refusal
        if named and await self._policy.refusal(named, Act.START, channel_id=channel_id) is None:
            return named, shared
        return await self._bots.user_id(), shared

    def _skip(self, chat: Chat, reason: str) -> None:
        """Log why, the first time only: a chat is considered again at every reconnect of the watch
        (the bot may have been invited meanwhile)."""
        if chat.id in self._skipped:
            return
        self._skipped.add(chat.id)
        log.info(
            "not following chat %s in Slack as its labels ask: %s",
            chat.id,
            reason,
            extra={"chat_id": chat.id},
        )


def _why(result: NotAdopted, place: Place) -> str:
    if result.code == THREAD_TAKEN:
        return f"thread {place.thread_ts} of {place.channel_id} follows another chat"
    if result.not_member:
        return f"the bot is not a member of {place.channel_id} ({result.code})"
    return f"Slack refused ({result.code})"
