"""Group commit and the SQLite turn: a burst of small writes shares transactions and loses nothing."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from bridge.db import repo
from bridge.db.engine import Database
from bridge.db.group import GroupWriter
from bridge.db.migrate import upgrade
from bridge.relay.intake import Intake, integrity_key
from bridge.tasks import TaskGroup


async def _migrated(url: str) -> Database:
    db = Database(url)
    await upgrade(db)
    return db


async def test_a_burst_of_events_is_recorded_once_each(database_url: str) -> None:
    """Two hundred events recorded at once, each delivered twice (a retry racing the original): every
    first delivery is new, every second one a duplicate, and all are stored durably."""
    db = await _migrated(database_url)
    try:
        intake = Intake(db, integrity_key("signing-secret"))
        ids = [f"Ev{n}" for n in range(200)]
        first = await asyncio.gather(*(intake.record(i, {"event_id": i}) for i in ids))
        again = await asyncio.gather(*(intake.record(i, {"event_id": i}) for i in ids))
        assert first == [True] * len(ids)
        assert again == [False] * len(ids)
        assert len(await intake.unfinished()) == len(ids)
        await asyncio.gather(*(intake.finish(i) for i in ids))
        assert await intake.unfinished() == []
    finally:
        await db.dispose()


async def test_writes_that_arrive_together_share_a_transaction(database_url: str) -> None:
    """Callers that arrive while a group commits wait for the next one, together."""
    db = await _migrated(database_url)
    sessions: list[int] = []

    async def write(session: AsyncSession, event_id: str) -> bool:
        sessions.append(id(session))
        return await repo.claim_event(session, event_id, "{}")

    try:
        writer = GroupWriter(db, write, TaskGroup("test").spawn)
        assert await asyncio.gather(*(writer(f"Ev{n}") for n in range(50))) == [True] * 50
        assert len(set(sessions)) < 50
    finally:
        await db.dispose()


async def test_a_failed_group_fails_its_callers_and_the_next_group_proceeds(database_url: str) -> None:
    db = await _migrated(database_url)

    async def write(session: AsyncSession, event_id: str) -> bool:
        if event_id == "poison":
            raise ValueError("refused")
        return await repo.claim_event(session, event_id, "{}")

    try:
        writer = GroupWriter(db, write, TaskGroup("test").spawn)
        results = await asyncio.gather(writer("a"), writer("poison"), return_exceptions=True)
        assert all(isinstance(r, ValueError) for r in results)  # one transaction: neither is stored
        assert await writer("a") is True
    finally:
        await db.dispose()


async def test_a_unit_nested_in_a_unit_does_not_wait_for_itself(database_url: str) -> None:
    """On SQLite transactions take turns; one opened inside another in the same task goes ahead."""
    db = await _migrated(database_url)
    try:
        async with asyncio.timeout(10), db.unit() as outer, db.unit() as inner:
            assert await repo.find_unfinished_events(outer) == []
            assert await repo.claim_event(inner, "Ev-inner", "{}")
    finally:
        await db.dispose()


async def test_concurrent_transactions_all_commit(database_url: str) -> None:
    """Many tasks writing at once all commit (on SQLite in turn, none fails with 'database is locked')."""
    db = await _migrated(database_url)

    async def one(n: int) -> bool:
        async with db.unit() as session:
            await asyncio.sleep(0)  # yield inside the transaction, as real work does
            return await repo.claim_event(session, f"Ev{n}", "{}")

    try:
        assert await asyncio.gather(*(one(n) for n in range(20))) == [True] * 20
    finally:
        await db.dispose()


async def test_a_group_postgresql_picks_to_break_a_deadlock_is_written_again(database_url: str) -> None:
    """A group and another transaction lock two rows in opposite orders; PostgreSQL aborts the group
    (its session detects the deadlock first) and rolls it back whole: it is written again and its
    caller gets its result, not the deadlock."""
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite has one writer at a time: its transactions cannot deadlock")
    db = await _migrated(database_url)
    group_holds_a, other_holds_b = asyncio.Event(), asyncio.Event()
    attempts: list[int] = []

    async def write(session: AsyncSession, value: int) -> int:
        attempts.append(value)
        await session.execute(text("SET LOCAL deadlock_timeout = '50ms'"))  # this one detects it
        await session.execute(text("UPDATE pair SET n = n + 1 WHERE id = 'a'"))
        if len(attempts) == 1:
            group_holds_a.set()
            await other_holds_b.wait()
        await session.execute(text("UPDATE pair SET n = n + 1 WHERE id = 'b'"))
        return value

    async def other() -> None:
        async with db.unit() as session:
            await session.execute(text("SET LOCAL deadlock_timeout = '10s'"))
            await session.execute(text("UPDATE pair SET n = n + 10 WHERE id = 'b'"))
            await group_holds_a.wait()
            other_holds_b.set()
            await session.execute(text("UPDATE pair SET n = n + 10 WHERE id = 'a'"))

    try:
        async with db.unit() as session:
            await session.execute(text("CREATE TABLE pair (id TEXT PRIMARY KEY, n INTEGER NOT NULL)"))
            await session.execute(text("INSERT INTO pair VALUES ('a', 0), ('b', 0)"))
        writer = GroupWriter(db, write, TaskGroup("test").spawn)
        async with asyncio.timeout(20):
            written, _ = await asyncio.gather(writer(7), other())
        assert written == 7
        assert len(attempts) == 2, "aborted once, written again"
        async with db.unit() as session:
            rows = dict((await session.execute(text("SELECT id, n FROM pair"))).all())
        assert rows == {"a": 11, "b": 11}, "both transactions committed, the group once"
    finally:
        await db.dispose()
