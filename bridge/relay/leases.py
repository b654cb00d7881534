"""Leases: which replica, of several on one PostgreSQL database, does a piece of work.

A thread's Slack output and its chat's stream belong to one replica at a time (``thread:<link>``),
the chat watch to one replica of all (``watch``), and each replica holds ``replica:<id>`` while it
lives, so the events it took in are replayed by another only once it is gone. A lease lasts
``duration`` seconds past its holder's last heartbeat; one statement per ``heartbeat`` renews them
all. A lease the heartbeat finds taken over, or could not renew for longer than it lasts, is lost:
the tasks guarded by it are cancelled, and fenced writes (``fence``) by its old holder write
nothing. A stopping replica expires its leases, so others take its work over at once.

On SQLite the bridge runs as one replica (a second is refused at start), which holds every lease:
the same calls, no database rows, no heartbeat.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from bridge.db import repo
from bridge.db.engine import Database
from bridge.tasks import KeyedLocks, TaskGroup

log = logging.getLogger(__name__)

THREAD = "thread:"
"""Prefix of a thread's lease: its chat's stream and its Slack output."""
REPLICA = "replica:"
"""Prefix of a replica's own lease, held while it lives."""
WATCH = "watch"
"""The chat watch's lease: one replica of all follows it."""

Sweep = Callable[[], Awaitable[Any]]
"""Looks for work other replicas left, after each heartbeat."""


def thread_lease(link_id: int) -> str:
    """The name of a thread's lease."""
    return f"{THREAD}{link_id}"


class LeaseLost(Exception):
    """This replica no longer holds a lease it wrote under: another took the work over."""


class Lease:
    """A lease this replica holds, shared by the parts that use it (``users``)."""

    def __init__(self, name: str, epoch: int, *, inherited: bool, renewed_at: float, since: float) -> None:
        self.name = name
        self.epoch = epoch
        self.inherited = inherited
        """Taken over from a replica that let it expire (posts it made may lack their stored ``ts``)."""
        self.renewed_at = renewed_at
        """When the statement that last set its expiry began: it lasts ``duration`` from then at least."""
        self.since = since
        """When its acquisition was committed: a renewal that began earlier cannot have seen it."""
        self.users = 0
        self.lost = asyncio.Event()
        self._guarded: set[asyncio.Task[Any]] = set()

    @contextmanager
    def guarding(self) -> Iterator[None]:
        """Cancel the current task if the lease is lost while the block runs."""
        task = asyncio.current_task()
        assert task is not None
        if self.lost.is_set():
            raise LeaseLost(self.name)
        self._guarded.add(task)
        try:
            yield
        finally:
            self._guarded.discard(task)

    def lose(self) -> None:
        """Another replica has it now: whatever this one does under it stops."""
        self.lost.set()
        for task in self._guarded:
            task.cancel()


class Leases:
    """This replica's leases: acquired, renewed, checked, released."""

    def __init__(
        self,
        db: Database,
        replica: str,
        *,
        duration: float = 6.0,
        heartbeat: float = 1.5,
        shared: bool | None = None,
    ) -> None:
        self.replica = replica
        self.shared = not db.is_sqlite if shared is None else shared
        """Several replicas may share the database: leases are rows (PostgreSQL, unless told that
        this process is alone on it)."""
        self.duration = duration
        self.heartbeat = heartbeat
        self._db = db
        self._held: dict[str, Lease] = {}
        self._locks = KeyedLocks()  # one acquisition or release of a name at a time
        self._stopping = False
        self._kept: set[str] = set()  # let go while stopping: renewed until ``close`` hands them over
        self._tasks = TaskGroup("leases")

    def _now(self) -> float:
        return asyncio.get_running_loop().time()

    async def acquire(self, name: str) -> Lease | None:
        """The lease ``name`` for one more user, or None when another replica holds it."""
        async with self._locks.hold(name):
            lease = self._held.get(name)
            if lease is None:
                started = self._now()
                if self.shared:
                    async with self._db.unit() as session:
                        got = await repo.acquire_lease(session, name, self.replica, self.duration)
                    if got is None:
                        return None
                    lease = Lease(
                        name, got.epoch, inherited=got.inherited, renewed_at=started, since=self._now()
                    )
                else:
                    lease = Lease(name, 1, inherited=False, renewed_at=started, since=started)
                self._held[name] = lease
            lease.users += 1
            return lease

    async def release(self, lease: Lease) -> None:
        """One user lets go; the last one gives the lease up (handed on if another replica asked)."""
        async with self._locks.hold(lease.name):
            lease.users -= 1
            if lease.users > 0 or self._held.get(lease.name) is not lease:
                return
            del self._held[lease.name]
            if not self.shared or lease.lost.is_set():
                return
            if self._stopping:  # kept (renewed) until ``close`` expires them all, to be taken over
                self._kept.add(lease.name)
                return
            try:
                async with self._db.unit() as session:
                    await repo.release_lease(session, lease.name, self.replica)
            except Exception as exc:  # it expires by itself; another replica then takes it over
                log.warning("could not release lease %s (it will expire): %s", lease.name, exc)

    def valid(self, lease: Lease) -> bool:
        """Whether the lease surely is still this replica's: not lost, and renewed recently enough
        that it cannot have expired (a replica cut off from the database stops on its own)."""
        if lease.lost.is_set():
            return False
        return not self.shared or self._now() < lease.renewed_at + self.duration - self.heartbeat / 2

    async def fence(self, session: AsyncSession, lease: Lease) -> bool:
        """Whether the lease is still this replica's, checked in the caller's transaction and kept so
        until it commits: a write made only when this says True cannot follow a takeover."""
        if not self.shared:
            return True
        return await repo.holds_lease(session, lease.name, self.replica, lease.epoch)

    def start(self) -> None:
        """Renew the leases every ``heartbeat`` from now on (shared only): from the first lease
        acquired, however long the rest of the start takes."""
        if self.shared:
            self._tasks.spawn("heartbeat", self._keep())

    def look_for_work(self, *sweeps: Sweep) -> None:
        """Run ``sweeps`` every ``heartbeat`` (shared only), apart from the renewals so that a slow
        look for work left behind never delays one."""
        if self.shared:
            self._tasks.spawn("takeover", self._sweep(sweeps))

    async def _keep(self) -> None:
        while True:
            await self.renew()
            await asyncio.sleep(self.heartbeat)

    async def _sweep(self, sweeps: tuple[Sweep, ...]) -> None:
        while True:
            await asyncio.sleep(self.heartbeat)
            for sweep in sweeps:
                try:
                    await sweep()
                except Exception:
                    log.exception("looking for work other replicas left failed; trying again")

    async def renew(self) -> None:
        """Extend every lease held; those taken over meanwhile (or unrenewable for too long) are lost."""
        started = self._now()
        renewed: dict[str, int] | None
        try:
            async with self._db.unit() as session:
                names = [*self._held, *self._kept]
                renewed = await repo.renew_leases(session, self.replica, names, self.duration)
        except Exception as exc:
            log.warning("could not renew this replica's leases: %s", exc)
            renewed = None
        for name, lease in list(self._held.items()):
            if lease.since >= started:  # acquired while the renewal ran: not judged by it
                continue
            if renewed is not None and renewed.get(name) == lease.epoch:
                lease.renewed_at = started
            elif renewed is not None or started > lease.renewed_at + self.duration:
                log.info("lease %s was taken over by another replica", name)
                del self._held[name]
                lease.lose()

    def stopping(self) -> None:
        """The replica stops: what it lets go from now on is kept until ``close`` hands it all over
        (a chat whose follow ends because the replica stops is still busy: another must follow it)."""
        self._stopping = True

    async def close(self) -> None:
        """Stop the heartbeat and expire every lease held, so other replicas take over at once."""
        await self._tasks.cancel()
        held, self._held = list(self._held.values()), {}
        if not self.shared:
            return
        try:
            async with self._db.unit() as session:
                await repo.expire_leases(session, self.replica)
        except Exception as exc:
            log.warning("could not hand this replica's leases over (they expire by themselves): %s", exc)
        for lease in held:
            lease.lost.set()


class Turns:
    """Per key, one holder at a time: in this process first come first served (callers that enter
    before their first await are served in order), and across replicas by a lease
    (``prefix<key>``), waited for, so that a thread's messages are handled one at a time whichever
    replicas receive them. A lease, not a held database lock: waiting for a turn costs no connection,
    and a replica that dies mid-turn frees it when its lease expires."""

    _POLL = 0.05
    """Seconds between two tries for a lease another replica holds (a turn takes about that long)."""

    def __init__(self, leases: Leases, prefix: str) -> None:
        self._leases = leases
        self._prefix = prefix
        self._local = KeyedLocks()

    @asynccontextmanager
    async def hold(self, *key: str) -> AsyncIterator[None]:
        """Hold ``key``'s turn for the block."""
        async with self._local.hold(key):
            name = self._prefix + ":".join(key)
            lease = await self._leases.acquire(name)
            while lease is None:
                await asyncio.sleep(self._POLL)
                lease = await self._leases.acquire(name)
            try:
                yield
            finally:
                await self._leases.release(lease)
