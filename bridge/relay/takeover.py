"""Taking over what other replicas left: run after each heartbeat when replicas share a database.

A replica that dies (or stops, which expires its leases at once) leaves threads whose lease expired:
their busy chats are followed here from the stored cursor, and their stored texts are delivered.
A text stored by a replica that did not hold its thread's lease, after the holder let go, waits
under no lease at all: delivered here too. Events a gone replica acknowledged but did not handle
are replayed (``replay``, which claims them first, so one replica replays each). Several replicas
may find the same thread at once: its lease decides which one works on it.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta

from bridge.coder.types import ChatId
from bridge.db import repo
from bridge.db.engine import Database
from bridge.db.models import utcnow
from bridge.relay.leases import THREAD
from bridge.relay.links import Follows, thread_ref
from bridge.relay.outbox import Outbox

log = logging.getLogger(__name__)

EVENTS_KEPT = timedelta(days=1)
"""How long a handled Slack event's id is kept: Slack retries an event for minutes, not days."""


async def prune_events(db: Database) -> int:
    """Forget Slack events handled longer than ``EVENTS_KEPT`` ago; how many."""
    async with db.unit() as session:
        return await repo.prune_events(session, utcnow() - EVENTS_KEPT)


class Takeover:
    """Finds threads and events other replicas left, and hands them to this replica's parts."""

    def __init__(
        self,
        db: Database,
        follows: Follows,
        outbox: Outbox,
        replay: Callable[[], Awaitable[int]],
        *,
        prune_every: float = 3600.0,
    ) -> None:
        self._db = db
        self._follows = follows
        self._outbox = outbox
        self._replay = replay
        self._prune_every = prune_every
        self._pruned_at = utcnow()

    async def sweep(self) -> None:
        """One look for work left behind."""
        async with self._db.unit() as session:
            expired = [
                int(name.removeprefix(THREAD)) for name in await repo.find_expired_leases(session, THREAD)
            ]
            waiting = await repo.find_unleased_output(session, THREAD)
            links = [
                await repo.find_link(session, link_id) for link_id in dict.fromkeys([*expired, *waiting])
            ]
        for link in links:
            if link is None or link.id is None:
                continue
            busy = link.phase in repo.FOLLOWED_PHASES and not link.archived
            if link.id in expired and link.chat_id is not None and busy:
                log.info("taking over chat %s from a replica that let it go", link.chat_id)
                self._follows.follow(ChatId(link.chat_id))
            self._outbox.touch(thread_ref(link))  # its stored texts, once its lease is this replica's
        replayed = await self._replay()
        if replayed:
            log.info("handling %d Slack events a replica acknowledged before it stopped", replayed)
        if (utcnow() - self._pruned_at).total_seconds() >= self._prune_every:
            self._pruned_at = utcnow()
            await prune_events(self._db)
