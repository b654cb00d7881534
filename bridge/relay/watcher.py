"""One task that follows Coder's chat-list watch and keeps linked threads current between turns.

Chat streams are open only while a chat works (design, section 3). What happens to a chat outside
of that reaches the bridge through the watch: someone continues the chat in Coder's web UI (its
status turns busy: its follow is woken; so is a chat that starts to wait for its
person, which G2 announces as ``action_required``; so is the card of a turn whose sub-agent, a child
chat, changed status), Coder renames it (the header shows the new
title), or its pull request moves (the thread's one diff summary is rewritten in place). A turn's
end is a status change too, and refreshes the summary. Every change to a linked chat also
refreshes its requester's App Home tab (``relay.home``, debounced there). A chat created with a
``slack_channel`` label is handed to ``relay.pickup``, which follows it there if it may.
end is a status change too, and refreshes the summary. Coder's summary of a finished turn comes
later, on its own (``summary_change``): it goes into the turn's completion line
(``relay.summaries``). Every change to a linked chat also refreshes its requester's App Home tab
(``relay.home``, debounced there), which shows each chat's summary.

Coder sends no snapshot on watch and drops what happens while the socket is down, so after every
(re)connect the chat list is read again and compared with what the thread last showed (stored on
the link, so a restart re-renders only chats that changed while the bridge was away). When
the watch gives up, it is opened again after ``retry_after``; nobody is told in a thread, because
streams, replies and the next turn's end work without it.

Replicas sharing a database watch once for all: the replica holding the ``watch`` lease follows it,
the others wait to take the lease over should that one die or stop.
"""

from __future__ import annotations

import asyncio
import logging
from functools import partial

from bridge.coder.backend import CoderBackend
from bridge.coder.errors import CoderError
from bridge.coder.types import (
    Chat,
    ChatDiff,
    ChatDiffStatus,
    ChatId,
    ConnectedEvent,
    ErrorEvent,
    WatchEvent,
    WatchKind,
)
from bridge.db import repo
from bridge.db.engine import Database
from bridge.db.models import ThreadLink
from bridge.relay.home import Home
from bridge.relay.leases import WATCH, Leases
from bridge.relay.links import Follows, Headers, shown, thread_ref
from bridge.relay.outbox import Outbox, digest, final_text
from bridge.relay.pickup import Pickup, labelled
from bridge.relay.summaries import TurnSummaries
from bridge.slack.blocks import render_diff_summary
from bridge.tasks import TaskGroup, scoped_task

log = logging.getLogger(__name__)

DIFF_SLOT = "diff"


class Watcher:
    """Reacts to watch events of chats linked to Slack threads; other chats are ignored."""

    def __init__(
        self,
        db: Database,
        backend: CoderBackend,
        outbox: Outbox,
        follows: Follows,
        headers: Headers,
        *,
        leases: Leases | None = None,
        home: Home | None = None,
        pickup: Pickup | None = None,
        summaries: TurnSummaries | None = None,
        retry_after: float = 60.0,
    ) -> None:
        self._db = db
        self._leases = leases or Leases(db, "", shared=False)  # without: this process alone
        self._home = home
        self._pickup = pickup
        self._summaries = summaries
        self._backend = backend
        self._outbox = outbox
        self._follows = follows
        self._headers = headers
        self._retry_after = retry_after
        self._tasks = TaskGroup("watch")

    def start(self) -> None:
        """Start following the watch in the background (a no-op for generations without one), once
        this replica holds the watch's lease."""
        self._tasks.spawn("chats", self._lead())

    async def close(self) -> None:
        """Stop following the watch."""
        await self._tasks.cancel()

    async def _lead(self) -> None:
        """Follow the watch while this replica holds its lease; wait to take it over otherwise."""
        leases = self._leases
        while True:
            try:
                lease = await leases.acquire(WATCH)
            except Exception as exc:
                log.warning("could not claim the chat watch: %s", exc)
                lease = None
            if lease is None:
                await asyncio.sleep(leases.heartbeat)
                continue
            try:
                async with (
                    scoped_task("watch", self._run()) as watching,
                    scoped_task("watch-lease", lease.lost.wait()) as lost,
                ):
                    await asyncio.wait([watching, lost], return_when=asyncio.FIRST_COMPLETED)
                    if watching.done():
                        return watching.result()  # it ended by itself (an error is logged by its group)
                log.info("the chat watch is another replica's now")
            finally:
                await leases.release(lease)

    async def _run(self) -> None:
        while True:
            watch = self._backend.watch()
            if watch is None:
                log.info(
                    "Coder's %s API has no chat watch; threads update only while a chat runs",
                    self._backend.generation,
                )
                return
            try:
                async for batch in watch:
                    for event in batch:
                        await self._handle(event)
                return  # closed
            except CoderError as exc:
                log.warning(
                    "the Coder chat watch gave up (%s); opening it again in %.0fs", exc, self._retry_after
                )
            finally:
                await watch.aclose()
            await asyncio.sleep(self._retry_after)

    async def _handle(self, event: WatchEvent | ConnectedEvent | ErrorEvent) -> None:
        """One event; a failure is logged and costs only this event (the next reconnect re-reads all)."""
        try:
            match event:
                case ConnectedEvent():
                    await self._catch_up()
                case ErrorEvent(message=message):
                    log.warning("the Coder chat watch reported: %s", message)
                case WatchEvent():
                    await self._on_change(event)
        except CoderError as exc:
            log.warning("could not act on a Coder watch event (%s): %s", getattr(event, "kind", "?"), exc)
        except Exception:
            log.exception("acting on a Coder watch event failed")

    async def _on_change(self, event: WatchEvent) -> None:
        chat = event.chat
        if chat.parent_chat_id:  # a sub-agent: its line on the card of the turn that spawned it
            await self._follows.agent_changed(ChatId(chat.parent_chat_id), chat.id, chat.status)
            return
        async with self._db.unit() as session:
            link = await repo.find_link_by_chat(session, chat.id)
        if link is not None and self._home is not None:
            self._home.changed(link.requester_user_id)  # archiving and unarchiving included
        if link is None and event.kind is WatchKind.CREATED and self._pickup is not None:
            # A watch event's chat is partial (its labels null) on most builds: read it whole.
            await self._pickup.consider(chat if labelled(chat) else await self._backend.get_chat(chat.id))
        if link is None or link.archived:
            return
        match event.kind:
            case WatchKind.STATUS_CHANGE if chat.status.phase.busy:
                self._follows.wake(chat.id)
            case WatchKind.ACTION_REQUIRED:  # the agent waits for its person: the thread must say so
                self._follows.wake(chat.id)
            case WatchKind.STATUS_CHANGE | WatchKind.DIFF_STATUS_CHANGE:  # a turn's end may move the diff
                await self._show_diff(link, await self._backend.get_chat(chat.id))
            case WatchKind.TITLE_CHANGE:
                await self._retitle(link, chat)
            case WatchKind.SUMMARY_CHANGE:
                await self._summarized(chat)

    async def _summarized(self, hint: Chat) -> None:
        """Coder summarized the chat's last turn: its completion line shows the summary. The turn is
        the one of the chat's newest user message, read now; a chat busy again is on a newer turn,
        whose own summary will come."""
        if self._summaries is None:
            return
        chat = await self._backend.get_chat(hint.id)
        if chat.status.phase.busy or not chat.last_turn_summary:
            return
        recent = await self._backend.recent_messages(chat.id, limit=200)
        turn_id = max((m.id for m in recent if m.role == "user"), default=None)
        if turn_id is None:
            return
        edit = self._summaries.summarized(chat.id, turn_id, chat.last_turn_summary)
        if edit is not None:
            ref, text = edit
            await self._outbox.put(ref, [text])

    async def _catch_up(self) -> None:
        """After a (re)connect: act on what changed while no watch was open, as the chat list shows it."""
        chats = await self._backend.list_chats()
        async with self._db.unit() as session:
            links = await repo.find_links_by_chat(session, [chat.id for chat in chats])
        for chat in chats:
            link = links.get(chat.id)
            if link is None:
                if self._pickup is not None:
                    await self._pickup.consider(chat)
                continue
            if self._home is not None:
                self._home.changed(link.requester_user_id)
            if chat.status.phase.busy:
                self._follows.wake(chat.id)
            if link.shown_title != chat.title:
                await self._retitle(link, chat)
            if chat.diff_status is not None and link.shown_diff != _digest(chat.diff_status):
                await self._show_diff(link, chat)

    async def _retitle(self, link: ThreadLink, chat: Chat) -> None:
        """Coder renamed the chat: so is the thread, unless a person chose its title in Slack."""
        await self._headers.show(thread_ref(link), shown(link, chat), archived=link.archived)
        async with self._db.unit() as session:
            await repo.save_shown_title(session, chat.id, chat.title)

    async def _show_diff(self, link: ThreadLink, chat: Chat) -> None:
        """Render the chat's diff summary into the thread's one ``diff`` slot (posted once, then edited).

        ``chat`` is a full chat (watch events carry only a partial one); the diff is fetched only
        when Coder tracks a diff status, which is what ``GET /diff`` resolves from.
        """
        chat_id, status = chat.id, chat.diff_status
        if status is None:
            return
        diff: ChatDiff | None = None
        try:
            diff = await self._backend.get_diff(chat_id)
        except CoderError as exc:  # e.g. the git provider failed: the status alone still says a lot
            log.warning("could not read the diff of chat %s: %s", chat_id, exc, extra={"chat_id": chat_id})
        text = render_diff_summary(status, diff)
        ref = thread_ref(link)
        texts = [final_text(DIFF_SLOT, text)] if text is not None else []
        if texts:
            self._outbox.reserve(ref, DIFF_SLOT)
        # The summary is stored with the status it shows.
        await self._outbox.put_with(
            ref, texts, partial(repo.save_shown_diff, chat_id=chat_id, digest=_digest(status))
        )


def _digest(status: ChatDiffStatus) -> str:
    return digest(status.model_dump_json())
