"""Slack output scheduler: every bridge write into a thread goes through here.

Per thread, slots (stable keys such as ``after:42``) hold the text that *should* be shown. A worker
per thread makes Slack match, within ``SlackLimits``' budgets: it posts a slot the first time (in
the order slots appeared, so the thread reads in order), then edits it at most once per
``edit_interval`` — intermediate texts are coalesced, the latest wins — except that a final text
goes out at once. Transient failures back off (after five, a stored text waits for the next start);
other permanent errors are logged and dropped.

Scheduling. The workspace's budgets (``SlackLimits``) are shared by every thread, and each worker
waits in their line with at most one call at a time: new messages and final texts as ``FINAL``,
progress edits as ``PROGRESS`` (a worker waiting with one steps out of the line when a final text
or a new message of its thread turns up, and sends that first). Equals are served by how long
their thread has waited (since its last text shown, or its first change after that), so every
thread gets its turn once per round, however many final texts it has queued: a thread's wait is its
fair share of the budget, however many threads stream. Progress that has waited a whole round goes
before final texts whose threads began waiting later: finals alone can fill the budget when many
turns end together. Within a thread, new messages and final texts go first, then the progress edit
shown least recently (so a busy status card cannot starve the reply streaming below it). A 429
pauses the method for the whole workspace.

The ``ts`` of every posted slot and a digest of its text are stored, so after a restart a slot is
edited rather than posted again, and an unchanged text costs no call.

Durable texts. A text set with ``put`` (or ``stage``d in the caller's transaction, e.g. with the
stream cursor) is stored in the ``outbox`` table before it counts as accepted, and its row is
deleted in the same transaction that records Slack showing it. At start ``resume`` hands every
thread with stored texts to a worker again: a half-streamed message is completed in place (its
``ts`` is known), a finished one costs nothing (its digest matches), nothing is skipped.
``set_text`` alone keeps a text in memory: for progress (a streaming draft, a running card, a busy
status) that the stream replays after a restart anyway, so it costs no database write.

Slack errors that no retry can fix are handled on purpose: a text Slack finds too big
(``OVERSIZED``: ``msg_too_long``, and ``msg_blocks_too_long`` or ``invalid_blocks`` for the blocks a
table or a long Markdown text becomes, which Slack measures otherwise than the splitter) is split
once more and retried smaller; a channel that is gone, archived or closed to the bot stops that thread's
deliveries (its stored texts are marked failed, one WARNING says why).

Buttons. A slot's text may carry buttons; they are stored and digested with it, so they are as
durable as the text and a change of buttons alone is an edit like a change of text.

Plans. A status card's text may come with its ``Plan`` (the card in parts, for a poster that shows
tool calls natively). It is set with the text, kept in memory only and handed to the poster with
that text: the text alone decides whether a call is due, and a text stored before a restart goes
out without one (the poster shows it as text).

Reactions. A ``ReactionWish`` is the bridge's reactions of one kind (a ``role``: the turn's mark, the
chat status, "queued") wished on a message of the thread; the worker adds and removes them with the
same budgets and 429 handling as texts, latest wish winning. They are durable like final texts:
``stage_reactions`` stores them in the caller's transaction (the one that decides them, e.g. with a
turn's end and the stream cursor), ``show_reactions`` hands them to the worker once it committed, and
a wish's row is deleted once Slack shows it. At start the rows left are replayed, so a crash between
a turn's end and its ✅ cannot leave 👀 for good. What Slack has is tracked in memory: after a restart a
message from before it may carry any name of a role's ``among``, so those not wanted are removed and
the wanted ones added (Slack's ``no_reaction`` / ``already_reacted`` count as done).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
import json
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from bridge.db import repo
from bridge.db.engine import Database
from bridge.db.group import GroupWriter
from bridge.db.models import SlackMessage, utcnow
from bridge.relay.limits import SLACK_RETRY, Priority, SlackLimits, Ticket
from bridge.relay.output import ReactionWish, SlotText
from bridge.relay.ports import Button, Plan, SlackError, SlackPermanent, SlackPoster, SlackRateLimited
from bridge.relay.slots import PostTag, SlotKey
from bridge.slack.mrkdwn import split_markdown
from bridge.tasks import TaskGroup

log = logging.getLogger(__name__)
T = TypeVar("T")

_MAX_TRANSIENT_ATTEMPTS = 5
_MIN_SPLIT = 1000  # Slack never finds a shorter text too long; splitting it further would not help
CHANNEL_CLOSED = frozenset({"channel_not_found", "is_archived", "not_in_channel"})
OVERSIZED = frozenset({"msg_too_long", "msg_blocks_too_long", "invalid_blocks"})
"""Slack's answers to a text it finds too big as sent: a smaller part may well go through."""
"""Errors that mean no message can reach the thread's channel any more."""
_CLOCK_SKEW = 5.0  # seconds a Slack ts may run ahead of this host's clock
_UNTOUCHED_KEPT = 10_000  # claimed messages remembered until their first reaction
Buttons = tuple[Button, ...]


def _encode(buttons: Buttons) -> str:
    return json.dumps([vars(b) for b in buttons], separators=(",", ":")) if buttons else ""


def _decode(stored: str) -> Buttons:
    return tuple(Button(**b) for b in json.loads(stored)) if stored else ()


def digest(text: str, buttons: Buttons = ()) -> str:
    """Short stable fingerprint of a text and its buttons, to skip edits that would change nothing
    (a text without buttons keeps the fingerprint it had before messages could carry any)."""
    content = f"{text}\0{_encode(buttons)}" if buttons else text
    return hashlib.sha256(content.encode()).hexdigest()[:32]


def final_text(slot: str, text: str, buttons: Buttons = ()) -> SlotText:
    """A final text for a slot, as ``put`` and ``stage`` take it."""
    return SlotText(slot, text, final=True, digest=digest(text, buttons), buttons=_encode(buttons))


@dataclass(frozen=True)
class ThreadRef:
    """Where a thread is: enough to post into it and to find its stored slots."""

    link_id: int
    channel: str
    thread_ts: str


@dataclass
class _Slot:
    key: str
    ts: str | None = None
    sent_digest: str = ""
    text: str | None = None  # None: nothing asked of this slot since the last start
    buttons: Buttons = ()
    plan: Plan | None = None  # set with ``text``, in memory only
    text_digest: str = ""  # of ``text``, computed once when it is set, not on every wake
    final: bool = False
    last_sent: float = float("-inf")
    failures: int = 0
    stored: str = ""  # digest of this slot's row in the outbox table, if it has one
    split: bool = False  # ``text`` is already a smaller part of one Slack found too long
    since: int = 0  # when (in the thread's order of changes) the slot last began to differ from Slack
    # Its row is from before this start and may record a final text: the next edit must replace it,
    # or a progress edit shown over that text would, after a crash, pass for the final text.
    inherited: bool = False
    done: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def dirty(self) -> bool:
        return self.text is not None and self.text_digest != self.sent_digest


@dataclass
class _Marks:
    """The bridge's reactions on one message: what each role wants, and what Slack has."""

    wanted: dict[str, frozenset[str]] = field(default_factory=dict)  # role -> names
    among: set[str] = field(default_factory=set)  # every name a role may have put here
    known: dict[str, bool] = field(default_factory=dict)  # name -> on the message (absent: unknown)
    stored: dict[str, frozenset[str]] = field(default_factory=dict)  # role -> names of its stored row
    failures: dict[str, int] = field(default_factory=dict)  # name -> its calls failed in a row
    retry_at: dict[str, float] = field(default_factory=dict)  # name -> no call for it before then

    def steps(self) -> list[tuple[str, bool]]:
        """The calls that bring Slack closer to the wish, (name, add?): the adds, and only once they
        are done the removes, so a message never shows neither its old state nor its new one (👀
        comes off once ✅ is on, however long Slack fails the ✅)."""
        want = frozenset().union(*self.wanted.values())
        adds = sorted(n for n in want if self.known.get(n) is not True)
        if adds:
            return [(n, True) for n in adds]
        return [(n, False) for n in sorted(n for n in self.among - want if self.known.get(n) is not False)]

    def next(self) -> tuple[str, bool] | None:
        """The next call that brings Slack closer to the wish."""
        steps = self.steps()
        return steps[0] if steps else None


class _Thread:
    def __init__(self, ref: ThreadRef) -> None:
        self.ref = ref
        self.slots: dict[str, _Slot] = {}
        self.marks: dict[str, _Marks] = {}  # message ts -> the bridge's reactions on it
        self.wake = asyncio.Event()
        self.loaded = asyncio.Event()
        self.paused_until = 0.0
        self.waiting_since: float | None = None  # since when a text of the thread waits to be shown
        self.ticket: Ticket | None = None  # the worker's place in a budget's line while it waits
        self.reacting = False  # the ticket is a reaction's: any text due goes before it
        self.changes = itertools.count(1)
        self.renamed: list[asyncio.Future[None]] = []  # slot renames queued, not yet known stored


def _aware(moment: datetime) -> datetime:
    """SQLite hands timestamps back without their zone; every stored one is UTC."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _tag(ref: ThreadRef, slot: str) -> PostTag:
    """What a posted message is tagged with: its link and slot."""
    return PostTag(ref.link_id, SlotKey.decode(slot))


@dataclass(frozen=True)
class _SlotRow:
    """A slot's message as Slack now shows it, and the digest of the stored text that shows (if one)."""

    link_id: int
    slot: str
    ts: str
    digest: str
    settles: str


@dataclass(frozen=True)
class _SlotRename:
    """A slot's message now shows what slot ``new`` should (a streamed draft became a message)."""

    link_id: int
    old: str
    new: str


async def _write_slot(session: AsyncSession, row: _SlotRow | _SlotRename) -> None:
    """Slot rows change in the order the outbox decided them: one writer, first queued first."""
    if isinstance(row, _SlotRename):
        await repo.rename_slot(session, link_id=row.link_id, old=row.old, new=row.new)
        return
    await repo.save_slot(session, link_id=row.link_id, slot=row.slot, ts=row.ts, digest=row.digest)
    if row.settles:
        await repo.settle_text(session, link_id=row.link_id, slot=row.slot, digest=row.settles)


def _log_unstored(future: asyncio.Future[None]) -> None:
    if not future.cancelled() and (error := future.exception()) is not None:
        log.error("could not store a renamed slot; a restart may post its text anew", exc_info=error)


@dataclass(frozen=True)
class _Put:
    """One ``put_with``: what it stores, with the caller's own write."""

    ref: ThreadRef
    texts: Sequence[SlotText]
    write: Callable[[AsyncSession], Awaitable[None]]
    reactions: Sequence[ReactionWish]
    plans: Mapping[str, Plan] | None


_Shown = Mapping[str, Mapping[str, frozenset[str]]]
"""Reactions Slack shows, by message ts and role."""


async def _forget_shown(session: AsyncSession, shown: tuple[int, _Shown]) -> None:
    link_id, by_message = shown
    for ts, stored in by_message.items():
        for role, names in stored.items():
            await repo.settle_reaction(session, link_id=link_id, ts=ts, role=role, names=names)


class Outbox:
    """Keeps each thread's Slack messages equal to the texts the relay sets."""

    def __init__(
        self,
        db: Database,
        poster: SlackPoster,
        *,
        limits: SlackLimits,
        edit_interval: float = 1.0,
        idle_timeout: float = 300.0,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self._db = db
        self._poster = poster
        self._limits = limits
        self._edit_interval = edit_interval
        self._idle_timeout = idle_timeout
        self._clock = clock or asyncio.get_running_loop().time
        self._threads: dict[int, _Thread] = {}
        self._posted: dict[tuple[str, str], int] = {}  # (channel, ts) -> link id, as soon as Slack answers
        self._closed: dict[int, str] = {}  # link id -> why its channel takes no messages (this run)
        self._started_at = utcnow()  # threads linked before this may have posts whose ts was lost
        self._started = time.time()  # a message with a later ts has no reaction of an earlier run
        self._untouched: dict[str, bool] = {}  # messages claimed first in this run, oldest first
        self._unreactive = ""  # why Slack takes no reactions from the bot at all (e.g. missing_scope)
        self._settled = asyncio.Event()  # set whenever a reaction call finished (``drain`` waits on it)
        self._tasks = TaskGroup("outbox")
        # Every post and every final text stores a row, and every shown reaction deletes one: with a
        # hundred threads at work, one transaction each kept SQLite's single writer busy, and the
        # threads waited on it between their edits. Written in groups, they share transactions.
        self._writers = TaskGroup("outbox-writes")  # not the workers' group: ``released`` waits on that
        self._slot_rows = GroupWriter(db, _write_slot, self._writers.spawn)
        self._puts = GroupWriter(db, self._write_put, self._writers.spawn)
        self._shown_rows = GroupWriter(db, _forget_shown, self._writers.spawn)

    def set_text(
        self,
        ref: ThreadRef,
        key: str,
        text: str,
        *,
        final: bool = False,
        buttons: Buttons = (),
        plan: Plan | None = None,
    ) -> None:
        """Make slot ``key`` of a thread show ``text`` (posted or edited by the worker), kept in memory
        only: for progress that a restart regenerates. Texts that must survive one go through ``put``."""
        if ref.link_id in self._closed:
            return
        self._set(self._thread(ref), key, text, final=final, buttons=buttons, plan=plan)

    async def stage_reactions(
        self, session: AsyncSession, ref: ThreadRef, reactions: Sequence[ReactionWish]
    ) -> list[ReactionWish]:
        """Store wished reactions in the caller's transaction (the one that decides them); returns the
        stored ones, for ``show_reactions`` once the caller committed."""
        if ref.link_id in self._closed or self._unreactive:
            return []
        await repo.stage_reactions(session, ref.link_id, reactions)
        return list(reactions)

    def show_reactions(
        self, ref: ThreadRef, reactions: Sequence[ReactionWish], *, stored: bool = True
    ) -> None:
        """Have wished reactions shown; rows of ``stored`` ones are deleted once Slack shows them."""
        if ref.link_id in self._closed or self._unreactive:
            return
        thread = self._thread(ref)
        for reaction in reactions:
            self._want(thread, reaction, stored=stored)

    def _want(self, thread: _Thread, reaction: ReactionWish, *, stored: bool) -> None:
        """Make the role's reactions on the message be its names; the rest of its ``among`` (even put
        there before a restart) is taken off."""
        marks = thread.marks.get(reaction.ts)
        if marks is None:
            marks = thread.marks[reaction.ts] = _Marks()
            fresh = self._untouched.pop(reaction.ts, False)
            if fresh or float(reaction.ts) > self._started + _CLOCK_SKEW:  # nothing of ours on it yet
                marks.known = dict.fromkeys(reaction.among, False)
        marks.wanted[reaction.role] = reaction.names
        marks.among.update(reaction.among, reaction.names)
        if stored:
            marks.stored[reaction.role] = reaction.names
        if marks.next() is not None or marks.stored:
            thread.wake.set()

    def untouched(self, ts: str) -> None:
        """A person's message this run claimed first: no earlier run reacted to it, so its first wish
        costs no removals. (Otherwise a message written in the first seconds after a start counts as
        possibly older, and every name its role may use is removed first: at a restart under load that
        was four needless calls a chat.)"""
        self._untouched[ts] = True
        if len(self._untouched) > _UNTOUCHED_KEPT:  # never reacted to: forget the oldest
            del self._untouched[next(iter(self._untouched))]

    def reserve(self, ref: ThreadRef, key: str) -> None:
        """Give slot ``key`` its place in the thread's order now (new slots post in the order they
        appeared); its text follows with ``show`` once stored."""
        if ref.link_id not in self._closed:
            self._thread(ref).slots.setdefault(key, _Slot(key))

    async def put(self, ref: ThreadRef, texts: Sequence[SlotText]) -> None:
        """Store final texts (one transaction), then have them shown: accepted means durable."""
        async with self._db.unit() as session:
            texts = await self.stage(session, ref, texts)
        self.show(ref, texts)

    async def put_with(
        self,
        ref: ThreadRef,
        texts: Sequence[SlotText],
        write: Callable[[AsyncSession], Awaitable[None]],
        reactions: Sequence[ReactionWish] = (),
        *,
        plans: Mapping[str, Plan] | None = None,
    ) -> None:
        """Store texts and reactions in one transaction with the caller's own ``write`` (a cursor, a
        shown state), then have them shown (with ``plans``: slot -> the plan of its text). Should the
        transaction fail, they are shown all the same, not durably: slots reserved for them must not
        wait forever.

        Every chat's stream stores here each message Coder persists, and waits for it before reading
        on: a hundred chats at work made most of the bridge's transactions, queued on SQLite's single
        writer for 0.35 s (p50), their streams stalled meanwhile. Puts that arrive together now share
        a transaction (group commit); each is still its caller's unit, committed before it returns.
        The caller must not hold a transaction itself: its put would wait for its own."""
        thread = self._threads.get(ref.link_id)
        if thread is not None and thread.renamed:
            # A draft's rename before the text of the message it became: were the text stored first,
            # a crash in between would leave the draft's message under its old slot and the text
            # without a message, and the restart would post that text a second time.
            renamed, thread.renamed = thread.renamed, []
            await asyncio.wait(renamed)
        try:
            stored, marked = await self._puts(_Put(ref, texts, write, reactions, plans))
        except BaseException:
            self.show(ref, texts, stored=False, plans=plans)
            self.show_reactions(ref, reactions, stored=False)
            raise
        self.show(ref, stored, plans=plans)
        self.show_reactions(ref, marked)

    async def _write_put(self, session: AsyncSession, put: _Put) -> tuple[list[SlotText], list[ReactionWish]]:
        stored = await self.stage(session, put.ref, put.texts, plans=put.plans)
        marked = await self.stage_reactions(session, put.ref, put.reactions)
        await put.write(session)
        return stored, marked

    async def stage(
        self,
        session: AsyncSession,
        ref: ThreadRef,
        texts: Sequence[SlotText],
        *,
        plans: Mapping[str, Plan] | None = None,
    ) -> list[SlotText]:
        """Store texts in the caller's transaction (a chat's follow also advances the cursor in it), all but
        those Slack shows already; returns the stored ones, for ``show`` once the caller committed."""
        if ref.link_id in self._closed:
            return []
        thread = self._thread(ref)
        known = thread.slots
        fresh = [t for t in texts if t.slot not in known or known[t.slot].sent_digest != t.digest]
        for text in texts:  # shown already, but a newer progress text waits: the final one wins again
            slot = known.get(text.slot)
            if slot is not None and slot.sent_digest == text.digest and slot.dirty:
                plan = (plans or {}).get(text.slot)
                self._set(
                    thread, text.slot, text.text, final=text.final, buttons=_decode(text.buttons), plan=plan
                )
        await repo.stage_texts(session, ref.link_id, fresh)
        return fresh

    def show(
        self,
        ref: ThreadRef,
        texts: Sequence[SlotText],
        *,
        stored: bool = True,
        plans: Mapping[str, Plan] | None = None,
    ) -> None:
        """Have texts shown; rows of ``stored`` ones are deleted when Slack shows them. A caller whose
        transaction failed shows its texts all the same (``stored=False``), just not durably."""
        if ref.link_id in self._closed:
            return
        self._show_in(self._thread(ref), texts, stored=stored, plans=plans)

    def _show_in(
        self,
        thread: _Thread,
        texts: Sequence[SlotText],
        *,
        stored: bool,
        plans: Mapping[str, Plan] | None = None,
    ) -> None:
        for text in texts:
            stored_as = text.digest if stored else ""
            self._set(
                thread,
                text.slot,
                text.text,
                final=text.final,
                stored=stored_as,
                buttons=_decode(text.buttons),
                plan=(plans or {}).get(text.slot),
            )

    async def resume(self) -> int:
        """Deliver again what was stored but not shown before the last stop; returns how many threads."""
        async with self._db.unit() as session:
            links = await repo.find_links_with_pending_output(session)
        for link in links:
            assert link.id is not None
            self._thread(ThreadRef(link.id, link.channel_id, link.thread_ts))
        return len(links)

    def _set(
        self,
        thread: _Thread,
        key: str,
        text: str,
        *,
        final: bool,
        stored: str = "",
        buttons: Buttons = (),
        plan: Plan | None = None,
    ) -> None:
        slot = thread.slots.get(key)
        if slot is None:
            slot = thread.slots[key] = _Slot(key)
        if not slot.dirty:
            slot.since = next(thread.changes)
        slot.text, slot.buttons, slot.plan, slot.final = text, buttons, plan, final or slot.final
        slot.text_digest = digest(text, buttons)
        slot.split = False
        if stored:
            slot.stored = stored
        if slot.dirty:
            slot.done.clear()
            if thread.waiting_since is None:
                thread.waiting_since = self._clock()
        if thread.ticket is not None and (thread.reacting or slot.final or slot.ts is None) and slot.dirty:
            thread.ticket.withdraw()  # the worker waits to react or show progress: this goes first
        thread.wake.set()

    async def whisper(self, channel: str, user: str, thread_ts: str | None, markdown: str) -> None:
        """An ephemeral answer to one person, within the workspace's budget (ahead of progress
        edits)."""
        send = partial(self._poster.whisper, channel, user, thread_ts, markdown)
        await self._patiently("chat.postEphemeral", send, channel)

    async def announce(self, channel: str, markdown: str) -> str:
        """A new top-level message (the root of a thread ``/coder new`` starts), within the
        channel's and the workspace's budgets; returns its ``ts``."""
        return await self._patiently(
            "chat.postMessage", partial(self._poster.announce, channel, markdown), channel
        )

    async def _patiently(self, method: str, send: Callable[[], Awaitable[T]], channel: str) -> T:
        """One call within the budgets. A 429 is waited out, however often (it is no failure, only
        "later": nothing was posted); any other Slack error is raised."""
        while True:
            try:
                return await self._limits.call(method, send, channel=channel)
            except SlackRateLimited:  # the method is paused for Retry-After: the next acquire waits
                continue

    def link_of(self, channel: str, ts: str) -> int | None:
        """The link whose thread got a message posted as ``ts`` while its worker is alive.

        Known the moment Slack answers, before the slot's row is stored: a reaction on a message the
        bot just posted can arrive before that row exists.
        """
        return self._posted.get((channel, ts))

    async def has_slot(self, ref: ThreadRef, key: str) -> bool:
        """Whether the thread has (or had, before a restart) a message for ``key``."""
        thread = self._thread(ref)
        await thread.loaded.wait()
        return key in thread.slots

    async def slot_keys(self, ref: ThreadRef) -> list[str]:
        """Every slot the thread has (or had, before a restart) a message or a text for, in order."""
        thread = self._thread(ref)
        await thread.loaded.wait()
        return list(thread.slots)

    async def rename(self, ref: ThreadRef, old: str, new: str) -> None:
        """Move slot ``old`` (and its split parts ``old#1``…) to ``new``: the same Slack message now
        shows what ``new`` should. A target that already has a message keeps it, and ``old`` stays.
        The slot keeps its place in the thread's order: a draft not posted yet (Slack said 429) must
        not go after the status card that appeared below it meanwhile."""
        thread = self._thread(ref)
        await thread.loaded.wait()
        whole_old, whole_new = SlotKey.decode(old), SlotKey.decode(new)
        for index in range(len(thread.slots) + 1):
            was, now = whole_old.part(index).encode(), whole_new.part(index).encode()
            slot = thread.slots.get(was)
            if slot is None:
                return
            if now in thread.slots:
                continue
            slot.key = now
            thread.slots = {now if key == was else key: s for key, s in thread.slots.items()}
            if slot.ts is not None:  # stored behind the slot's earlier rows; the next put waits
                stored = self._slot_rows.submit(_SlotRename(ref.link_id, was, now))
                stored.add_done_callback(_log_unstored)
                thread.renamed.append(stored)

    async def delivered(self, ref: ThreadRef, keys: Iterable[str], timeout: float | None = None) -> None:
        """Wait until the given slots show their latest text (or were given up as undeliverable)."""
        thread = self._thread(ref)

        async def shown() -> None:
            await thread.loaded.wait()  # slots stored before a restart are known once loaded
            await asyncio.gather(*(thread.slots[k].done.wait() for k in keys if k in thread.slots))

        await asyncio.wait_for(shown(), timeout)

    def pending(self) -> int:
        """How many slots and messages' reactions still differ from what Slack shows (or whose rows
        are still to be deleted: left, they would be replayed at the next start)."""
        slots = sum(1 for t in self._threads.values() for s in t.slots.values() if not s.done.is_set())
        return slots + sum(
            1 for t in self._threads.values() for m in t.marks.values() if m.next() or m.stored
        )

    async def drain(self, timeout: float) -> bool:
        """Wait up to ``timeout`` for every slot and reaction to be delivered (those stored before
        the start included: a thread is read first); True when nothing is left."""
        deadline = asyncio.get_running_loop().time() + timeout
        try:
            async with asyncio.timeout_at(deadline):
                for thread in list(self._threads.values()):
                    await thread.loaded.wait()
                    for slot in list(thread.slots.values()):
                        await slot.done.wait()
        except TimeoutError:
            return self.pending() == 0
        return await self._reacted(deadline)

    async def _reacted(self, deadline: float) -> bool:
        """Wait until every wished reaction is on Slack, or the deadline; True when none is left."""
        loop = asyncio.get_running_loop()
        while self.pending() and loop.time() < deadline:
            self._settled = asyncio.Event()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(deadline - loop.time()):
                    await self._settled.wait()
        return self.pending() == 0

    async def close(self) -> None:
        """Stop the workers (call ``drain`` first to finish pending output)."""
        await self._tasks.cancel()

    def _thread(self, ref: ThreadRef) -> _Thread:
        thread = self._threads.get(ref.link_id)
        if thread is None:
            thread = self._threads[ref.link_id] = _Thread(ref)
            self._tasks.spawn(f"thread:{ref.link_id}", self._work(thread))
        return thread

    async def _load(self, thread: _Thread) -> None:
        """Read the thread's posted messages and stored texts; texts set since the start win."""
        link_id = thread.ref.link_id
        async with self._db.unit() as session:
            link = await repo.find_link(session, link_id)
            posted = await repo.find_posted_messages(session, link_id)
            pending = await repo.find_pending_texts(session, link_id)
            reactions = [
                ReactionWish(r.ts, r.role, r.names, r.among)
                for r in await repo.find_pending_reactions(session, link_id)
            ]
            for text in pending:  # shown before the stop, only the delete was lost
                row = posted.get(text.slot)
                if row is not None and row.digest == text.digest:
                    await repo.settle_text(session, link_id=link_id, slot=text.slot, digest=text.digest)
        if link is not None and _aware(link.created_at) < self._started_at:  # a thread from before this start
            await self._adopt_lost_posts(thread.ref, posted)
        for key, row in posted.items():
            slot = thread.slots.setdefault(key, _Slot(key))
            slot.ts, slot.sent_digest, slot.inherited = row.ts, row.digest, True
        for text in pending:
            slot = thread.slots.setdefault(text.slot, _Slot(text.slot))
            if slot.text is None and slot.sent_digest != text.digest:
                self._set(
                    thread,
                    text.slot,
                    text.text,
                    final=text.final,
                    stored=text.digest,
                    buttons=_decode(text.buttons),
                )
        for reaction in reactions:  # a wish of this run is newer than a stored one
            marks = thread.marks.get(reaction.ts)
            if marks is None or reaction.role not in marks.wanted:
                self._want(thread, reaction, stored=True)
        for slot in thread.slots.values():
            if not slot.dirty:
                slot.done.set()
        thread.loaded.set()

    async def _adopt_lost_posts(self, ref: ThreadRef, posted: dict[str, SlackMessage]) -> None:
        """Find the thread's messages Slack accepted but whose ``ts`` a crash kept from being stored
        (they carry their slot's tag) and store them, so they are edited instead of posted twice.
        Their text is unknown (digest empty): the slot's next text is sent as an edit."""
        try:
            tagged = await self._limits.call(
                "conversations.replies", partial(self._poster.tagged, ref.channel, ref.thread_ts)
            )
        except SlackError as exc:
            log.warning("could not read thread %s to find posts lost in a crash: %s", ref.thread_ts, exc)
            return
        known = {row.ts for row in posted.values()}  # a renamed slot's message keeps its old tag a while
        mine = {tag.slot.encode(): ts for tag, ts in tagged.items() if tag.link_id == ref.link_id}
        lost = {slot: ts for slot, ts in mine.items() if slot not in posted and ts not in known}
        if not lost:
            return
        async with self._db.unit() as session:
            for slot, ts in lost.items():
                await repo.save_slot(session, link_id=ref.link_id, slot=slot, ts=ts, digest="")
                posted[slot] = SlackMessage(link_id=ref.link_id, slot=slot, ts=ts, digest="")
        log.info(
            "found %d posts of thread %s whose ts was not stored before the stop", len(lost), ref.thread_ts
        )

    async def _work(self, thread: _Thread) -> None:
        while True:
            try:
                if not thread.loaded.is_set():
                    await self._load(thread)
                slot, wait = self._next(thread)
                if slot is None:
                    mark, retry = self._next_mark(thread)
                    if mark is not None:
                        await self._react(thread, *mark)
                        continue
                    if shown := self._shown_marks(thread):
                        await self._settle_marks(thread, shown)
                        continue
                    wait = retry if wait is None else wait if retry is None else min(wait, retry)
                    thread.wake.clear()
                    idle = wait is None and self._idle(thread)
                    try:  # asyncio.timeout, not wait_for: 3.11's wait_for loses a cancel that races a wake
                        async with asyncio.timeout(self._idle_timeout if idle else wait):
                            await thread.wake.wait()
                    except TimeoutError:
                        if idle and self._idle(thread):  # quiet for long: free it; set_text makes a new one
                            self._release(thread)
                            return
                    continue
                await self._send(thread, slot)
            except Exception:  # a database hiccup must not end the thread's output for good
                log.exception("outbox worker of thread %s failed; retrying", thread.ref.thread_ts)
                await asyncio.sleep(1.0)

    def _release(self, thread: _Thread) -> None:
        del self._threads[thread.ref.link_id]
        for slot in thread.slots.values():
            if slot.ts is not None:
                self._posted.pop((thread.ref.channel, slot.ts), None)

    @staticmethod
    def _idle(thread: _Thread) -> bool:
        return all(not slot.dirty for slot in thread.slots.values()) and not any(
            m.next() or m.stored for m in thread.marks.values()
        )

    @property
    def threads_open(self) -> int:
        """Threads with a live worker (idle ones are released after ``idle_timeout``)."""
        return len(self._threads)

    async def released(self, timeout: float) -> bool:
        """Wait up to ``timeout`` for every thread worker to release itself; True when none is left."""
        return await self._tasks.wait(timeout)

    def _next(self, thread: _Thread) -> tuple[_Slot | None, float | None]:
        """The slot to send now, or how long until one is due (None: until woken).

        New messages (in order) and final texts first, the one waiting longest first (a reply's final
        text before the idle status set after it); then, of the progress edits due, the one shown
        least recently."""
        now = self._clock()
        if now < thread.paused_until:
            return None, thread.paused_until - now
        soonest: float | None = None
        due: _Slot | None = None
        urgent: _Slot | None = None
        posting = False  # a new message is a candidate: later ones wait for it
        reserved = False  # a slot before this one awaits its text: new messages must not overtake it
        waiting = False
        for slot in thread.slots.values():
            if slot.text is None and slot.ts is None:
                reserved = True
                continue
            if not slot.dirty:
                slot.done.set()
                continue
            waiting = True
            if slot.ts is None and (reserved or posting):
                continue
            if slot.ts is None or slot.final:
                posting = posting or slot.ts is None
                if urgent is None or slot.since < urgent.since:
                    urgent = slot
                continue
            wait = slot.last_sent + self._edit_interval - now
            if wait <= 0:
                if due is None or slot.last_sent < due.last_sent:
                    due = slot
            elif soonest is None or wait < soonest:
                soonest = wait
        if not waiting:  # settled some other way (given up, its channel closed): no wait goes on
            thread.waiting_since = None
        if urgent is not None or due is not None:
            return urgent or due, None
        return None, soonest

    async def _send(self, thread: _Thread, slot: _Slot) -> None:
        ref = thread.ref
        method = "chat.postMessage" if slot.ts is None else "chat.update"
        try:
            since = thread.waiting_since
            if slot.ts is None or slot.final:
                await self._limits.acquire(method, ref.channel, since=since)
            else:
                thread.ticket = Ticket()
                try:
                    if not await self._limits.acquire(
                        method, ref.channel, Priority.PROGRESS, thread.ticket, since
                    ):
                        return  # something more urgent turned up: ``_next`` picks it
                finally:
                    thread.ticket = None
            assert slot.text is not None
            # Read after the wait: the newest text goes out.
            text, buttons, plan, sent = slot.text, slot.buttons, slot.plan, slot.text_digest
            # The stored text this send settles: ``text`` itself, or an older one ``text`` replaced.
            stored = slot.stored
            key = _tag(ref, slot.key)
            if slot.ts is None:
                slot.ts = await self._poster.post(
                    ref.channel, ref.thread_ts, text, key=key, buttons=buttons, plan=plan
                )
                self._posted[(ref.channel, slot.ts)] = ref.link_id
            else:
                await self._poster.update(ref.channel, slot.ts, text, key=key, buttons=buttons, plan=plan)
        except SlackRateLimited as exc:  # every thread's next call of the method waits, not only this one
            self._limits.rate_limited(method, ref.channel, exc.retry_after)
            slot.since = next(thread.changes)  # the thread's other final texts get their turn next
            log.warning("slack rate limit on %s; pausing it for %.2fs", method, exc.retry_after)
            return
        except SlackPermanent as exc:
            await self._refused(thread, slot, exc, sent)
            return
        except SlackError as exc:
            slot.failures += 1
            if slot.failures >= _MAX_TRANSIENT_ATTEMPTS:
                log.error("giving up on slot %s after %d failures: %s", slot.key, slot.failures, exc)
                slot.sent_digest = sent
                slot.done.set()
                return
            delay = SLACK_RETRY.delay(slot.failures)
            thread.paused_until = self._clock() + delay
            log.warning("slack call failed (%s); retrying slot %s in %.2fs", exc, slot.key, delay)
            return
        posted = slot.sent_digest == ""
        slot.failures = 0
        slot.last_sent = self._clock()
        slot.sent_digest = sent
        waiting = any(other.dirty for other in thread.slots.values())
        thread.waiting_since = slot.last_sent if waiting else None
        # A streaming edit needs no row (a restart redoes it), unless the row is an earlier run's.
        if posted or slot.final or stored or slot.inherited:
            slot.inherited = False
            await self._slot_rows(_SlotRow(ref.link_id, slot.key, slot.ts, sent, stored))
            if stored and slot.stored == stored:
                slot.stored = ""
        if not slot.dirty:
            slot.done.set()

    def _next_mark(self, thread: _Thread) -> tuple[tuple[str, str, bool] | None, float | None]:
        """The reaction call to make now, (ts, name, add?), or else how long until one on a message
        whose last call failed is due (None: no call is waiting, or the thread is paused)."""
        now = self._clock()
        if now < thread.paused_until:
            return None, None
        soonest: float | None = None
        for ts, marks in thread.marks.items():
            for name, add in marks.steps():
                retry_at = marks.retry_at.get(name, now)
                if retry_at > now:
                    soonest = retry_at - now if soonest is None else min(soonest, retry_at - now)
                    continue
                return (ts, name, add), None
        return None, soonest

    @staticmethod
    def _shown_marks(thread: _Thread) -> dict[str, dict[str, frozenset[str]]]:
        """The stored wishes Slack shows now, by message ts (their rows are due for deletion)."""
        return {ts: dict(m.stored) for ts, m in thread.marks.items() if m.stored and m.next() is None}

    async def _settle_marks(self, thread: _Thread, shown: dict[str, dict[str, frozenset[str]]]) -> None:
        """Delete the rows of wishes Slack shows; one replaced meanwhile keeps its newer row."""
        link_id = thread.ref.link_id
        try:
            await self._shown_rows((link_id, shown))
        finally:
            self._settled.set()
        for ts, stored in shown.items():
            marks = thread.marks.get(ts)
            for role, names in stored.items():
                if marks is not None and marks.stored.get(role) == names:
                    del marks.stored[role]

    async def _react(self, thread: _Thread, ts: str, name: str, add: bool) -> None:
        """One reaction call. Errors as for texts, except that a transient one holds back only this
        reaction; one Slack refuses for good is given up (a deleted message, too many emoji), and
        without ``reactions:write`` the bridge stops reacting at all."""
        ref, marks = thread.ref, thread.marks[ts]
        method = "reactions.add" if add else "reactions.remove"
        try:
            if not await self._reaction_turn(thread, method):
                return  # a text of the thread turned up meanwhile: it goes first
            await self._poster.react(ref.channel, ts, name, on=add)
        except SlackRateLimited as exc:  # every thread's next call of the method waits, not only this one
            self._limits.rate_limited(method, ref.channel, exc.retry_after)
            log.warning("slack rate limit on %s; pausing it for %.2fs", method, exc.retry_after)
            return
        except SlackPermanent as exc:
            if exc.code == "missing_scope":
                self._unreactive = exc.code
                log.warning(
                    "Slack refuses the bot's reactions (%s): add reactions:write to the app", exc.code
                )
                for other in self._threads.values():
                    other.marks.clear()
                return
            log.warning("giving up on reaction %s on %s/%s: %s", name, ref.channel, ts, exc)
        except SlackError as exc:
            failures = marks.failures[name] = marks.failures.get(name, 0) + 1
            if failures < _MAX_TRANSIENT_ATTEMPTS:
                # Only this reaction waits: Slack failing one says nothing about the thread's texts,
                # nor about its other reactions (the ⏳ to take off a follow-up, the ✅ of a turn).
                delay = SLACK_RETRY.delay(failures)
                marks.retry_at[name] = self._clock() + delay
                log.warning("slack call failed (%s); retrying reaction %s in %.2fs", exc, name, delay)
                return
            log.error("giving up on reaction %s on %s after %d failures: %s", name, ts, failures, exc)
            marks.stored.clear()  # its rows stay: the next start tries again
        finally:
            self._settled.set()
        marks.failures.pop(name, None)
        marks.retry_at.pop(name, None)
        marks.known[name] = add

    async def _reaction_turn(self, thread: _Thread, method: str) -> bool:
        """Wait for a reaction's budget; False when a text of the thread became due meanwhile.

        Texts go before reactions, and a worker held in the reactions' line holds its thread's texts
        with it: with 200 chats sharing Tier 3's ~50 reactions a minute, threads waited twice their
        fair share of ``chat.update`` (``bench/fanout.py``)."""
        thread.ticket, thread.reacting = Ticket(), True
        try:
            return await self._limits.acquire(method, thread.ref.channel, Priority.FINAL, thread.ticket)
        finally:
            thread.ticket, thread.reacting = None, False

    async def _refused(self, thread: _Thread, slot: _Slot, exc: SlackPermanent, sent: str) -> None:
        """A Slack error no retry fixes: split a too long text once, close a lost channel, else drop."""
        ref = thread.ref
        if exc.code in CHANNEL_CLOSED:
            await self._close_thread(thread, exc.code)
            return
        if exc.code in OVERSIZED and not slot.split and slot.text is not None:
            parts = split_markdown(slot.text, limit=max(len(slot.text) // 2, _MIN_SPLIT))
            if len(parts) > 1:
                await self._split(thread, slot, parts)
                return
        log.error("giving up on slot %s in %s/%s: %s", slot.key, ref.channel, ref.thread_ts, exc)
        slot.sent_digest = sent
        if slot.stored == sent:
            async with self._db.unit() as session:
                await repo.settle_text(session, link_id=ref.link_id, slot=slot.key, digest=sent)
            slot.stored = ""
        slot.done.set()

    async def _split(self, thread: _Thread, slot: _Slot, parts: list[str]) -> None:
        """Slack found the text too big (its count differs from ours): show it in smaller parts,
        the first in this slot and the rest in new slots right after it; each part is tried once."""
        assert slot.text is not None
        log.warning(
            "slack found slot %s too long (%d characters); retrying in %d parts",
            slot.key,
            len(slot.text),
            len(parts),
        )
        first = digest(parts[0], slot.buttons)
        texts = [SlotText(slot.key, parts[0], slot.final, first, _encode(slot.buttons))]
        whole = SlotKey.decode(slot.key)
        texts += [
            SlotText(whole.part(i, slack_counted=True).encode(), p, slot.final, digest(p))
            for i, p in enumerate(parts[1:], 1)
        ]
        if slot.stored:
            async with self._db.unit() as session:
                await repo.settle_text(session, link_id=thread.ref.link_id, slot=slot.key, digest=slot.stored)
                await repo.stage_texts(session, thread.ref.link_id, texts)
        stored = bool(slot.stored)
        order = list(thread.slots)
        at = order.index(slot.key) + 1
        self._show_in(thread, texts, stored=stored)
        for text in texts:
            thread.slots[text.slot].split = True
        new = [t.slot for t in texts[1:] if t.slot not in order[:at]]
        thread.slots = {k: thread.slots[k] for k in [*order[:at], *new, *order[at:]] if k in thread.slots}
        if not stored:
            slot.stored = ""

    async def _close_thread(self, thread: _Thread, code: str) -> None:
        """The thread's channel takes no messages: stop delivering there and keep its texts as failed."""
        ref = thread.ref
        self._closed[ref.link_id] = code
        log.warning(
            "stopping delivery to %s (thread %s): Slack says %s",
            ref.channel,
            ref.thread_ts,
            code,
            extra={"channel": ref.channel, "thread_ts": ref.thread_ts},
        )
        async with self._db.unit() as session:
            await repo.fail_texts(session, ref.link_id, code)
            await repo.drop_reactions(session, ref.link_id)
        for slot in thread.slots.values():
            slot.sent_digest, slot.stored = slot.text_digest, ""
            slot.done.set()
        thread.marks.clear()

    def closed(self, ref: ThreadRef) -> str | None:
        """Why the thread's channel takes no messages (Slack's error), or None while it does."""
        return self._closed.get(ref.link_id)
