"""Edits and deletions of relayed Slack messages, mirrored in Coder and said in the thread.

- A follow-up Coder still holds in its queue: an edit replaces it there, keeping its place (it and
  everything queued after it are taken out and sent again in the same order, as Coder has no edit
  for queued messages); a deletion takes it out of the queue.
- A message already delivered: an edit goes to Coder's message edit, which drops every later
  message and the queue, and the agent starts over from the edited message; a deletion cannot be
  undone in Coder, and the thread says so.

Only the text changes (Slack edits cannot change attachments): the files the message already has in
Coder are kept by id, and text the bridge put before the person's words (a thread's context in a
chat's first message) stays in front of the new words. Messages the bridge never relayed are not
looked at (the caller found no record of them).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from bridge.coder.backend import CoderBackend
from bridge.coder.errors import CoderError, CoderNotFound
from bridge.coder.types import ChatId, InputPart, Message, Part, QueuedMessage
from bridge.db import repo
from bridge.db.engine import Database
from bridge.db.models import InboundMessage, ThreadLink
from bridge.relay.identity import HOW_TO_LINK, Identity
from bridge.relay.links import Follows, thread_ref
from bridge.relay.outbox import Outbox, final_text
from bridge.slack.blocks import render_error
from bridge.slack.failures import render_coder_error, render_warnings

log = logging.getLogger(__name__)

_SEARCH = 200
"""How many recent messages are searched for a delivered message whose Coder id is not recorded."""


def _files(parts: Sequence[Part]) -> list[InputPart]:
    return [InputPart.of_file(p.file_id) for p in parts if p.type == "file" and p.file_id]


def _resend_parts(queued: QueuedMessage) -> list[InputPart]:
    """A queued message's content as input again: its text and its (already uploaded) files."""
    text = [InputPart.of_text(queued.text)] if queued.text.strip() else []
    return text + _files(queued.content)


def _revised(old_text: str, previous: str, text: str, files: Sequence[Part]) -> list[InputPart]:
    """The edited content: what the bridge put before ``previous`` kept, then ``text``, then the files."""
    old, previous = old_text.strip(), previous.strip()
    prefix = old[: len(old) - len(previous)] if previous and old.endswith(previous) else ""
    new_text = (prefix + text).strip()
    return ([InputPart.of_text(new_text)] if new_text else []) + _files(files)


def _find(messages: Sequence[Message], message_id: int | None, previous: str) -> Message | None:
    """The delivered message by id, else the newest user message ending with the previous text."""
    if message_id is not None:
        return next((m for m in messages if m.id == message_id), None)
    wanted = previous.strip()
    if not wanted:
        return None
    return next((m for m in reversed(messages) if m.role == "user" and m.text.strip().endswith(wanted)), None)


class Revisions:
    """Applies edits and deletions of relayed messages to the thread's chat."""

    def __init__(self, db: Database, identity: Identity, outbox: Outbox, follows: Follows) -> None:
        self._db = db
        self._identity = identity
        self._outbox = outbox
        self._follows = follows

    async def _say(self, link: ThreadLink, ts: str, slot: str, text: str) -> None:
        """Answer in the thread durably: stored before the edit or deletion counts as handled."""
        await self._outbox.put(thread_ref(link), [final_text(f"{slot}:{ts}", text)])

    async def _queued(
        self, backend: CoderBackend, chat_id: ChatId, row: InboundMessage
    ) -> list[QueuedMessage] | None:
        """The queue from ``row``'s entry on, or None when ``row`` is not queued (any more)."""
        if row.queued_message_id is None:
            return None
        queue = await backend.queued_messages(chat_id)
        ids = [q.id for q in queue]
        return queue[ids.index(row.queued_message_id) :] if row.queued_message_id in ids else None

    async def edit(self, link: ThreadLink, row: InboundMessage, text: str, previous_text: str) -> None:
        """Mirror an edit of ``row``'s Slack message (``text`` is its new text, the bot's mention
        removed); the thread is told the outcome either way."""
        assert link.chat_id is not None
        chat_id = ChatId(link.chat_id)
        backend = await self._identity.backend_for_link(link)
        if backend is None:
            await self._say(link, row.ts, "edit", render_error(f"Your edit was not sent. {HOW_TO_LINK}"))
            return
        try:
            tail = await self._queued(backend, chat_id, row)
            if tail is not None:
                content = _revised(tail[0].text, previous_text, text, tail[0].content)
                if not content:
                    return
                await self._replace_queued(backend, link, tail, content)
                await self._say(
                    link, row.ts, "edit", "✏️ Edit applied: the queued message was replaced in place."
                )
            else:
                await self._edit_delivered(backend, link, row, text, previous_text)
        except CoderNotFound:
            await self._say(
                link,
                row.ts,
                "edit",
                render_error("Your edit was not sent: this message is no longer in the chat in Coder."),
            )
            return
        except CoderError as exc:
            log.warning("editing in chat %s failed: %s", chat_id, exc, extra={"chat_id": chat_id})
            await self._say(
                link,
                row.ts,
                "edit",
                render_error(f"Your edit was not sent to the agent: {render_coder_error(exc)}."),
            )
            return
        self._follows.follow(chat_id)

    async def _replace_queued(
        self,
        backend: CoderBackend,
        link: ThreadLink,
        tail: Sequence[QueuedMessage],
        content: Sequence[InputPart],
    ) -> None:
        """Take the entry and those after it out of the queue, then queue them again, edited, in order."""
        assert link.chat_id is not None
        assert link.id is not None
        chat_id = ChatId(link.chat_id)
        for queued in tail:
            await backend.delete_queued(chat_id, queued.id)
        replacements = [(tail[0].id, list(content))] + [(q.id, _resend_parts(q)) for q in tail[1:]]
        for index, (old_id, parts) in enumerate(replacements):
            try:
                result = await backend.send_message(chat_id, parts)
            except CoderError as exc:
                lost = len(replacements) - index
                raise CoderError(
                    f"{render_coder_error(exc)}; {lost} queued message(s) were taken out and not queued "
                    "again, please send them again",
                    status=exc.status,
                ) from exc
            async with self._db.unit() as session:
                await repo.replace_queued(
                    session,
                    link_id=link.id,
                    old_queued_id=old_id,
                    coder_message_id=result.message.id if result.message else None,
                    queued_message_id=result.queued_message.id if result.queued_message else None,
                    queued_text=result.queued_message.text if result.queued_message else "",
                )

    async def _edit_delivered(
        self, backend: CoderBackend, link: ThreadLink, row: InboundMessage, text: str, previous_text: str
    ) -> None:
        assert link.chat_id is not None
        assert link.id is not None
        chat_id = ChatId(link.chat_id)
        # By its recorded id; without one (the thread's first message, or a follow-up Coder took
        # from its queue) by the text it had before the edit.
        recent = await backend.recent_messages(chat_id, limit=_SEARCH)
        found = _find(recent, row.coder_message_id, previous_text)
        if found is None:
            await self._say(
                link,
                row.ts,
                "edit",
                render_error("Your edit was not sent: I can't find that message in the chat any more."),
            )
            return
        content = _revised(found.text, previous_text, text, found.content)
        if not content:
            return
        message_id = found.id
        dropped = await backend.queued_messages(chat_id)
        edited = await backend.edit_message(chat_id, message_id, content)
        async with self._db.unit() as session:
            await repo.forget_after(session, link_id=link.id, coder_message_id=message_id)
            await repo.record_inbound(
                session,
                channel_id=row.channel_id,
                ts=row.ts,
                coder_message_id=edited.message.id,
                queued_message_id=None,
            )
        note = "✏️ Edited in Coder: the agent starts over from your edited message."
        # Newer builds name what the edit removed: the edited message's old row and those after it.
        removed = len(set(edited.deleted_message_ids) - {message_id})
        if removed:
            note += f" Coder removed the {removed} later message(s) of the chat."
        if dropped:
            note += (
                f" Coder dropped the {len(dropped)} queued follow-up(s); send them again if they still apply."
            )
        if edited.warnings:
            note += "\n" + render_warnings(edited.warnings)
        await self._say(link, row.ts, "edit", note)

    async def delete(self, link: ThreadLink, row: InboundMessage) -> None:
        """Mirror a deletion: out of the queue if still queued, else say it was already delivered."""
        assert link.chat_id is not None
        chat_id = ChatId(link.chat_id)
        backend = await self._identity.backend_for_link(link)
        if backend is None:
            await self._say(
                link, row.ts, "reply", render_error(f"Your message was not taken out. {HOW_TO_LINK}")
            )
            return
        try:
            tail = await self._queued(backend, chat_id, row)
            if tail is not None:
                await backend.delete_queued(chat_id, tail[0].id)
        except CoderError as exc:
            log.warning(
                "removing a queued message of %s failed: %s", chat_id, exc, extra={"chat_id": chat_id}
            )
            await self._say(
                link,
                row.ts,
                "reply",
                render_error(f"Couldn't take your message out of the queue: {render_coder_error(exc)}."),
            )
            return
        if tail is not None:
            async with self._db.unit() as session:
                await repo.record_inbound(
                    session,
                    channel_id=row.channel_id,
                    ts=row.ts,
                    coder_message_id=None,
                    queued_message_id=None,
                )
            await self._say(
                link, row.ts, "reply", "🗑️ Removed from the queue: the agent will not get that message."
            )
            return
        await self._say(
            link,
            row.ts,
            "reply",
            "ℹ️ A message you deleted had already reached the agent, so it stays in the chat. "
            "Reply with a correction, or react with 🛑 to stop the agent.",
        )
