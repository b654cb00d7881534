"""SQLite called from the event loop's own thread, in place of aiosqlite's worker thread.

aiosqlite hands every call (open a cursor, execute, fetch, close, commit) to a worker thread and
wakes the event loop with each result. On this machine that hand-off cost about 1 ms of CPU per
statement, where SQLite itself takes tens of microseconds: a one-statement transaction took 1.3 ms
of CPU through aiosqlite and 0.37 ms called directly, and with a dozen transactions per chat the
database was half of the bridge's CPU when a hundred chats started at once. The thread buys
nothing here, because the bridge's SQLite transactions already take turns in the process
(``Database.unit``): a statement never waits for another of the bridge's own.

It could wait for another process (``bridge migrate`` beside ``bridge serve``, a second replica on
one file, an operator's ``sqlite3`` shell). So the connection's busy timeout is zero: a call that
finds the database locked fails at once, and only that call is retried on a worker thread with the
usual busy timeout, so the event loop never sleeps on another process's lock. Commits do not wait
for the disk (see ``_PRAGMAS``), and checkpoints are made on a worker thread (``Checkpoints``).

SQLAlchemy's aiosqlite dialect is kept (its SQL, types and pool are right for SQLite); only the
connection it drives is this one, given through ``create_async_engine(async_creator=...)``. The
class offers exactly the part of aiosqlite's interface that dialect calls.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Awaitable, Callable, Iterable
from functools import partial
from typing import Any, TypeVar

R = TypeVar("R")

BUSY_TIMEOUT_MS = 30_000
"""How long a call retried on a worker thread waits for another process's lock."""

_PRAGMAS = ("PRAGMA journal_mode=WAL", "PRAGMA synchronous=NORMAL", "PRAGMA foreign_keys=ON")
"""WAL lets readers proceed during a write. ``synchronous=NORMAL`` (SQLite's advice for WAL) syncs
the log at checkpoints instead of at every commit: a commit survives the bridge's crash or kill, and
only a power loss or OS crash may undo the last moments' commits (use PostgreSQL where that matters).
With a sync per commit, commits held SQLite's single writer for milliseconds each, and under load
the bridge's transactions queued for 0.4 s (p50) to take their turn. Foreign keys are off in SQLite
unless asked for."""


CHECKPOINT_EVERY = 200
"""Commits between two checkpoints: a few hundred pages of log (SQLite's own default is 1,000)."""


class Checkpoints:
    """When to copy the write-ahead log back into the database file: every ``CHECKPOINT_EVERY``
    commits of the bridge's connections to one database.

    SQLite's automatic checkpoint runs inside the commit that takes the log past 1,000 pages, and
    syncs the file: with the bridge's calls in the event loop's thread, that stalled the whole loop
    for 20-30 ms every few hundred commits (``bench/fanout.py`` saw it in the relay's p99). So the
    connections have it off, and the commit that makes a checkpoint due runs it on a worker thread,
    still within its transaction's turn: no write of the bridge comes in between, so the checkpoint
    copies the whole log and the next write starts the log afresh, as after an automatic one (a
    checkpoint made by another connection while the bridge writes on never catches up, and the log
    grows without end).
    """

    def __init__(self) -> None:
        self._commits = 0

    def due(self) -> bool:
        """Count a commit; True when it is the one to make a checkpoint."""
        self._commits = (self._commits + 1) % CHECKPOINT_EVERY
        return self._commits == 0


def _is_busy(error: sqlite3.OperationalError) -> bool:
    """SQLITE_BUSY or one of its extended codes (the low byte is the primary code)."""
    code = getattr(error, "sqlite_errorcode", None)
    return code is not None and code & 0xFF == sqlite3.SQLITE_BUSY


class InlineConnection:
    """One SQLite connection, its calls run in the calling thread (see the module's docstring)."""

    def __init__(self, connection: sqlite3.Connection, checkpoints: Checkpoints | None = None) -> None:
        self._connection: sqlite3.Connection | None = connection
        self._checkpoints = checkpoints

    @property
    def _conn(self) -> sqlite3.Connection:
        if self._connection is None:
            raise ValueError("no active connection")
        return self._connection

    async def run(self, call: Callable[[], R]) -> R:
        """``call()`` here; if another process holds the lock, again on a worker thread that waits
        for it."""
        try:
            return call()
        except sqlite3.OperationalError as error:
            if not _is_busy(error):
                raise
        return await self._on_thread(call)

    async def _on_thread(self, call: Callable[[], R]) -> R:
        """``call()`` on a worker thread, waiting for other processes' locks. A cancelled caller
        still waits for the thread to finish: the connection is never used by two threads at once."""
        future = asyncio.get_running_loop().run_in_executor(None, self._waiting, call)
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            await asyncio.wait([future])
            raise

    def _waiting(self, call: Callable[[], R]) -> R:
        self._conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        try:
            return call()
        finally:
            self._conn.execute("PRAGMA busy_timeout=0")

    def cursor(self) -> InlineCursor:
        return InlineCursor(self, self._conn.cursor())

    @property
    def isolation_level(self) -> str | None:
        return self._conn.isolation_level

    async def create_function(self, *args: Any, **kwargs: Any) -> None:
        self._conn.create_function(*args, **kwargs)

    async def commit(self) -> None:
        await self.run(self._conn.commit)
        if self._checkpoints is not None and self._checkpoints.due():
            await self._on_thread(self._checkpoint)

    def _checkpoint(self) -> None:
        self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()  # read out: no statement left open

    async def rollback(self) -> None:
        await self.run(self._conn.rollback)

    async def close(self) -> None:
        self.stop()

    def stop(self) -> None:
        """Close at once (SQLAlchemy's terminate); closing twice is harmless."""
        if self._connection is not None:
            self._connection.close()
            self._connection = None


class InlineCursor:
    """A ``sqlite3.Cursor`` behind the awaitable methods SQLAlchemy's aiosqlite dialect calls."""

    def __init__(self, connection: InlineConnection, cursor: sqlite3.Cursor) -> None:
        self._connection = connection
        self._cursor = cursor

    async def __aenter__(self) -> InlineCursor:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    async def execute(self, sql: str, parameters: Any = ()) -> InlineCursor:
        await self._connection.run(partial(self._cursor.execute, sql, parameters))
        return self

    async def executemany(self, sql: str, parameters: Iterable[Any]) -> InlineCursor:
        rows = list(parameters)  # a generator could not be replayed by a retry
        await self._connection.run(partial(self._cursor.executemany, sql, rows))
        return self

    async def fetchone(self) -> Any:
        return self._cursor.fetchone()

    async def fetchmany(self, size: int | None = None) -> list[Any]:
        return self._cursor.fetchmany(self._cursor.arraysize if size is None else size)

    async def fetchall(self) -> list[Any]:
        return self._cursor.fetchall()

    async def close(self) -> None:
        self._cursor.close()

    @property
    def description(self) -> Any:
        return self._cursor.description

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount

    @property
    def lastrowid(self) -> int | None:
        return self._cursor.lastrowid

    @property
    def arraysize(self) -> int:
        return self._cursor.arraysize

    @arraysize.setter
    def arraysize(self, value: int) -> None:
        self._cursor.arraysize = value


def creator(database: str) -> Callable[[], Awaitable[InlineConnection]]:
    """The ``async_creator`` for ``create_async_engine``: opens ``database`` (a path, or
    ``:memory:``) with the bridge's pragmas, its checkpoints made by one ``Checkpoints``.
    ``check_same_thread`` is off only so that a call can be retried on a worker thread; the
    connection is never used from two threads at once."""
    checkpoints = None if database == ":memory:" else Checkpoints()
    pragmas = _PRAGMAS if checkpoints is None else (*_PRAGMAS, "PRAGMA wal_autocheckpoint=0")

    async def connect() -> InlineConnection:
        connection = InlineConnection(
            sqlite3.connect(database, timeout=0, check_same_thread=False), checkpoints
        )
        for pragma in pragmas:
            await connection.run(partial(connection._conn.execute, pragma))
        return connection

    return connect
