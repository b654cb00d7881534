"""Slack output: every bridge write into a thread goes through here.

``Outbox`` composes one module per job, all sharing the threads of ``threads``: ``texts`` schedules
texts (slots, coalescing, fairness and priorities within the workspace's budgets, the per-thread
worker), ``reactions`` executes the bridge's reactions, and ``store`` makes texts and reactions
durable and resumes them after a restart. Each module's docstring says how its part works.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from bridge.db.engine import Database
from bridge.relay.limits import SlackLimits
from bridge.relay.outbox.reactions import Reactions
from bridge.relay.outbox.store import Store
from bridge.relay.outbox.texts import CHANNEL_CLOSED, OVERSIZED, Texts
from bridge.relay.outbox.threads import Buttons, ThreadRef, Threads, digest, final_text
from bridge.relay.output import ReactionWish, SlotText
from bridge.relay.ports import Plan, SlackPoster
from bridge.tasks import TaskGroup

__all__ = ["CHANNEL_CLOSED", "OVERSIZED", "Buttons", "Outbox", "ThreadRef", "digest", "final_text"]


class Outbox:
    """Keeps each thread's Slack messages equal to the texts the relay sets.

    Each method is its part's: texts and the worker in ``texts``, durable writes and the start in
    ``store``, reactions in ``reactions`` (their docstrings say more)."""

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
        self._threads = Threads(clock or asyncio.get_running_loop().time, lambda t: self._texts.work(t))
        # Every post and every final text stores a row, and every shown reaction deletes one: with a
        # hundred threads at work, one transaction each kept SQLite's single writer busy, and the
        # threads waited on it between their edits. Written in groups, they share transactions.
        writers = TaskGroup("outbox-writes")  # not the workers' group: ``released`` waits on that
        self._reactions = Reactions(self._threads, db, poster, limits, writers)
        self._store = Store(self._threads, self._reactions, db, poster, limits, writers)
        self._texts = Texts(
            self._threads,
            self._store,
            self._reactions,
            poster,
            limits=limits,
            edit_interval=edit_interval,
            idle_timeout=idle_timeout,
        )

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
        self._texts.set_text(ref, key, text, final=final, buttons=buttons, plan=plan)

    def reserve(self, ref: ThreadRef, key: str) -> None:
        self._texts.reserve(ref, key)

    async def put(self, ref: ThreadRef, texts: Sequence[SlotText]) -> None:
        await self._store.put(ref, texts)

    async def put_with(
        self,
        ref: ThreadRef,
        texts: Sequence[SlotText],
        write: Callable[[AsyncSession], Awaitable[None]],
        reactions: Sequence[ReactionWish] = (),
        *,
        plans: Mapping[str, Plan] | None = None,
    ) -> None:
        await self._store.put_with(ref, texts, write, reactions, plans=plans)

    async def stage(
        self,
        session: AsyncSession,
        ref: ThreadRef,
        texts: Sequence[SlotText],
        *,
        plans: Mapping[str, Plan] | None = None,
    ) -> list[SlotText]:
        return await self._store.stage(session, ref, texts, plans=plans)

    def show(
        self,
        ref: ThreadRef,
        texts: Sequence[SlotText],
        *,
        stored: bool = True,
        plans: Mapping[str, Plan] | None = None,
    ) -> None:
        self._store.show(ref, texts, stored=stored, plans=plans)

    async def stage_reactions(
        self, session: AsyncSession, ref: ThreadRef, reactions: Sequence[ReactionWish]
    ) -> list[ReactionWish]:
        return await self._store.stage_reactions(session, ref, reactions)

    def show_reactions(
        self, ref: ThreadRef, reactions: Sequence[ReactionWish], *, stored: bool = True
    ) -> None:
        self._reactions.show(ref, reactions, stored=stored)

    def untouched(self, ts: str) -> None:
        self._reactions.untouched(ts)

    async def resume(self) -> int:
        return await self._store.resume()

    async def whisper(self, channel: str, user: str, thread_ts: str | None, markdown: str) -> None:
        await self._texts.whisper(channel, user, thread_ts, markdown)

    async def announce(self, channel: str, markdown: str) -> str:
        return await self._texts.announce(channel, markdown)

    def link_of(self, channel: str, ts: str) -> int | None:
        return self._texts.link_of(channel, ts)

    async def has_slot(self, ref: ThreadRef, key: str) -> bool:
        return await self._texts.has_slot(ref, key)

    async def slot_keys(self, ref: ThreadRef) -> list[str]:
        return await self._texts.slot_keys(ref)

    async def rename(self, ref: ThreadRef, old: str, new: str) -> None:
        await self._texts.rename(ref, old, new)

    async def delivered(self, ref: ThreadRef, keys: Iterable[str], timeout: float | None = None) -> None:
        await self._texts.delivered(ref, keys, timeout)

    def closed(self, ref: ThreadRef) -> str | None:
        return self._texts.closed(ref)

    def pending(self) -> int:
        return self._threads.pending()

    async def drain(self, timeout: float) -> bool:
        return await self._texts.drain(timeout)

    @property
    def threads_open(self) -> int:
        """Threads with a live worker (idle ones are released after ``idle_timeout``)."""
        return len(self._threads.live)

    async def released(self, timeout: float) -> bool:
        """Wait up to ``timeout`` for every thread worker to release itself; True when none is left."""
        return await self._threads.tasks.wait(timeout)

    async def close(self) -> None:
        """Stop the workers (call ``drain`` first to finish pending output)."""
        await self._threads.tasks.cancel()
