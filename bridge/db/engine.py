"""Async engine and unit of work, one code path for SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from contextvars import ContextVar
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from bridge.db import inline_sqlite


def async_url(url: str) -> str:
    """Pick the async driver for a plain URL: ``sqlite://`` -> aiosqlite, ``postgresql://`` -> asyncpg.

    Operators write the URL they know; the driver is the bridge's business.
    """
    parsed = make_url(url.replace("postgres://", "postgresql://", 1))
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return parsed.set(drivername="sqlite+aiosqlite").render_as_string(hide_password=False)
    if backend == "postgresql":
        query = dict(parsed.query)
        sslmode = query.pop("sslmode", None)
        if sslmode is not None:
            query["ssl"] = sslmode
        return parsed.set(drivername="postgresql+asyncpg", query=query).render_as_string(hide_password=False)
    raise ValueError(f"unsupported database backend {backend!r}; use sqlite:/// or postgresql://")


_turn_holder: ContextVar[asyncio.Task[Any] | None] = ContextVar("sqlite_turn_holder", default=None)
"""The task whose transaction holds the SQLite turn, so a unit nested in it does not wait for itself."""


class Database:
    """Owns the engine; ``unit()`` is the only way code touches the database.

    SQLite admits one writer at a time, and a second connection that wants to write sleeps in
    SQLite's busy handler, with growing pauses and no order: under load (a hundred chats starting at
    once) transactions waited for seconds while the lock was free, and the streams behind them with
    them. So on SQLite the bridge's transactions take turns in the process, first come first served,
    and SQLite's own lock is only ever met by another process. PostgreSQL locks rows and needs none.
    """

    def __init__(self, url: str) -> None:
        self.url = async_url(url)
        self.is_sqlite = self.url.startswith("sqlite")
        # A file does not drop idle connections; a PostgreSQL server (or what is between) may.
        kwargs: dict[str, Any] = {"pool_pre_ping": not self.is_sqlite}
        if self.is_sqlite:
            kwargs["async_creator"] = inline_sqlite.creator(make_url(self.url).database or ":memory:")
        self.engine: AsyncEngine = create_async_engine(self.url, **kwargs)
        self._sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        self._turn = asyncio.Lock() if self.is_sqlite else None

    @asynccontextmanager
    async def unit(self) -> AsyncIterator[AsyncSession]:
        """A transaction: committed when the block ends, rolled back when it raises."""
        async with AsyncExitStack() as stack:
            task = asyncio.current_task()
            if self._turn is not None and _turn_holder.get() is not task:
                await stack.enter_async_context(self._turn)
                token = _turn_holder.set(task)
                stack.callback(_turn_holder.reset, token)
            session = await stack.enter_async_context(self._sessions())
            await stack.enter_async_context(session.begin())
            yield session

    async def ping(self) -> None:
        """Raise if the database cannot answer a trivial query (used by ``/readyz``)."""
        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def dispose(self) -> None:
        """Close pooled connections."""
        await self.engine.dispose()
