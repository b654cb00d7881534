"""A person renamed a thread's Slack Agent Session: the chat takes the title in Coder where it can.

Coder → Slack is ``SessionMirror.retitle``; this is the way back (``agent_session_title_changed``).
Renaming is a control of the chat: the access policy decides who may (as for interrupt and archive),
and anyone refused is told privately while the session gets its title back. Where Coder takes the
title (``capabilities.rename``; some builds read it and ignore it, which only reading the chat back
shows) the thread follows Coder from then on, as before. Where it cannot, the person's title is
stored on the link (``chosen_title``) and the thread's header, session and App Home show it in place
of Coder's, whatever Coder renames the chat to later; the person is told once, privately, that Coder
keeps its own title.

Slack reports a person's rename only, also of a title the bridge set; an event carrying the title the
session already has (a repeat, or an app-made change on a Slack that reports those) or coming from
the bot itself changes nothing, so no rename travels back and forth.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from bridge.coder.backend import CoderBackend
from bridge.coder.errors import CoderAuthError, CoderError
from bridge.coder.types import Chat, ChatId
from bridge.db import repo
from bridge.db.engine import Database
from bridge.db.models import ThreadLink
from bridge.relay.home import Home
from bridge.relay.identity import Identity
from bridge.relay.intake import Intake
from bridge.relay.leases import Leases, Turns
from bridge.relay.links import Headers, thread_ref
from bridge.relay.policy import Act, Policy
from bridge.relay.sessions import SessionMirror
from bridge.slack.failures import render_coder_error
from bridge.slack.workspaces import Bots
from bridge.tasks import TaskGroup

log = logging.getLogger(__name__)

KEPT_IN_SLACK = (
    "Coder keeps its own title for this chat (this Coder version cannot rename chats), so “{title}” "
    "is the thread's title here in Slack only."
)
_UNCHANGED = "The title stays as it was."
_UNLINKED = f"<@{{requester}}>'s Coder account is no longer linked, so I can't rename the chat. {_UNCHANGED}"


@dataclass(frozen=True)
class SessionRename:
    """A person renamed a thread's Slack Agent Session (``agent_session_title_changed``)."""

    event_id: str
    user_id: str
    team_id: str
    channel_id: str
    thread_ts: str
    title: str


class Renames:
    """Carries a person's session rename over to the chat, in the background."""

    def __init__(
        self,
        db: Database,
        identity: Identity,
        policy: Policy,
        headers: Headers,
        sessions: SessionMirror,
        intake: Intake,
        *,
        bots: Bots,
        home: Home | None = None,
        leases: Leases | None = None,
    ) -> None:
        self._db = db
        self._identity = identity
        self._policy = policy
        self._headers = headers
        self._sessions = sessions
        self._intake = intake
        self._bots = bots
        self._home = home
        self._turns = Turns(leases or Leases(db, "", shared=False), "rename:")  # without: this process alone
        self._tasks = TaskGroup("renames")

    def submit(self, rename: SessionRename) -> None:
        """Handle a recorded rename in the background (Slack wants its ack at once)."""
        self._tasks.spawn(rename.event_id, self._handle(rename))

    async def _handle(self, rename: SessionRename) -> None:
        # Taken before the first await: a thread's renames reach Coder in the order people made them.
        async with self._turns.hold(rename.channel_id, rename.thread_ts):
            await self._intake.settle(rename.event_id, self._rename(rename))

    async def drain(self, timeout: float) -> bool:
        """Let renames in flight finish (shutdown)."""
        return await self._tasks.wait(timeout)

    async def close(self) -> None:
        """Cancel renames still in flight (their events are handled at the next start)."""
        await self._tasks.cancel()

    async def _rename(self, rename: SessionRename) -> None:
        title = rename.title.strip()
        known = self._sessions.title_of(rename.channel_id, rename.thread_ts)
        if title == known or rename.user_id == await self._bots.user_id():
            log.debug("session of %s/%s: no new title", rename.channel_id, rename.thread_ts)
            return
        async with self._db.unit() as session:
            link = await repo.find_link_by_thread(
                session, team_id=rename.team_id, channel_id=rename.channel_id, thread_ts=rename.thread_ts
            )
        if link is None or link.chat_id is None:
            log.debug("a session rename in %s/%s, which has no chat", rename.channel_id, rename.thread_ts)
            return
        # Before Coder is asked: its title_change may reach the watcher, and the session, first.
        self._sessions.renamed(thread_ref(link), title)
        if not title:  # Slack's titles have 1-200 characters: nothing to rename to
            await self._refuse(link, rename, "")
            return
        refusal = await self._policy.refusal(rename.user_id, Act.CONTROL, link=link)
        if refusal is not None:
            await self._refuse(link, rename, f"{refusal} {_UNCHANGED}")
            return
        backend = await self._identity.backend_for_link(link)
        if backend is None:
            await self._refuse(link, rename, _UNLINKED.format(requester=link.requester_user_id))
            return
        try:
            chat = await self._coder_title(backend, ChatId(link.chat_id), title)
        except CoderError as exc:
            log.warning("renaming chat %s failed: %s", link.chat_id, exc, extra={"chat_id": link.chat_id})
            told = isinstance(exc, CoderAuthError) and await self._identity.refused(
                link.team_id, link.requester_user_id, link.channel_id, link.thread_ts
            )
            await self._refuse(
                link,
                rename,
                "" if told else f"Couldn't rename the chat in Coder: {render_coder_error(exc)}. {_UNCHANGED}",
            )
            return
        await self._show(link, rename, chat, title)

    async def _coder_title(self, backend: CoderBackend, chat_id: ChatId, title: str) -> Chat:
        """The chat after asking Coder to take ``title``, where its generation might."""
        if backend.capabilities.rename == "bridge":
            return await backend.get_chat(chat_id)
        return await backend.rename(chat_id, title)

    async def _show(self, link: ThreadLink, rename: SessionRename, chat: Chat, title: str) -> None:
        """The thread takes the new title: Coder's from now on if it took it, else the person's."""
        taken = chat.title == title
        chosen = "" if taken else title
        assert link.id is not None
        async with self._db.unit() as session:
            if taken:
                await repo.save_shown_title(session, chat.id, title)
            if link.chosen_title != chosen:
                await repo.choose_title(session, link.id, chosen)
        await self._headers.show(  # and the session, which Slack shows with this title already
            thread_ref(link), chat.model_copy(update={"title": title}), archived=link.archived
        )
        if self._home is not None:
            self._home.changed(link.requester_user_id)
        log.info(
            "chat %s renamed from Slack (%s)",
            chat.id,
            "in Coder" if taken else "kept in Slack",
            extra={"chat_id": chat.id},
        )
        if not taken and not link.chosen_title:  # once per thread: later renames say nothing new
            await self._identity.whisper(
                link.channel_id, rename.user_id, link.thread_ts, KEPT_IN_SLACK.format(title=title)
            )

    async def _refuse(self, link: ThreadLink, rename: SessionRename, reason: str) -> None:
        """The session gets its title back; the person is told why, if there is something to say."""
        self._sessions.restore(thread_ref(link))
        if reason:
            log.info("refused a session rename of %s in %s: %s", rename.user_id, link.channel_id, reason)
            await self._identity.whisper(link.channel_id, rename.user_id, link.thread_ts, reason)
