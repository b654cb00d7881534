"""Executing the bridge's reactions: a thread's worker adds and removes them on its messages.

A ``ReactionWish`` is the bridge's reactions of one kind (a ``role``: the turn's mark, the chat
status, "queued") wished on a message of the thread; the worker adds and removes them with the same
budgets and 429 handling as texts, latest wish winning. They are durable like final texts:
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
import logging
import time
from collections.abc import Mapping, Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from bridge.db import repo
from bridge.db.engine import Database
from bridge.db.group import GroupWriter
from bridge.relay.limits import SLACK_RETRY, Priority, SlackLimits, Ticket
from bridge.relay.outbox.threads import MAX_TRANSIENT_ATTEMPTS, Marks, Thread, ThreadRef, Threads
from bridge.relay.output import ReactionWish
from bridge.relay.ports import SlackError, SlackPermanent, SlackPoster, SlackRateLimited
from bridge.tasks import TaskGroup

log = logging.getLogger(__name__)

_CLOCK_SKEW = 5.0  # seconds a Slack ts may run ahead of this host's clock
_UNTOUCHED_KEPT = 10_000  # claimed messages remembered until their first reaction

_Shown = Mapping[str, Mapping[str, frozenset[str]]]
"""Reactions Slack shows, by message ts and role."""


async def _forget_shown(session: AsyncSession, shown: tuple[int, _Shown]) -> None:
    link_id, by_message = shown
    for ts, stored in by_message.items():
        for role, names in stored.items():
            await repo.settle_reaction(session, link_id=link_id, ts=ts, role=role, names=names)


class Reactions:
    """The reactions each thread's worker makes Slack show, and the rows it deletes once shown."""

    def __init__(
        self, threads: Threads, db: Database, poster: SlackPoster, limits: SlackLimits, writers: TaskGroup
    ) -> None:
        self._threads = threads
        self._poster = poster
        self._limits = limits
        self._started = time.time()  # a message with a later ts has no reaction of an earlier run
        self._untouched: dict[str, bool] = {}  # messages claimed first in this run, oldest first
        self.unreactive = ""  # why Slack takes no reactions from the bot at all (e.g. missing_scope)
        self._settled = asyncio.Event()  # set whenever a reaction call finished (``drain`` waits on it)
        self._shown_rows = GroupWriter(db, _forget_shown, writers.spawn)

    def show(self, ref: ThreadRef, reactions: Sequence[ReactionWish], *, stored: bool = True) -> None:
        """Have wished reactions shown; rows of ``stored`` ones are deleted once Slack shows them."""
        if ref.link_id in self._threads.closed or self.unreactive:
            return
        thread = self._threads.get(ref)
        for reaction in reactions:
            self.want(thread, reaction, stored=stored)

    def want(self, thread: Thread, reaction: ReactionWish, *, stored: bool) -> None:
        """Make the role's reactions on the message be its names; the rest of its ``among`` (even put
        there before a restart) is taken off."""
        marks = thread.marks.get(reaction.ts)
        if marks is None:
            marks = thread.marks[reaction.ts] = Marks()
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

    def next(self, thread: Thread) -> tuple[tuple[str, str, bool] | None, float | None]:
        """The reaction call to make now, (ts, name, add?), or else how long until one on a message
        whose last call failed is due (None: no call is waiting, or the thread is paused)."""
        now = self._threads.clock()
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
    def shown(thread: Thread) -> dict[str, dict[str, frozenset[str]]]:
        """The stored wishes Slack shows now, by message ts (their rows are due for deletion)."""
        return {ts: dict(m.stored) for ts, m in thread.marks.items() if m.stored and m.next() is None}

    async def settle(self, thread: Thread, shown: dict[str, dict[str, frozenset[str]]]) -> None:
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

    async def react(self, thread: Thread, ts: str, name: str, add: bool) -> None:
        """One reaction call. Errors as for texts, except that a transient one holds back only this
        reaction; one Slack refuses for good is given up (a deleted message, too many emoji), and
        without ``reactions:write`` the bridge stops reacting at all."""
        ref, marks = thread.ref, thread.marks[ts]
        method = "reactions.add" if add else "reactions.remove"
        try:
            if not await self._turn(thread, method):
                return  # a text of the thread turned up meanwhile: it goes first
            await self._poster.react(ref.channel, ts, name, on=add)
        except SlackRateLimited as exc:  # every thread's next call of the method waits, not only this one
            self._limits.rate_limited(method, ref.channel, exc.retry_after)
            log.warning("slack rate limit on %s; pausing it for %.2fs", method, exc.retry_after)
            return
        except SlackPermanent as exc:
            if exc.code == "missing_scope":
                self.unreactive = exc.code
                log.warning(
                    "Slack refuses the bot's reactions (%s): add reactions:write to the app", exc.code
                )
                for other in self._threads.live.values():
                    other.marks.clear()
                return
            log.warning("giving up on reaction %s on %s/%s: %s", name, ref.channel, ts, exc)
        except SlackError as exc:
            failures = marks.failures[name] = marks.failures.get(name, 0) + 1
            if failures < MAX_TRANSIENT_ATTEMPTS:
                # Only this reaction waits: Slack failing one says nothing about the thread's texts,
                # nor about its other reactions (the ⏳ to take off a follow-up, the ✅ of a turn).
                delay = SLACK_RETRY.delay(failures)
                marks.retry_at[name] = self._threads.clock() + delay
                log.warning("slack call failed (%s); retrying reaction %s in %.2fs", exc, name, delay)
                return
            log.error("giving up on reaction %s on %s after %d failures: %s", name, ts, failures, exc)
            marks.stored.clear()  # its rows stay: the next start tries again
        finally:
            self._settled.set()
        marks.failures.pop(name, None)
        marks.retry_at.pop(name, None)
        marks.known[name] = add

    async def _turn(self, thread: Thread, method: str) -> bool:
        """Wait for a reaction's budget; False when a text of the thread became due meanwhile.

        Texts go before reactions, and a worker held in the reactions' line holds its thread's texts
        with it: with 200 chats sharing Tier 3's ~50 reactions a minute, threads waited twice their
        fair share of ``chat.update`` (``bench/fanout.py``)."""
        thread.ticket, thread.reacting = Ticket(), True
        try:
            return await self._limits.acquire(method, thread.ref.channel, Priority.FINAL, thread.ticket)
        finally:
            thread.ticket, thread.reacting = None, False

    async def reacted(self, deadline: float) -> bool:
        """Wait until every wished reaction is on Slack, or the deadline; True when none is left."""
        loop = asyncio.get_running_loop()
        while self._threads.pending() and loop.time() < deadline:
            self._settled = asyncio.Event()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(deadline - loop.time()):
                    await self._settled.wait()
        return self._threads.pending() == 0
