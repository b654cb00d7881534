"""Durable intake of Slack events: recorded before the ack, marked done once handled.

Slack considers an acknowledged event delivered. Recording it first (the event id is the key, so
Slack's retries of it stop here) and replaying the unfinished ones at start means an event the
bridge acknowledged just before a crash is still handled, exactly once. Records and completions
that arrive together are written in one transaction (``GroupWriter``), so a burst of events is
acknowledged within Slack's 3 s. Slash commands and interactions have no event id and are never
retried, but a captured signed request can be sent again within Slack's five-minute window: they
are recorded by a key of their own (``first``), so a replay does nothing.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Mapping
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from bridge.db import repo
from bridge.db.engine import Database
from bridge.db.group import GroupWriter

log = logging.getLogger(__name__)


async def _record(session: AsyncSession, event: tuple[str, str]) -> bool:
    event_id, payload = event
    return await repo.record_event(session, event_id, payload)


class Intake:
    """The durable record of events taken in."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._records: GroupWriter[tuple[str, str], bool] = GroupWriter(db, _record)
        self._finishes = GroupWriter(db, repo.finish_event)
        self._requests = GroupWriter(db, repo.record_request)

    async def record(self, event_id: str, body: Mapping[str, Any]) -> bool:
        """Record an event before it is acknowledged; False for a retry or a duplicate delivery."""
        return await self._records((event_id, json.dumps(body, separators=(",", ":"))))

    async def first(self, key: str) -> bool:
        """Record a slash command or an interaction by ``key`` before it is acknowledged; False when
        the same request came before (a replay)."""
        return await self._requests(key)

    async def settle(self, event_id: str, handling: Awaitable[None]) -> None:
        """Run an event's handling, then mark it done: also after a failure (logged once), so a
        poisonous event cannot replay at every start; a cancelled one (shutdown) stays for the next."""
        try:
            await handling
        except Exception:
            log.exception("handling event %s failed", event_id)
        await self.finish(event_id)

    async def finish(self, event_id: str) -> None:
        """The event has been handled (or answered with a reason); it is not replayed."""
        await self._finishes(event_id)

    async def unfinished(self) -> list[dict[str, Any]]:
        """Bodies of events acknowledged but not handled before the last stop, oldest first."""
        async with self._db.unit() as session:
            payloads = await repo.unfinished_events(session)
        bodies = []
        for payload in payloads:
            try:
                body = json.loads(payload)
            except ValueError:
                log.warning("skipping an unreadable recorded event")
                continue
            if isinstance(body, dict):
                bodies.append(body)
        return bodies
