"""Durable output: what the outbox stores so a restart loses, repeats and skips nothing.

Durable texts. A text set with ``put`` (or ``stage``d in the caller's transaction, e.g. with the
stream cursor) is stored in the ``outbox`` table before it counts as accepted, and its row is
deleted in the same transaction that records Slack showing it. At start ``resume`` hands every
thread with stored texts to a worker again: a half-streamed message is completed in place (its
``ts`` is known), a finished one costs nothing (its digest matches), nothing is skipped.
``set_text`` alone keeps a text in memory: for progress (a streaming draft, a running card, a busy
status) that the stream replays after a restart anyway, so it costs no database write.

The ``ts`` of every posted slot and a digest of its text are stored, so after a restart a slot is
edited rather than posted again, and an unchanged text costs no call.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial

from sqlalchemy.ext.asyncio import AsyncSession

from bridge.db import repo
from bridge.db.engine import Database
from bridge.db.group import GroupWriter
from bridge.db.models import OutboxEntry, SlackMessage, utcnow
from bridge.relay.content import Plan
from bridge.relay.leases import LeaseLost
from bridge.relay.limits import SlackLimits
from bridge.relay.outbox.reactions import Reactions
from bridge.relay.outbox.threads import Slot, Thread, ThreadRef, Threads, decode_buttons, thread_ref
from bridge.relay.output import ReactionWish, SlotText
from bridge.relay.ports import SlackError, SlackPoster
from bridge.tasks import TaskGroup

log = logging.getLogger(__name__)


def _aware(moment: datetime) -> datetime:
    """SQLite hands timestamps back without their zone; every stored one is UTC."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


@dataclass(frozen=True)
class SlotRow:
    """A slot's message as Slack now shows it, and the digest of the stored text that shows (if one)."""

    link_id: int
    slot: str
    ts: str
    digest: str
    settles: str


@dataclass(frozen=True)
class SlotRename:
    """A slot's message now shows what slot ``new`` should (a streamed draft became a message)."""

    link_id: int
    old: str
    new: str


async def _write_slot(session: AsyncSession, row: SlotRow | SlotRename) -> None:
    """Slot rows change in the order the outbox decided them: one writer, first queued first."""
    if isinstance(row, SlotRename):
        await repo.rename_slot(session, link_id=row.link_id, old=row.old, new=row.new)
        return
    await repo.save_slot(session, link_id=row.link_id, slot=row.slot, ts=row.ts, digest=row.digest)
    if row.settles:
        await repo.settle_text(session, link_id=row.link_id, slot=row.slot, digest=row.settles)


@dataclass(frozen=True)
class _Put:
    """One ``put_with``: what it stores, with the caller's own write."""

    ref: ThreadRef
    texts: Sequence[SlotText]
    write: Callable[[AsyncSession], Awaitable[None]]
    reactions: Sequence[ReactionWish]
    plans: Mapping[str, Plan] | None
    fence: Callable[[AsyncSession], Awaitable[bool]] | None


class Store:
    """Stores texts and reactions before they count as accepted, and reads them back at a start."""

    def __init__(
        self,
        threads: Threads,
        reactions: Reactions,
        db: Database,
        poster: SlackPoster,
        limits: SlackLimits,
        writers: TaskGroup,
    ) -> None:
        self._threads = threads
        self._reactions = reactions
        self._db = db
        self._poster = poster
        self._limits = limits
        self._started_at = utcnow()  # threads linked before this may have posts whose ts was lost
        self.slot_rows = GroupWriter(db, _write_slot, writers.spawn)
        self._puts = GroupWriter(db, self._write_put, writers.spawn)

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
        fence: Callable[[AsyncSession], Awaitable[bool]] | None = None,
    ) -> None:
        """Store texts and reactions in one transaction with the caller's own ``write`` (a cursor, a
        shown state), then have them shown (with ``plans``: slot -> the plan of its text). Should the
        transaction fail, they are shown all the same, not durably: slots reserved for them must not
        wait forever. With a ``fence`` (a lease's check) that says no, nothing is written nor shown
        and ``LeaseLost`` is raised; the puts sharing the transaction are written all the same.

        Every chat's stream stores here each message Coder persists, and waits for it before reading
        on: a hundred chats at work made most of the bridge's transactions, queued on SQLite's single
        writer for 0.35 s (p50), their streams stalled meanwhile. Puts that arrive together now share
        a transaction (group commit); each is still its caller's unit, committed before it returns.
        The caller must not hold a transaction itself: its put would wait for its own."""
        thread = self._threads.live.get(ref.link_id)
        if thread is not None and thread.renamed:
            # A draft's rename before the text of the message it became: were the text stored first,
            # a crash in between would leave the draft's message under its old slot and the text
            # without a message, and the restart would post that text a second time.
            renamed, thread.renamed = thread.renamed, []
            await asyncio.wait(renamed)
        try:
            written = await self._puts(_Put(ref, texts, write, reactions, plans, fence))
        except BaseException:
            self.show(ref, texts, stored=False, plans=plans)
            self._reactions.show(ref, reactions, stored=False)
            raise
        if written is None:
            raise LeaseLost(f"thread {ref.thread_ts} is another replica's now")
        stored, marked = written
        self.show(ref, stored, plans=plans)
        self._reactions.show(ref, marked)

    async def _write_put(
        self, session: AsyncSession, put: _Put
    ) -> tuple[list[SlotText], list[ReactionWish]] | None:
        if put.fence is not None and not await put.fence(session):
            return None
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
        if ref.link_id in self._threads.closed:
            return []
        thread = self._threads.get(ref)
        known = thread.slots
        fresh = [t for t in texts if t.slot not in known or known[t.slot].sent_digest != t.digest]
        for text in texts:  # shown already, but a newer progress text waits: the final one wins again
            slot = known.get(text.slot)
            if slot is not None and slot.sent_digest == text.digest and slot.dirty:
                plan = (plans or {}).get(text.slot)
                self._threads.set(
                    thread,
                    text.slot,
                    text.text,
                    final=text.final,
                    buttons=decode_buttons(text.buttons),
                    plan=plan,
                )
        await repo.stage_texts(session, ref.link_id, fresh)
        return fresh

    async def stage_reactions(
        self, session: AsyncSession, ref: ThreadRef, reactions: Sequence[ReactionWish]
    ) -> list[ReactionWish]:
        """Store wished reactions in the caller's transaction (the one that decides them); returns the
        stored ones, for ``show_reactions`` once the caller committed."""
        if ref.link_id in self._threads.closed or self._reactions.unreactive:
            return []
        await repo.stage_reactions(session, ref.link_id, reactions)
        return list(reactions)

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
        if ref.link_id in self._threads.closed:
            return
        self.show_in(self._threads.get(ref), texts, stored=stored, plans=plans)

    def show_in(
        self,
        thread: Thread,
        texts: Sequence[SlotText],
        *,
        stored: bool,
        plans: Mapping[str, Plan] | None = None,
    ) -> None:
        for text in texts:
            stored_as = text.digest if stored else ""
            self._threads.set(
                thread,
                text.slot,
                text.text,
                final=text.final,
                stored=stored_as,
                buttons=decode_buttons(text.buttons),
                plan=(plans or {}).get(text.slot),
            )

    async def settle(self, ref: ThreadRef, slot: str, digest: str) -> None:
        """Delete a stored text no call will show (Slack refused it for good)."""
        async with self._db.unit() as session:
            await repo.settle_text(session, link_id=ref.link_id, slot=slot, digest=digest)

    async def replace(self, ref: ThreadRef, slot: str, digest: str, texts: Sequence[SlotText]) -> None:
        """Store ``texts`` instead of the slot's text (its parts, once Slack found it too big)."""
        async with self._db.unit() as session:
            await repo.settle_text(session, link_id=ref.link_id, slot=slot, digest=digest)
            await repo.stage_texts(session, ref.link_id, texts)

    async def fail(self, ref: ThreadRef, code: str) -> None:
        """Keep the thread's stored texts as failed (``code`` says why) and drop its reactions."""
        async with self._db.unit() as session:
            await repo.fail_texts(session, ref.link_id, code)
            await repo.drop_reactions(session, ref.link_id)

    async def resume(self) -> int:
        """Deliver again what was stored but not shown before the last stop; returns how many threads."""
        async with self._db.unit() as session:
            links = await repo.find_links_with_pending_output(session)
        for link in links:
            self.touch(thread_ref(link))
        return len(links)

    def touch(self, ref: ThreadRef) -> None:
        """Have the thread's worker deliver what is stored for it (started if it is not running)."""
        self._threads.get(ref)

    async def load(self, thread: Thread, *, inherited: bool = False) -> None:
        """Read the thread's posted messages and stored texts; texts set since the start win. An
        ``inherited`` thread (its lease taken over from a replica that died) may have posts whose
        ``ts`` that replica never stored, like a thread from before this start."""
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
        if link is not None and (inherited or _aware(link.created_at) < self._started_at):
            await self._adopt_lost_posts(thread.ref, posted)
        for key, row in posted.items():
            slot = thread.slots.setdefault(key, Slot(key))
            slot.ts, slot.sent_digest, slot.inherited = row.ts, row.digest, True
        for text in pending:
            slot = thread.slots.setdefault(text.slot, Slot(text.slot))
            if slot.text is None and slot.sent_digest != text.digest:
                self._show_stored(thread, text)
        for reaction in reactions:  # a wish of this run is newer than a stored one
            marks = thread.marks.get(reaction.ts)
            if marks is None or reaction.role not in marks.wanted:
                self._reactions.want(thread, reaction, stored=True)
        for slot in thread.slots.values():
            if not slot.dirty:
                slot.done.set()
        thread.loaded.set()

    def _show_stored(self, thread: Thread, text: OutboxEntry) -> None:
        """Have the thread's worker show a stored text (it is marked stored: nothing to store again)."""
        self._threads.set(
            thread,
            text.slot,
            text.text,
            final=text.final,
            stored=text.digest,
            buttons=decode_buttons(text.buttons),
        )

    async def refresh(self, thread: Thread) -> None:
        """Take in what other replicas stored for the thread while this one holds its lease (a
        follow-up's notice, a control's answer): those replicas store, only the holder sends."""
        link_id = thread.ref.link_id
        async with self._db.unit() as session:
            pending = await repo.find_pending_texts(session, link_id)
        for text in pending:
            slot = thread.slots.get(text.slot)
            if slot is not None and slot.text is not None:  # set here: as new as any row stored
                continue
            self._show_stored(thread, text)

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
