"""The bridge's reactions and queue notices in a chat's thread, so a glance tells what the agent does.

Three kinds of reaction, each a role of the outbox's ``react``:
- the thread's first message mirrors the chat's status (pending, running, waiting for a person,
  completed, error), one reaction at a time;
- the message that started a turn shows ``working`` while the agent is on it, ``waiting`` while the
  agent waits for a person in the middle of it, then ``done`` or ``failed`` (a turn a person stopped
  counts as failed: it did not finish);
- each follow-up waiting in Coder's queue shows ``queued``, and its "Queued" notice shows its place in
  line with Send next / Remove buttons, both cleared when it leaves the queue.

Everything here is recomputed from the stream (and, at a start, from Coder's queue), so a replay after
a restart ends a turn's reaction as it should: never ``working`` forever.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

from bridge.coder.backend import CoderBackend
from bridge.coder.types import (
    ChatId,
    ChatPhase,
    Message,
    MessageEvent,
    QueuedMessage,
    QueueEvent,
    StreamEvent,
)
from bridge.db import repo
from bridge.db.engine import Database
from bridge.relay.outbox import Outbox, ThreadRef, final_text
from bridge.relay.ports import Button
from bridge.relay.view import ThreadView
from bridge.slack.blocks import render_queued, render_unqueued

STATUS_ROLE = "status"
TURN_ROLE = "turn"
QUEUED_ROLE = "queued"


@dataclass(frozen=True)
class ReactionNames:
    """Emoji names (without colons) of the bridge's reactions; the first four are settings."""

    working: str = "eyes"
    done: str = "white_check_mark"
    failed: str = "x"
    queued: str = "hourglass_flowing_sand"
    pending: str = "hourglass"
    waiting: str = "raised_hand"

    @property
    def turn(self) -> frozenset[str]:
        """Every name a turn's message may carry."""
        return frozenset({self.working, self.waiting, self.done, self.failed})

    @property
    def status(self) -> frozenset[str]:
        """Every name the thread's first message may carry for the chat's status."""
        return frozenset({self.pending, self.working, self.waiting, self.done, self.failed})

    def of_phase(self, phase: ChatPhase) -> frozenset[str]:
        """The status reaction of a phase. None when idle after a turn: the turn's own reaction says how
        it ended (the first turn's message is usually the thread's first message), nor for a status
        this bridge does not know."""
        names = {
            ChatPhase.STARTING: self.pending,
            ChatPhase.WORKING: self.working,
            ChatPhase.NEEDS_USER: self.waiting,
            ChatPhase.DONE: self.done,
            ChatPhase.ERROR: self.failed,
        }
        name = names.get(phase)
        return frozenset({name}) if name else frozenset()


def notice_slot(ts: str) -> str:
    """The slot of the bridge's answer to a person's message (e.g. its "Queued" notice)."""
    return f"reply:{ts}"


def queued_buttons(chat_id: str, queued_id: int) -> tuple[Button, ...]:
    """Send next (promote) and Remove for a queued follow-up (contracts: ``queued_*``)."""
    value = f"{chat_id}:{queued_id}"
    return (
        Button("queued_send_next", "Send next", value, style="primary"),
        Button("queued_remove", "Remove", value),
    )


def header_buttons(
    chat_id: str, url: str, *, busy: bool, archived: bool, archivable: bool
) -> tuple[Button, ...]:
    """The status message's controls: Stop while busy, Archive / Unarchive, Open in Coder."""
    buttons = [Button("chat_stop", "Stop", chat_id, style="danger")] if busy else []
    if archivable:
        buttons.append(
            Button("chat_unarchive", "Unarchive", chat_id)
            if archived
            else Button("chat_archive", "Archive", chat_id)
        )
    buttons.append(Button("chat_open", "Open in Coder", url=url))
    return tuple(buttons)


class Marks:
    """Keeps one followed chat's reactions and queue notices in step with its stream."""

    def __init__(
        self,
        db: Database,
        outbox: Outbox,
        names: ReactionNames,
        ref: ThreadRef,
        chat_id: ChatId,
        backend: CoderBackend,
    ) -> None:
        self._db = db
        self._outbox = outbox
        self._names = names
        self._ref = ref
        self._chat_id = chat_id
        self._backend = backend
        self._turn: int | None = None  # the user message that started the turn shown
        self._turn_ts: str | None = None
        self._turn_found = False  # whether ``_turn_ts`` was looked up (None: no Slack message started it)
        self._queue: list[QueuedMessage] | None = None  # None: not known yet in this run
        self._taken: dict[int, int] = {}  # queued id -> the user message it became
        self._leaving: dict[int, str] = {}  # queued id -> Slack ts, taken but not cleared yet
        self._shown: dict[int, str] = {}  # queued id -> Slack ts of each notice showing a place
        self._lock = asyncio.Lock()  # the stream task and a newly recorded follow-up both show the queue

    @property
    def _has_queue(self) -> bool:
        return self._backend.capabilities.queue == "coder"

    async def start(self, turn: Sequence[Message]) -> None:
        """Pick up after a (re)start: the running turn, and follow-ups Coder took or dropped meanwhile."""
        users = [m for m in turn if m.role == "user"]
        self._turn = users[-1].id if users else None
        if self._has_queue:
            async with self._db.unit() as session:
                waiting = await repo.queued_inbound(session, self._ref.link_id)
            if waiting:
                await self.show_queue()

    async def see(self, batch: Sequence[StreamEvent], view: ThreadView) -> None:
        """After the view applied ``batch``: the turn, status and queue it showed, as reactions."""
        queue_changed = False
        for event in batch:
            match event:
                case MessageEvent(message=message) if message.role == "user" and message.id > (
                    self._turn or 0
                ):
                    await self._new_turn(message)
                case QueueEvent(queue=queue):
                    self._queue, queue_changed = list(queue), True
        status = view.status
        if status is None:
            return
        if view.status_changed:
            names = self._names.of_phase(status.phase)
            self._outbox.react(self._ref, self._ref.thread_ts, STATUS_ROLE, names, among=self._names.status)
        outcome = view.outcome()
        if status.phase.busy:
            await self._mark_turn(self._names.working)
        elif status.phase is ChatPhase.NEEDS_USER:  # not over: the answer lets the agent go on
            await self._mark_turn(self._names.waiting)
        elif outcome is not None:
            failed = outcome.stopped or bool(outcome.failure) or outcome.phase is ChatPhase.ERROR
            await self._mark_turn(self._names.failed if failed else self._names.done)
        # A follow-up seen taken clears its notice at once: no queue_update may follow (a snapshot
        # after a reconnect shows the taken message, not the queue change that came before it).
        if (queue_changed or self._leaving) and self._has_queue:
            await self.show_queue()

    async def _new_turn(self, message: Message) -> None:
        """A user message began a turn; the turn before it (if the chat went straight on) is done."""
        if self._turn is not None:
            await self._mark_turn(self._names.done)
        taken = next((q.id for q in self._queue or () if q.text == message.text), None)
        if taken is not None:  # recorded at once: the turn's reaction finds its Slack message by it
            self._taken[taken] = message.id
            async with self._db.unit() as session:
                ts = (await repo.queued_inbound(session, self._ref.link_id)).get(taken)
                await repo.unqueue(
                    session, link_id=self._ref.link_id, queued_message_id=taken, coder_message_id=message.id
                )
            if ts is not None:
                self._leaving[taken] = ts
        self._turn, self._turn_ts, self._turn_found = message.id, None, False

    async def _mark_turn(self, name: str) -> None:
        if self._turn is None:
            return
        if not self._turn_found:
            self._turn_found = True
            async with self._db.unit() as session:
                self._turn_ts = await repo.turn_message(
                    session, link_id=self._ref.link_id, coder_message_id=self._turn
                )
        if self._turn_ts is not None:  # a turn started in Coder's UI has no Slack message
            self._outbox.react(self._ref, self._turn_ts, TURN_ROLE, {name}, among=self._names.turn)

    async def show_queue(self) -> None:
        """Every queued follow-up with its place and buttons; those that left the queue cleared."""
        async with self._lock:
            if self._queue is None:
                fetched = list(await self._backend.queued_messages(self._chat_id))
                if self._queue is None:  # a queue_update that came meanwhile is newer
                    self._queue = fetched
            async with self._db.unit() as session:
                waiting = await repo.queued_inbound(session, self._ref.link_id)
                # A notice shown in this run counts even when its row no longer says queued: a
                # button or an edit that took the entry out of the queue forgot the row already.
                queued_now = {m.id for m in self._queue}
                gone = {q: ts for q, ts in {**self._shown, **waiting}.items() if q not in queued_now}
                gone.update(self._leaving)
                self._leaving.clear()
                for queued_id in gone:
                    taken = self._taken.get(queued_id)
                    await repo.unqueue(
                        session,
                        link_id=self._ref.link_id,
                        queued_message_id=queued_id,
                        coder_message_id=taken,
                    )
                texts = [
                    final_text(notice_slot(ts), render_unqueued(taken=q in self._taken))
                    for q, ts in gone.items()
                ]
                stored = await self._outbox.stage(session, self._ref, texts)
            self._outbox.show(self._ref, stored)
            for ts in gone.values():
                self._outbox.react(self._ref, ts, QUEUED_ROLE, (), among={self._names.queued})
            self._shown = {}
            for place, queued in enumerate(self._queue, 1):
                at = waiting.get(queued.id)
                if at is None:  # not recorded yet: its relay shows it when it is
                    continue
                self._shown[queued.id] = at
                buttons = queued_buttons(self._chat_id, queued.id)
                self._outbox.set_text(self._ref, notice_slot(at), render_queued(place), buttons=buttons)
                self._outbox.react(
                    self._ref, at, QUEUED_ROLE, {self._names.queued}, among={self._names.queued}
                )
