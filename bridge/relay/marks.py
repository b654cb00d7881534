"""The bridge's reactions and queue notices in a chat's thread, so a glance tells what the agent does.

Three kinds of reaction, each a role of the outbox's ``react``:
- the thread's first message mirrors the chat's status (pending, running, waiting for a person,
  completed, error), one reaction at a time;
- the message that started a turn shows ``working`` while the agent is on it, ``waiting`` while the
  agent waits for a person in the middle of it, then ``done`` or ``failed`` (a turn a person stopped
  counts as failed: it did not finish);
- each follow-up waiting in Coder's queue shows ``queued``, and its "Queued" notice shows its place in
  line with Send next / Remove buttons, both cleared when it leaves the queue.

Everything here is recomputed from the stream (and, at a start, from Coder's queue). A reaction is
stored in the transaction that decides it: a turn's and the status's with the batch's cursor (the
chat's follow stores what ``see`` returns), a queued follow-up's with its row leaving the queue. So a
crash before that transaction replays the batch and decides again, and one after it finds the wish
stored (the outbox replays it): never ``working`` forever, nor ⏳ on a follow-up that left the queue.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
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
from bridge.relay.output import ReactionWish
from bridge.relay.ports import Button
from bridge.relay.slots import SlotKey
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
        self._turn_missed: str | None = None  # the reaction ``_turn_ts`` was last looked up for in vain
        self._queue: list[QueuedMessage] | None = None  # None: not known yet in this run
        self._taken: dict[int, int] = {}  # queued id -> the user message it became
        self._leaving = False  # a follow-up was taken since the queue was last shown
        self._shown: dict[int, str] = {}  # queued id -> Slack ts of each notice showing a place
        self._wished: dict[tuple[str, str], ReactionWish] = {}  # (ts, role) -> the reaction last decided
        self._lock = asyncio.Lock()  # the stream task and a newly recorded follow-up both show the queue
        self._turn_lock = asyncio.Lock()  # the stream task and a newly recorded follow-up both mark the turn

    @property
    def _has_queue(self) -> bool:
        return self._backend.capabilities.queue == "coder"

    async def start(self, turn: Sequence[Message]) -> None:
        """Pick up after a (re)start: the running turn, and follow-ups Coder took or dropped meanwhile."""
        users = [m for m in turn if m.role == "user"]
        self._turn = users[-1].id if users else None
        if self._has_queue:
            async with self._db.unit() as session:
                waiting = await repo.find_queued_inbound(session, self._ref.link_id)
            if waiting:
                await self._taken_meanwhile(waiting.keys())
                await self.show_queue()

    async def _taken_meanwhile(self, waiting: Iterable[int]) -> None:
        """Which of the ``waiting`` follow-ups that left Coder's queue while no bridge followed the chat
        the agent took: the user messages of the chat since the turn began whose text is one a
        waiting row stored. The others were removed (in Coder's UI, by an edit)."""
        self._queue = list(await self._backend.queued_messages(self._chat_id))
        gone = set(waiting) - {q.id for q in self._queue}
        if not gone:
            return
        recent = await self._backend.recent_messages(self._chat_id)
        users = [m for m in recent if m.role == "user" and m.id > (self._turn or 0)]
        async with self._db.unit() as session:
            for message in users:
                found = await repo.find_queued_by_text(session, link_id=self._ref.link_id, text=message.text)
                if found in gone and found not in self._taken:
                    self._taken[found] = message.id

    @property
    def unmarked(self) -> bool:
        """Whether the turn's reaction was decided while its Slack message was not known (yet)."""
        return self._turn_ts is None and self._turn_missed is not None

    async def recorded(self, coder_message_id: int) -> None:
        """A follow-up was just recorded as Coder message ``coder_message_id``. The stream may have
        shown the turn it started before Coder's answer to the send came (even to its end): that
        turn's reaction goes on now, stored in a transaction of its own (no 👀 was ever set)."""
        async with self._turn_lock:
            if self._turn != coder_message_id or self._turn_missed is None or self._turn_ts is not None:
                return
            name, self._turn_missed = self._turn_missed, None  # looked up again
            reaction = await self._mark_turn(name)
            if reaction is None:
                return
            async with self._db.unit() as session:
                marked = await self._outbox.stage_reactions(session, self._ref, [reaction])
            self._outbox.show_reactions(self._ref, marked)

    async def see(self, batch: Sequence[StreamEvent], view: ThreadView) -> list[ReactionWish]:
        """After the view applied ``batch``, before its cursor is stored: the queue it showed, and the
        turn's and status reactions it decided, returned for the caller to store with the cursor."""
        async with self._turn_lock:
            return await self._see(batch, view)

    async def _see(self, batch: Sequence[StreamEvent], view: ThreadView) -> list[ReactionWish]:
        decided: list[ReactionWish | None] = []
        queue_changed = False
        for event in batch:
            match event:
                case MessageEvent(message=message) if message.role == "user" and message.id > (
                    self._turn or 0
                ):
                    decided.append(await self._new_turn(message))
                case QueueEvent(queue=queue):
                    self._queue, queue_changed = list(queue), True
        # A follow-up seen taken clears its notice at once: no queue_update may follow (a snapshot
        # after a reconnect shows the taken message, not the queue change that came before it). Its
        # row then names the message it became, by which the turn's reaction finds it.
        if (queue_changed or self._leaving) and self._has_queue:
            await self.show_queue()
        status = view.status
        if status is not None:
            if view.status_changed:
                names = self._names.of_phase(status.phase)
                decided.append(self._wish(self._ref.thread_ts, STATUS_ROLE, names, self._names.status))
            outcome = view.outcome()
            if status.phase.busy:
                decided.append(await self._mark_turn(self._names.working))
            elif status.phase is ChatPhase.NEEDS_USER:  # not over: the answer lets the agent go on
                decided.append(await self._mark_turn(self._names.waiting))
            elif outcome is not None:
                failed = outcome.stopped or outcome.failure is not None or outcome.phase is ChatPhase.ERROR
                decided.append(await self._mark_turn(self._names.failed if failed else self._names.done))
        return [reaction for reaction in decided if reaction is not None]

    def _wish(self, ts: str, role: str, names: Iterable[str], among: Iterable[str]) -> ReactionWish | None:
        """The reaction of ``role`` on ``ts``, or None when it is the one decided last (nothing to store)."""
        reaction = ReactionWish(ts, role, frozenset(names), frozenset(among))
        if self._wished.get((ts, role)) == reaction:
            return None
        self._wished[(ts, role)] = reaction
        return reaction

    async def _new_turn(self, message: Message) -> ReactionWish | None:
        """A user message began a turn; the turn before it (if the chat went straight on) is done."""
        done = await self._mark_turn(self._names.done) if self._turn is not None else None
        taken = next((q.id for q in self._queue or () if q.text == message.text), None)
        if taken is not None:  # ``show_queue`` records it taken and clears its notice
            self._taken[taken] = message.id
            self._leaving = True
        self._turn, self._turn_ts, self._turn_missed = message.id, None, None
        return done

    async def _mark_turn(self, name: str) -> ReactionWish | None:
        if self._turn is None:
            return None
        # Looked up again whenever the reaction changes: a follow-up's row names its Coder message
        # once the send returned, and the stream may show that message (and 👀) before.
        if self._turn_ts is None and self._turn_missed != name:
            async with self._db.unit() as session:
                self._turn_ts = await repo.find_turn_message(
                    session, link_id=self._ref.link_id, coder_message_id=self._turn
                )
            self._turn_missed = None if self._turn_ts is not None else name
        if self._turn_ts is None:  # a turn started in Coder's UI has no Slack message
            return None
        return self._wish(self._turn_ts, TURN_ROLE, {name}, self._names.turn)

    async def show_queue(self) -> None:
        """Every queued follow-up with its place and buttons; those that left the queue cleared (their
        rows, notices and ⏳ in one transaction)."""
        async with self._lock:
            if self._queue is None:
                fetched = list(await self._backend.queued_messages(self._chat_id))
                if self._queue is None:  # a queue_update that came meanwhile is newer
                    self._queue = fetched
            queued = {self._names.queued}
            async with self._db.unit() as session:
                waiting = await repo.find_queued_inbound(session, self._ref.link_id)
                # A notice shown in this run counts even when its row no longer says queued: a
                # button or an edit that took the entry out of the queue forgot the row already.
                queued_now = {m.id for m in self._queue} - self._taken.keys()
                # An edited follow-up is queued again under a new entry: its message still waits.
                waits = {ts for q, ts in waiting.items() if q in queued_now}
                known = {**self._shown, **waiting}
                gone = {q: ts for q, ts in known.items() if q not in queued_now and ts not in waits}
                self._leaving = False
                for queued_id in gone:
                    taken = self._taken.get(queued_id)
                    await repo.unqueue(
                        session,
                        link_id=self._ref.link_id,
                        queued_message_id=queued_id,
                        coder_message_id=taken,
                    )
                took = {ts for q, ts in gone.items() if q in self._taken}
                texts = [  # one notice per message, which several entries may have held in turn
                    final_text(SlotKey.answer(ts).encode(), render_unqueued(taken=ts in took))
                    for ts in dict.fromkeys(gone.values())
                ]
                stored = await self._outbox.stage(session, self._ref, texts)
                places = [
                    (place, entry.id, waiting[entry.id])  # one not recorded yet is shown by its relay
                    for place, entry in enumerate((e for e in self._queue if e.id in queued_now), 1)
                    if entry.id in waiting
                ]
                wishes = [self._wish(ts, QUEUED_ROLE, (), queued) for ts in gone.values()]
                wishes += [self._wish(at, QUEUED_ROLE, queued, queued) for _, _, at in places]
                marked = await self._outbox.stage_reactions(session, self._ref, [w for w in wishes if w])
            self._outbox.show(self._ref, stored)
            self._outbox.show_reactions(self._ref, marked)
            self._shown = {}
            for place, queued_id, at in places:
                self._shown[queued_id] = at
                buttons = queued_buttons(self._chat_id, queued_id)
                self._outbox.set_text(
                    self._ref, SlotKey.answer(at).encode(), render_queued(place), buttons=buttons
                )
