"""One stream task per live chat: Coder events -> ThreadView -> outbox, with a durable cursor.

A chat is followed while it is busy. When its turn ends the task stops; a follow-up from Slack (or a
restart that finds the chat last seen busy) starts it again, resuming after the stored cursor. The
cursor only advances once the final texts of the messages it passes are shown in Slack, so a crash
can repeat an edit but never skip or double a message.
"""

from __future__ import annotations

import logging

from bridge.coder.backend import CoderBackend
from bridge.coder.errors import CoderAuthError, CoderError, CoderNotFound
from bridge.coder.types import ChatId, ChatStatus, Message
from bridge.db import repo
from bridge.db.engine import Database
from bridge.db.models import ThreadLink
from bridge.relay.outbox import Outbox, ThreadRef, digest
from bridge.relay.view import DRAFT, ThreadView
from bridge.slack.blocks import render_error, render_header, render_outcome
from bridge.slack.mrkdwn import split_markdown
from bridge.tasks import TaskGroup

log = logging.getLogger(__name__)

HEADER_SLOT = "header"


def thread_ref(link: ThreadLink) -> ThreadRef:
    """The outbox address of a linked thread."""
    assert link.id is not None
    return ThreadRef(link_id=link.id, channel=link.channel_id, thread_ts=link.thread_ts)


class Supervisor:
    """Makes sure exactly one stream task follows each chat that has work to show."""

    def __init__(self, db: Database, backend: CoderBackend, outbox: Outbox) -> None:
        self._db = db
        self._backend = backend
        self._outbox = outbox
        self._wanted: set[str] = set()
        self._running: set[str] = set()
        self._views: dict[str, ThreadView] = {}  # the view of each chat followed right now
        self._tasks = TaskGroup("streams")

    @property
    def live(self) -> int:
        """Chats currently followed."""
        return len(self._running)

    async def resume(self) -> int:
        """Follow again every chat that was busy when the bridge last stopped; returns how many."""
        async with self._db.unit() as session:
            links = await repo.busy_links(session)
        for link in links:
            assert link.chat_id is not None
            self.follow(ChatId(link.chat_id))
        return len(links)

    def follow(self, chat_id: ChatId) -> None:
        """Ensure the chat is followed; if its task is about to stop, it runs once more."""
        self._wanted.add(chat_id)
        if chat_id not in self._running:
            self._running.add(chat_id)
            self._tasks.spawn(chat_id, self._follow(chat_id))

    def stopping(self, chat_id: ChatId) -> None:
        """A person is about to interrupt this chat: the turn under way will be reported as stopped."""
        view = self._views.get(chat_id)
        if view is not None:
            view.mark_stopped()

    async def close(self) -> None:
        """Stop following every chat (cursors are saved after every batch already)."""
        self._wanted.clear()
        await self._tasks.cancel()

    async def _follow(self, chat_id: ChatId) -> None:
        try:
            while chat_id in self._wanted:
                self._wanted.discard(chat_id)
                await self._run(chat_id)
        finally:
            self._running.discard(chat_id)

    async def _run(self, chat_id: ChatId) -> None:
        async with self._db.unit() as session:
            link = await repo.find_link_by_chat(session, chat_id)
            cursor = await repo.get_cursor(session, chat_id)
        if link is None:
            log.warning("not following chat %s: no Slack thread is linked to it", chat_id)
            return
        ref = thread_ref(link)
        try:
            chat = await self._backend.get_chat(chat_id)
            turn = await self._turn(chat_id, cursor) if chat.status.phase.busy else []
            draft_shown = await self._outbox.has_slot(ref, DRAFT)
            if (
                draft_shown
                and not chat.status.phase.busy
                and not self._backend.capabilities.replies_outlive_connection
            ):
                # Its reply ended with the connection that carried it, so no later message completes
                # this draft: it keeps its text under a key of its own (as ``ThreadView.finish`` does).
                await self._outbox.rename(ref, DRAFT, f"partial:{cursor or 0}")
                draft_shown = False
            view = self._views[chat_id] = ThreadView(after_id=cursor, turn=turn, draft_shown=draft_shown)
            await self._consume(ref, chat_id, chat.title, view)
            self._tell_requester(ref, link.requester_user_id, view)
        except CoderAuthError as exc:
            self._notify(ref, f"Coder refused the bridge's token while following this chat: {exc}")
        except CoderNotFound:
            self._notify(ref, "This chat no longer exists in Coder (or the bridge may not see it).")
        except CoderError as exc:
            log.warning("stream of chat %s gave up: %s", chat_id, exc, extra={"chat_id": chat_id})
            self._notify(
                ref,
                f"Lost the connection to Coder ({exc}). I'll pick up again when you reply in this thread.",
            )
        finally:
            self._views.pop(chat_id, None)

    async def _turn(self, chat_id: ChatId, cursor: int | None) -> list[Message]:
        """The running turn's messages persisted up to the cursor, from its user message on."""
        if cursor is None:
            return []
        turn: list[Message] = []
        for message in await self._backend.recent_messages(chat_id):
            if message.id > cursor:
                break
            if message.role == "user":
                turn = []
            turn.append(message)
        return turn

    async def _consume(self, ref: ThreadRef, chat_id: ChatId, title: str, view: ThreadView) -> None:
        stream = self._backend.stream(chat_id, after_id=view.last_id or None)
        newest: int | None = None  # Coder's newest message id, asked once the chat looks idle
        try:
            async for batch in stream:
                view.apply(batch)
                await self._publish(ref, chat_id, title, view)
                if view.status is None or view.busy:
                    newest = None
                    continue
                # A snapshot reports the status before its messages, so idle alone does not mean the
                # thread is complete; Coder is asked again only once the view reached its last answer.
                if newest is None or view.last_id >= newest:
                    newest = await self._newest_id(chat_id)
                if view.last_id >= newest:
                    view.finish()
                    await self._publish(ref, chat_id, title, view)
                    return
        finally:
            await stream.aclose()

    async def _newest_id(self, chat_id: ChatId) -> int:
        """The id of the chat's newest persisted message (0 when it has none)."""
        newest = await self._backend.recent_messages(chat_id, limit=1)
        return newest[-1].id if newest else 0

    async def _publish(self, ref: ThreadRef, chat_id: ChatId, title: str, view: ThreadView) -> None:
        """Apply the view's renames and changed blocks, wait for final texts, then save the cursor."""
        for old, new in view.renames:
            await self._outbox.rename(ref, old, new)
        finals: list[str] = []
        for key in view.changed:
            block = view.block(key)
            if not block.text:  # a draft shown before a restart, whose text this process never saw
                continue
            for index, part in enumerate(split_markdown(block.text)):
                slot = key if index == 0 else f"{key}#{index}"
                self._outbox.set_text(ref, slot, part, final=block.final)
                if block.final:
                    finals.append(slot)
        if view.status_changed and view.status is not None:
            self._outbox.set_text(  # an idle status is what people wait for: send it first
                ref, HEADER_SLOT, self._header(chat_id, title, view.status), final=not view.busy
            )
        await self._outbox.delivered(ref, finals)
        await self._save(chat_id, view)

    def _header(self, chat_id: ChatId, title: str, status: ChatStatus) -> str:
        return render_header(title=title, url=self._backend.chat_url(chat_id), status=status)

    async def _save(self, chat_id: ChatId, view: ThreadView) -> None:
        """Persist the cursor and status when they moved (most batches are deltas that move neither)."""
        moved = view.last_id > view.saved_id
        if not moved and not view.status_changed:
            return
        async with self._db.unit() as session:
            if moved:
                await repo.save_cursor(session, chat_id, view.last_id)
            if view.status_changed and view.status is not None:
                await repo.set_status(
                    session, chat_id, status=view.status.name, phase=view.status.phase.value
                )
        view.saved_id = view.last_id

    def _tell_requester(self, ref: ThreadRef, user: str, view: ThreadView) -> None:
        """Mention the person who started the chat once the agent is idle: one line per finished
        turn (keyed by its user message, so a replay never mentions twice)."""
        outcome = view.outcome()
        if outcome is None:
            return
        text = render_outcome(
            user,
            phase=outcome.phase,
            touched=outcome.touched,
            reason=outcome.failure,
            stopped=outcome.stopped,
        )
        self._outbox.set_text(ref, f"outcome:{outcome.turn_id}", text, final=True)

    def _notify(self, ref: ThreadRef, text: str) -> None:
        self._outbox.set_text(ref, f"notice:{digest(text)[:12]}", render_error(text), final=True)
