"""Durable intake of Slack events: recorded before the ack, marked done once handled.

Slack considers an acknowledged event delivered. Recording it first (the event id is the key, so
Slack's retries of it stop here) and replaying the unfinished ones at start means an event the
bridge acknowledged just before a crash is still handled, exactly once. Records and completions
that arrive together are written in one transaction (``GroupWriter``), so a burst of events is
acknowledged within Slack's 3 s. Slash commands and interactions have no event id and are never
retried, but a captured signed request can be sent again within Slack's five-minute window: they
are recorded by a key of their own (``first``), so a replay does nothing.

A replayed event is acted on as if Slack had just sent it, so each record carries an integrity
tag: an HMAC-SHA256 of its id and payload under a key derived from the secret that authenticates
Slack's deliveries (``integrity_key``), which the database never holds. A record whose tag is
missing or wrong (written or changed outside the bridge) is refused with one log line and marked
done, never replayed. Records made before tags existed are tagged by the process that adds the
column (``adopt``), the one moment an untagged record can only have come from an older bridge.

Replicas sharing a PostgreSQL database each record which of them took an event in; the unfinished
events of a replica whose lease expired (it died, or stopped before handling them) are claimed by
one live replica and replayed there (``unfinished``), at its start and after each heartbeat.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from collections.abc import Awaitable, Mapping
from typing import Any

from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy.ext.asyncio import AsyncSession

from bridge.db import repo
from bridge.db.engine import Database
from bridge.db.group import GroupWriter
from bridge.relay.leases import REPLICA, Leases
from bridge.tasks import TaskGroup

log = logging.getLogger(__name__)

TAGGED_SINCE = "0012"
"""The migration that gave recorded events their integrity tag."""


def integrity_key(secret: str) -> bytes:
    """The tagging key, derived from a Slack secret (HKDF), so the secret itself is used for nothing else."""
    return HKDF(algorithm=SHA256(), length=32, salt=None, info=b"bridge seen_event tag v1").derive(
        secret.encode()
    )


def tagging_began(before: str | None) -> bool:
    """Whether a migration from revision ``before`` has just added the tags (None: a new database)."""
    return before is not None and before < TAGGED_SINCE


async def _record(session: AsyncSession, event: tuple[str, str, str, str | None]) -> bool:
    event_id, payload, tag, replica = event
    return await repo.claim_event(session, event_id, payload, tag, replica)


class Intake:
    """The durable record of events taken in."""

    def __init__(self, db: Database, key: bytes, leases: Leases | None = None) -> None:
        self._db = db
        self._key = key
        self._leases = leases or Leases(db, "", shared=False)  # without: this process alone
        self._writers = TaskGroup("intake-writes")
        self._records: GroupWriter[tuple[str, str, str, str | None], bool] = GroupWriter(
            db, _record, self._writers.spawn
        )
        self._finishes = GroupWriter(db, repo.finish_event, self._writers.spawn)
        self._requests = GroupWriter(db, repo.claim_request, self._writers.spawn)

    def _tag(self, event_id: str, payload: str) -> str:
        return hmac.new(self._key, f"{event_id}\0{payload}".encode(), hashlib.sha256).hexdigest()

    async def record(self, event_id: str, body: Mapping[str, Any]) -> bool:
        """Record an event before it is acknowledged; False for a retry or a duplicate delivery."""
        payload = json.dumps(body, separators=(",", ":"))
        tag = self._tag(event_id, payload)
        return await self._records((event_id, payload, tag, self._leases.replica or None))

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

    async def adopt(self, before: str | None) -> int:
        """Tag the unfinished records made before tags existed, when this process's migration from
        ``before`` has just added them; how many. At any other time an untagged record is refused."""
        if not tagging_began(before):
            return 0
        async with self._db.unit() as session:
            untagged = [r for r in await repo.find_unfinished_events(session) if r.tag is None]
            for record in untagged:
                await repo.tag_event(session, record.event_id, self._tag(record.event_id, record.payload))
        return len(untagged)

    async def unfinished(self) -> list[dict[str, Any]]:
        """Bodies of events acknowledged but not handled before the last stop, oldest first; when
        replicas share the database, those of replicas gone since, claimed for this one."""
        leases = self._leases
        async with self._db.unit() as session:
            if leases.shared:
                records = await repo.claim_orphaned_events(session, leases.replica, REPLICA)
            else:
                records = await repo.find_unfinished_events(session)
        bodies = []
        for record in records:
            if not hmac.compare_digest(record.tag or "", self._tag(record.event_id, record.payload)):
                log.warning(
                    "refusing recorded event %s: its integrity tag is %s (written outside the bridge, or "
                    "under another Slack secret); not replayed",
                    record.event_id,
                    "missing" if record.tag is None else "wrong",
                )
                await self.finish(record.event_id)
                continue
            try:
                body = json.loads(record.payload)
            except ValueError:
                log.warning("skipping an unreadable recorded event")
                continue
            if isinstance(body, dict):
                bodies.append(body)
        return bodies
