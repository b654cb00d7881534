"""Storage on SQLite and PostgreSQL: migrations, claims, cursors, slots."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import sys
from asyncio.subprocess import PIPE
from datetime import timedelta
from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import update
from sqlmodel import SQLModel, col

import bridge.db.models  # noqa: F401 - registers the tables
from bridge.db import repo
from bridge.db.engine import Database, async_url
from bridge.db.inline_sqlite import CHECKPOINT_EVERY
from bridge.db.migrate import upgrade
from bridge.db.models import SeenEvent, utcnow
from bridge.relay.takeover import EVENTS_KEPT, prune_events


async def _migrated(url: str) -> Database:
    db = Database(url)
    await upgrade(db)
    return db


async def test_migrations_match_models(database_url: str) -> None:
    """A fresh database migrated to head has exactly the tables and columns the models declare."""
    db = await _migrated(database_url)
    try:
        async with db.engine.connect() as conn:
            diff = await conn.run_sync(
                lambda c: compare_metadata(MigrationContext.configure(c), SQLModel.metadata)
            )
        assert diff == []
    finally:
        await db.dispose()


async def test_concurrent_migrations_are_safe(database_url: str) -> None:
    """Several replicas running `bridge migrate` at the same moment all succeed."""
    env = {**os.environ, "DATABASE_URL": database_url}
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bridge", "migrate", env=env, stdout=PIPE, stderr=PIPE
        )
        for _ in range(3)
    ]
    results = [await proc.communicate() for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0, 0], results
    db = await _migrated(database_url)
    await db.dispose()


async def test_event_and_thread_claims_happen_once(database_url: str) -> None:
    """A Slack event id and a thread can each be claimed once; the second claim is refused."""
    db = await _migrated(database_url)
    try:
        async with db.unit() as s:
            assert await repo.claim_event(s, "Ev1", '{"event_id":"Ev1"}')
            assert not await repo.claim_event(s, "Ev1", '{"event_id":"Ev1"}')
            link = await repo.claim_thread(
                s, team_id="T1", channel_id="C1", thread_ts="1.000100", requester_user_id="U1"
            )
            assert link is not None
            again = await repo.claim_thread(
                s, team_id="T1", channel_id="C1", thread_ts="1.000100", requester_user_id="U2"
            )
            assert again is None
            assert link.id is not None
            assert await repo.claim_inbound(s, link_id=link.id, channel_id="C1", ts="1.000100", user_id="U1")
            assert not await repo.claim_inbound(
                s, link_id=link.id, channel_id="C1", ts="1.000100", user_id="U1"
            )
            await repo.attach_chat(s, link.id, chat_id="chat-1", status="pending", phase="starting")
        async with db.unit() as s:
            found = await repo.find_link_by_chat(s, "chat-1")
            assert found is not None
            assert found.thread_ts == "1.000100"
            assert [lk.chat_id for lk in await repo.find_links_to_follow(s)] == ["chat-1"]
            await repo.set_status(s, "chat-1", status="requires_action", phase=repo.WAITING_PHASE)
        async with db.unit() as s:
            assert [lk.chat_id for lk in await repo.find_links_to_follow(s)] == ["chat-1"], (
                "a wait is followed"
            )
            await repo.set_status(s, "chat-1", status="waiting", phase="idle")
        async with db.unit() as s:
            assert list(await repo.find_links_to_follow(s)) == []
    finally:
        await db.dispose()


async def test_concurrent_thread_claims_have_one_winner(database_url: str) -> None:
    """Two claims racing for the same thread (app_mention and message twins) yield one link."""
    db = await _migrated(database_url)
    try:

        async def claim() -> bool:
            async with db.unit() as s:
                return (
                    await repo.claim_thread(
                        s, team_id="T1", channel_id="C1", thread_ts="2.000200", requester_user_id="U1"
                    )
                    is not None
                )

        results = await asyncio.gather(*(claim() for _ in range(5)))
        assert sorted(results) == [False, False, False, False, True]
    finally:
        await db.dispose()


async def test_failed_claim_is_kept_and_marked(database_url: str) -> None:
    """A thread whose chat could not be created keeps its link, marked failed and not followed."""
    db = await _migrated(database_url)
    try:
        async with db.unit() as s:
            link = await repo.claim_thread(
                s, team_id="T", channel_id="C", thread_ts="3.1", requester_user_id="U"
            )
            assert link is not None
            assert link.id is not None
            await repo.mark_failed(s, link.id)
        async with db.unit() as s:
            found = await repo.find_link_by_thread(s, team_id="T", channel_id="C", thread_ts="3.1")
            assert found is not None
            assert found.phase == repo.FAILED_PHASE
            assert list(await repo.find_links_to_follow(s)) == []
    finally:
        await db.dispose()


async def test_unfinished_events_are_kept_until_finished(database_url: str) -> None:
    """An event recorded but not handled is returned for replay, oldest first, until it is finished."""
    db = await _migrated(database_url)
    try:
        async with db.unit() as s:
            await repo.claim_event(s, "Ev1", "first")
            await repo.claim_event(s, "Ev2", "second")
        async with db.unit() as s:
            assert [e.payload for e in await repo.find_unfinished_events(s)] == ["first", "second"]
            await repo.finish_event(s, "Ev1")
        async with db.unit() as s:
            assert [e.payload for e in await repo.find_unfinished_events(s)] == ["second"]
            assert not await repo.claim_event(s, "Ev1", "first again")
    finally:
        await db.dispose()


async def test_handled_events_are_pruned_after_a_day_and_unhandled_ones_kept(database_url: str) -> None:
    """The event log does not grow forever: handled events a day old go, unhandled ones stay for replay."""
    db = await _migrated(database_url)
    try:
        async with db.unit() as s:
            for event_id in ("Old", "OldUnhandled", "New"):
                await repo.claim_event(s, event_id, "{}")
            await repo.finish_event(s, "Old")
            await repo.finish_event(s, "New")
        assert await prune_events(db) == 0  # nothing is a day old yet
        async with db.unit() as s:
            await s.execute(
                update(SeenEvent)
                .where(col(SeenEvent.event_id).in_(["Old", "OldUnhandled"]))
                .values(received_at=utcnow() - EVENTS_KEPT - timedelta(minutes=1))
            )
        assert await prune_events(db) == 1
        async with db.unit() as s:
            assert not await repo.claim_event(s, "New", "{}")  # a retry of a recent one still stops
            assert await repo.claim_event(s, "Old", "{}")  # forgotten
            assert [e.event_id for e in await repo.find_unfinished_events(s)] == ["OldUnhandled", "Old"]
    finally:
        await db.dispose()


async def test_cursor_only_moves_forward(database_url: str) -> None:
    """Saving an older cursor never moves a chat's cursor back."""
    db = await _migrated(database_url)
    try:
        async with db.unit() as s:
            assert await repo.find_cursor(s, "c") is None
            await repo.save_cursor(s, "c", 10)
        async with db.unit() as s:
            await repo.save_cursor(s, "c", 7)
            await repo.save_cursor(s, "c", 2**62)
        async with db.unit() as s:
            assert await repo.find_cursor(s, "c") == 2**62
    finally:
        await db.dispose()


async def test_slots_store_ts_and_digest(database_url: str) -> None:
    """A posted slot's ts and digest are kept, and updating a slot keeps one row."""
    db = await _migrated(database_url)
    try:
        async with db.unit() as s:
            link = await repo.claim_thread(
                s, team_id="T", channel_id="C", thread_ts="4.1", requester_user_id="U"
            )
            assert link is not None
            assert link.id is not None
            await repo.save_slot(s, link_id=link.id, slot="after:1", ts="5.1", digest="a")
        async with db.unit() as s:
            await repo.save_slot(s, link_id=link.id, slot="after:1", ts="5.1", digest="b")
        async with db.unit() as s:
            stored = await repo.find_posted_messages(s, link.id)
        assert {k: (v.ts, v.digest) for k, v in stored.items()} == {"after:1": ("5.1", "b")}
    finally:
        await db.dispose()


def test_async_driver_is_chosen_from_plain_urls() -> None:
    """Operators write plain URLs; the bridge picks aiosqlite or asyncpg."""
    assert async_url("sqlite:///bridge.db") == "sqlite+aiosqlite:///bridge.db"
    assert async_url("postgresql://u:p@h:5432/d") == "postgresql+asyncpg://u:p@h:5432/d"
    assert async_url("postgres://u@h/d?sslmode=require") == "postgresql+asyncpg://u@h/d?ssl=require"


async def test_sqlite_write_waits_for_another_process_lock_without_stalling_the_loop(tmp_path: Path) -> None:
    """SQLite calls run in the event loop's thread; one that finds the file locked by another
    connection (another process) waits on a worker thread, so the loop keeps turning meanwhile,
    and completes once that lock is gone."""
    path = tmp_path / "shared.db"
    db = await _migrated(f"sqlite:///{path}")
    other = sqlite3.connect(path, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")  # holds the write lock, as another process's transaction does

        async def write() -> bool:
            async with db.unit() as session:
                return await repo.claim_event(session, "Ev1", "{}")

        writing = asyncio.create_task(write())
        turns = 0
        while turns < 100:  # the loop turns while the write waits; inline, it would be stuck in SQLite
            await asyncio.sleep(0)
            turns += 1
        assert not writing.done()
        other.execute("COMMIT")
        assert await asyncio.wait_for(writing, 10)
        async with db.unit() as session:
            assert [e.payload for e in await repo.find_unfinished_events(session)] == ["{}"]
    finally:
        other.close()
        await db.dispose()


def _size(path: str) -> int:
    return os.path.getsize(path)


async def test_sqlite_log_is_checkpointed_and_reused_under_steady_writes(tmp_path: Path) -> None:
    """SQLite's automatic checkpoint (which would stall the event loop) is off; the bridge's own,
    made every ``CHECKPOINT_EVERY`` commits off the loop, copies the whole log back, so under a
    steady stream of writes the log file is reused rather than growing without end."""
    path = tmp_path / "steady.db"
    db = await _migrated(f"sqlite:///{path}")
    wal = f"{path}-wal"

    async def commits(start: int, count: int) -> None:
        for n in range(start, start + count):
            async with db.unit() as session:
                await repo.claim_event(session, f"Ev{n}", "{}")

    try:
        await commits(0, CHECKPOINT_EVERY - 1)
        before_first = _size(wal)  # the log's size just before the first checkpoint
        await commits(CHECKPOINT_EVERY, 5 * CHECKPOINT_EVERY)
        assert _size(wal) < 2 * before_first, "the log was not reused after checkpoints"
        check = sqlite3.connect(path)
        try:
            assert check.execute("PRAGMA wal_autocheckpoint").fetchone() == (1000,), "a new connection's"
            assert check.execute("SELECT count(*) FROM seen_event").fetchone() == (6 * CHECKPOINT_EVERY - 1,)
        finally:
            check.close()
    finally:
        await db.dispose()
