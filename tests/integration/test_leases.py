"""Leases on PostgreSQL: one holder at a time, taken over once expired, fenced writes by a lost holder
refused, handed on when asked for; on SQLite every lease is the one replica's."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from bridge.db.engine import Database
from bridge.db.migrate import upgrade
from bridge.relay.leases import Leases, Turns
from tests.conftest import postgres_database


@pytest.fixture
async def shared_db() -> AsyncIterator[Database]:
    async for url in postgres_database():
        db = Database(url)
        await upgrade(db)
        try:
            yield db
        finally:
            await db.dispose()


async def test_a_lease_has_one_holder_until_it_expires_and_the_old_holder_is_fenced(
    shared_db: Database,
) -> None:
    first = Leases(shared_db, "a" * 32, duration=0.5, heartbeat=0.2)
    second = Leases(shared_db, "b" * 32, duration=0.5, heartbeat=0.2)
    held = await first.acquire("thread:1")
    assert held is not None
    assert held.epoch == 1
    assert not held.inherited
    assert await second.acquire("thread:1") is None  # held, and not renewed yet: still the first's
    await asyncio.sleep(0.6)  # the first replica's heartbeat stopped: its lease expired
    assert not first.valid(held)
    taken = await second.acquire("thread:1")
    assert taken is not None
    assert taken.epoch == 2
    assert taken.inherited
    async with shared_db.unit() as session:
        assert not await first.fence(session, held)  # the old holder's write is refused
        assert await second.fence(session, taken)
    await first.renew()  # the first replica's heartbeat finds it lost: its guarded work is cancelled
    assert held.lost.is_set()


async def test_a_lease_asked_for_is_handed_on_when_its_holder_lets_go(shared_db: Database) -> None:
    first = Leases(shared_db, "a" * 32, duration=30, heartbeat=10)
    second = Leases(shared_db, "b" * 32, duration=30, heartbeat=10)
    held = await first.acquire("thread:7")
    assert held is not None
    assert await second.acquire("thread:7") is None  # asks for it
    await first.release(held)  # expired rather than deleted: the takeover sweep finds it
    taken = await second.acquire("thread:7")
    assert taken is not None
    assert taken.epoch == 2
    await second.release(taken)  # nobody asked: gone
    again = await first.acquire("thread:7")
    assert again is not None
    assert again.epoch == 1


async def test_turns_of_one_key_follow_each_other_across_replicas(shared_db: Database) -> None:
    """Two replicas' turns on one thread never overlap; the second waits for the first to end."""
    turns = [Turns(Leases(shared_db, c * 32, duration=30, heartbeat=10), "inbound:") for c in "ab"]
    inside: list[str] = []
    overlaps = 0

    async def turn(replica: int) -> None:
        nonlocal overlaps
        async with turns[replica].hold("C1", "1.0"):
            overlaps += len(inside)
            inside.append(str(replica))
            await asyncio.sleep(0.1)
            inside.remove(str(replica))

    await asyncio.gather(*(turn(i % 2) for i in range(6)))
    assert overlaps == 0


async def test_on_sqlite_the_one_replica_holds_every_lease(tmp_path: object) -> None:
    db = Database(f"sqlite:///{tmp_path}/bridge.db")
    try:
        leases = Leases(db, "a" * 32)
        other = Leases(db, "b" * 32)
        mine = await leases.acquire("thread:1")
        assert mine is not None
        assert await other.acquire("thread:1") is not None
        async with db.unit() as session:
            assert await leases.fence(session, mine)
        assert leases.valid(mine)
    finally:
        await db.dispose()
