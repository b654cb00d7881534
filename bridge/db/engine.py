"""Async engine and unit of work, one code path for SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine


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


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    """WAL lets readers proceed during a write; the busy timeout makes writers wait, not fail."""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


class Database:
    """Owns the engine; ``unit()`` is the only way code touches the database."""

    def __init__(self, url: str) -> None:
        self.url = async_url(url)
        self.is_sqlite = self.url.startswith("sqlite")
        kwargs: dict[str, Any] = {"pool_pre_ping": True}
        if self.is_sqlite:
            kwargs["connect_args"] = {"timeout": 30}
        self.engine: AsyncEngine = create_async_engine(self.url, **kwargs)
        if self.is_sqlite:
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)
        self._sessions = async_sessionmaker(self.engine, expire_on_commit=False)

    @asynccontextmanager
    async def unit(self) -> AsyncIterator[AsyncSession]:
        """A transaction: committed when the block ends, rolled back when it raises."""
        async with self._sessions() as session, session.begin():
            yield session

    async def ping(self) -> None:
        """Raise if the database cannot answer a trivial query (used by ``/readyz``)."""
        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def dispose(self) -> None:
        """Close pooled connections."""
        await self.engine.dispose()
