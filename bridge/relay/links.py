"""A thread's identity and header: the seam between the inbound side and the streams that follow chats.

The inbound side (messages, controls, renames, edits, the chat-list watcher) needs three things of a
linked thread's output, and gets them here rather than from the supervisor, so that the way chats
are followed (one task each today, a lease per chat across replicas next) can change without
touching it:

- where the thread is (``thread_ref``) and how it shows its chat (``shown``: a title chosen in Slack
  wins over Coder's);
- its header, the bridge's status message at the top (``HEADER_SLOT``), shown anew by ``Headers``
  when a person changes what it says (a new chat, a rename, an archive), rendered the same way the
  stream renders it on every status change;
- ``Follows``: what the inbound side tells the streams (follow this chat, it is being stopped, a
  follow-up was recorded). The supervisor implements it; ``app`` hands it in.

The header of a chat followed right now is fresher in its stream than in any ``Chat`` read meanwhile
(the stream's status may be ahead of Coder's REST answer), and a person's rename or archive must
reach the stream's next header, or it would show the old title again. So a follow registers its
``FollowedHeader`` here while it runs, and ``Headers.show`` reads and updates that.
"""

from __future__ import annotations

from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from bridge.coder.types import Chat, ChatId, ChatStatus
from bridge.db.models import ThreadLink
from bridge.relay.identity import Identity
from bridge.relay.marks import header_buttons
from bridge.relay.outbox import Outbox, ThreadRef, final_text
from bridge.relay.outbox.threads import thread_ref as thread_ref
from bridge.relay.ports import Button
from bridge.relay.sessions import SessionMirror
from bridge.relay.slots import SlotKey
from bridge.relay.view import ThreadView
from bridge.slack.blocks import render_header
from bridge.slack.failures import render_reason

HEADER_SLOT = SlotKey.header().encode()


def shown(link: ThreadLink, chat: Chat) -> Chat:
    """The chat as its thread shows it: titled as a person chose in Slack where Coder keeps its own."""
    return chat.model_copy(update={"title": link.chosen_title}) if link.chosen_title else chat


class Follows(Protocol):
    """What the inbound side tells the streams that follow chats."""

    def follow(self, chat_id: ChatId) -> None:
        """The chat has work to show (a message was sent to it): make sure it is followed."""

    def wake(self, chat_id: ChatId) -> None:
        """Coder says the chat has work: follow it unless a stream that will report it is open."""

    def stopping(self, chat_id: ChatId) -> None:
        """A person is about to interrupt the chat: the turn under way will be reported as stopped."""

    async def agent_changed(self, parent_id: ChatId, child_id: ChatId, status: ChatStatus) -> None:
        """A sub-agent's chat changed status: the card of its parent's turn shows it."""

    def answering(self, chat_id: ChatId, call_id: str, user_id: str) -> None:
        """A person in Slack is answering the chat's question (tool call ``call_id``): the thread says
        who, once Coder has the answer."""

    async def queue_changed(self, chat_id: ChatId) -> None:
        """A follow-up was recorded as queued: its notice and reaction show its place."""

    async def recorded(self, chat_id: ChatId, coder_message_id: int) -> None:
        """A follow-up was recorded as delivered: the turn it started gets its reaction."""


class FollowedHeader:
    """The header of a chat followed right now: a title or archive change made while its stream runs
    is kept here for the stream's next header, and ``view`` (the stream's, once it has one) knows the
    freshest status."""

    def __init__(self, title: str, *, archived: bool) -> None:
        self.title = title
        self.archived = archived
        self.view: ThreadView | None = None


class Headers:
    """Renders and shows the header of every linked thread."""

    def __init__(self, identity: Identity, outbox: Outbox, sessions: SessionMirror | None = None) -> None:
        self._identity = identity
        self._outbox = outbox
        self._sessions = sessions
        self._followed: dict[str, FollowedHeader] = {}

    def follow(self, chat_id: ChatId, title: str, *, archived: bool) -> FollowedHeader:
        """A stream follows the chat from now on: the header it shows, which ``show`` updates."""
        header = self._followed[chat_id] = FollowedHeader(title, archived=archived)
        return header

    def unfollow(self, chat_id: ChatId) -> None:
        """The stream of the chat ended: its header is shown from what Coder says again."""
        self._followed.pop(chat_id, None)

    async def show(self, ref: ThreadRef, chat: Chat, *, archived: bool) -> None:
        """Show the chat's header anew (a new chat, a new title, archived or not), with the freshest
        status known. An idle one is stored first, as the stream stores the header that ends a turn:
        stored texts are shown in the order they were stored, so a rename seen while that one commits
        is not overwritten by it, and a crash before Slack shows it does not lose it. A thread's
        first header is stored too, busy or not: after a crash before Slack showed it, the texts
        stored after it must not go out above it."""
        followed = self._followed.get(chat.id)
        view = followed.view if followed is not None else None
        if followed is not None:
            followed.title, followed.archived = chat.title, archived
        status = view.status if view is not None and view.status is not None else chat.status
        failed = view.failure if view is not None else chat.last_error
        header, buttons = self.render(chat.id, chat.title, status, render_reason(failed), archived=archived)
        if self._sessions is not None:
            self._sessions.retitle(ref, chat.title)
        if status.phase.busy and await self._outbox.has_slot(ref, HEADER_SLOT):
            self._outbox.set_text(ref, HEADER_SLOT, header, buttons=buttons)
        else:
            await self._outbox.put_with(ref, [final_text(HEADER_SLOT, header, buttons)], _write_nothing)

    def render(
        self, chat_id: ChatId, title: str, status: ChatStatus, reason: str = "", *, archived: bool
    ) -> tuple[str, tuple[Button, ...]]:
        """The header's text and its buttons (Stop only while the agent works)."""
        shared = self._identity.shared
        url = shared.chat_url(chat_id)
        archivable = shared.capabilities.archive != "refuse"
        buttons = header_buttons(
            chat_id, url, busy=status.phase.busy, archived=archived, archivable=archivable
        )
        return render_header(title=title, url=url, status=status, reason=reason), buttons


async def _write_nothing(_: AsyncSession) -> None:
    """A stored text's transaction with nothing else in it."""
