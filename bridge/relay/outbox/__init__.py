"""Slack output: every bridge write into a thread goes through here.

``Outbox`` composes one module per job, all sharing the threads of ``threads``: ``texts`` schedules
texts (slots, coalescing, fairness and priorities within the workspace's budgets, the per-thread
worker), ``reactions`` executes the bridge's reactions, and ``store`` makes texts and reactions
durable and resumes them after a restart. Each module's docstring says how its part works.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from bridge.db.engine import Database
from bridge.relay.leases import Leases
from bridge.relay.limits import SlackLimits
from bridge.relay.observe import NOOP_OBSERVER, RelayObserver
from bridge.relay.outbox.reactions import Reactions
from bridge.relay.outbox.store import Store
from bridge.relay.outbox.texts import CHANNEL_CLOSED, OVERSIZED, Texts
from bridge.relay.outbox.threads import Buttons, ThreadRef, Threads, digest, final_text
from bridge.relay.ports import SlackPoster
from bridge.tasks import TaskGroup

__all__ = ["CHANNEL_CLOSED", "OVERSIZED", "Buttons", "Outbox", "ThreadRef", "digest", "final_text"]


class Outbox:
    """Keeps each thread's Slack messages equal to the texts the relay sets.

    Its methods are its parts': texts and the worker in ``texts``, durable writes and the start in
    ``store``, reactions in ``reactions``; each is documented where it is written, once."""

    def __init__(
        self,
        db: Database,
        poster: SlackPoster,
        *,
        limits: SlackLimits,
        leases: Leases | None = None,
        edit_interval: float = 1.0,
        idle_timeout: float = 300.0,
        clock: Callable[[], float] | None = None,
        observer: RelayObserver = NOOP_OBSERVER,
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
            leases=leases or Leases(db, "", shared=False),  # without: this process alone
            edit_interval=edit_interval,
            idle_timeout=idle_timeout,
            observer=observer,
        )
        # The API, each method its part's (its docstring there).
        self.set_text = self._texts.set_text
        self.reserve = self._texts.reserve
        self.put = self._store.put
        self.put_with = self._store.put_with
        self.stage = self._store.stage
        self.show = self._store.show
        self.stage_reactions = self._store.stage_reactions
        self.show_reactions = self._reactions.show
        self.untouched = self._reactions.untouched
        self.resume = self._store.resume
        self.touch = self._store.touch
        self.whisper = self._texts.whisper
        self.announce = self._texts.announce
        self.announced = self._texts.announced
        self.link_of = self._texts.link_of
        self.has_slot = self._texts.has_slot
        self.slot_keys = self._texts.slot_keys
        self.rename = self._texts.rename
        self.delivered = self._texts.delivered
        self.closed = self._texts.closed
        self.pending = self._threads.pending
        self.longest_wait = self._threads.longest_wait
        self.drain = self._texts.drain

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
