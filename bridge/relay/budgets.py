"""Keeps one replica's Slack budgets in step with the database: its share and the learned paces.

Slack's budgets are per workspace, however many bridge processes use them. Each replica beats a
heartbeat into the ``replica`` table and uses one over the live replicas of its workspace of every
budget (``SlackLimits.set_share``), so together they stay within one workspace's tiers; a replica
that stops removes its row and the others take its share at their next beat, one that dies stops
counting once its heartbeat is ``LIVE_BEATS`` intervals old. On SQLite only one replica may run, so
its share is whole and no heartbeat is written.

The paces learned for budgets Slack does not publish (``relay.pace``) are written to the
``slack_pace`` table when they changed and read back at every beat: a replica starts from what the
others (or its predecessor) learned, and Slack's refusal seen by one slows them all. Two lessons
meet in ``merge``: a refusal (a lower ceiling) wins over growth, which otherwise the fastest pace
carries.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

from bridge.db import repo
from bridge.db.engine import Database
from bridge.db.models import utcnow
from bridge.relay.limits import SlackLimits
from bridge.relay.pace import HEADROOM, Learned
from bridge.tasks import TaskGroup

log = logging.getLogger(__name__)

LIVE_BEATS = 3
"""Heartbeat intervals after which a silent replica no longer counts (its share goes to the others)."""


def merge(stored: Learned | None, mine: Learned, *, refused: bool) -> Learned:
    """What the workspace knows once this replica's lesson joins the stored one.

    ``refused``: Slack refused this replica's pace since it last wrote; the lower pace and ceiling
    win. Otherwise a lower stored ceiling is another replica's refusal and wins over this one's
    growth; with no new refusal on either side the faster pace (under the ceiling) is kept."""
    if stored is None:
        return mine
    ceilings = [c for c in (stored.ceiling, mine.ceiling) if c is not None]
    ceiling = min(ceilings) if ceilings else None
    if refused:
        return Learned(min(stored.per_minute, mine.per_minute), ceiling)
    if stored.ceiling is not None and (mine.ceiling is None or stored.ceiling < mine.ceiling):
        return stored
    faster = max(stored.per_minute, mine.per_minute)
    return Learned(faster if ceiling is None else min(faster, ceiling * HEADROOM), ceiling)


class SharedBudgets:
    """The replica's heartbeat and its sync of budgets, every ``interval`` seconds."""

    def __init__(
        self,
        db: Database,
        limits: SlackLimits,
        *,
        replica_id: str,
        team_id: str,
        interval: float,
        home: str | None = None,
    ) -> None:
        self._db = db
        self._limits = limits
        self._replica_id = replica_id
        self.team_id = team_id
        self._interval = interval
        self._home = home
        """For another workspace than the replica's home one (``home``): its paces are its own, but
        the replica beats (and counts the live replicas) under its home team only, since every
        replica may act in every workspace and so shares each of them the same."""
        self._tasks = TaskGroup("budgets")
        self.replicas = 1
        """Live replicas of the workspace at the last beat (this one included)."""

    async def start(self) -> None:
        """Beat once (so the budgets are right before the first Slack call), then every interval."""
        await self.sync()
        self._tasks.spawn("budgets", self._beat())

    async def close(self) -> None:
        """Stop beating; write what was learned and leave (the others take this share)."""
        await self._tasks.cancel()
        try:
            await self.sync(leaving=True)
        except Exception:  # the database gone at shutdown: the row ages out, the lesson is relearned
            log.warning("could not store the learned Slack paces at shutdown", exc_info=True)

    async def _beat(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                await self.sync()
            except Exception:  # a database hiccup: the budgets stay as they are until the next beat
                log.warning("could not sync the Slack budgets with the database", exc_info=True)

    async def sync(self, *, leaving: bool = False) -> None:
        """One beat: the heartbeat, the live replicas, and the paces merged both ways."""
        paces = self._limits.paces
        sent = {method: (pace.learned, pace.refused_lately) for method, pace in paces.items() if pace.dirty}
        now = utcnow()
        shared = not self._db.is_sqlite
        replicas = 1
        async with self._db.unit() as session:
            beats = self._home is None
            if shared and leaving and beats:
                stale = now - timedelta(seconds=self._interval * LIVE_BEATS)
                await repo.remove_replica(session, replica_id=self._replica_id, stale_before=stale)
            elif shared and not leaving:
                if beats:
                    await repo.beat_replica(
                        session, replica_id=self._replica_id, team_id=self.team_id, at=now
                    )
                since = now - timedelta(seconds=self._interval * LIVE_BEATS)
                replicas = await repo.count_live_replicas(
                    session, team_id=self._home or self.team_id, since=since
                )
            stored = {
                method: Learned(row.per_minute, row.ceiling)
                for method, row in (await repo.find_paces(session, team_id=self.team_id, lock=shared)).items()
            }
            for method, (learned, refused) in sent.items():
                stored[method] = merge(stored.get(method), learned, refused=refused)
                row = repo.StoredPace(stored[method].per_minute, stored[method].ceiling)
                await repo.save_pace(session, team_id=self.team_id, method=method, pace=row)
        for method, pace in paces.items():
            if method in sent and pace.learned == sent[method][0]:
                pace.dirty = pace.refused_lately = False
            if method in stored and not pace.dirty:  # learned meanwhile: merged at the next beat
                self._limits.adopt(method, stored[method])
        if not leaving:
            self.replicas = max(replicas, 1)
            self._limits.set_share(1.0 / self.replicas)
