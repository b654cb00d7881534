"""Group commit: small writes that arrive together share one transaction.

A burst of Slack events (a hundred mentions at once, each delivered twice: ``app_mention`` and
``message``) needs one durable record per event before each is acknowledged, and Slack gives up on
an acknowledgement after 3 s. One transaction each, queued on SQLite's single writer, made the last
ones miss that deadline, so Slack retried them minutes later. Written in groups, a burst costs a
few commits: whoever arrives while a group commits joins the next one.

The writer runs as a background task. Storage imports nothing from the bridge, so its owner hands
in how to start one (``spawn``: the bridge passes ``TaskGroup.spawn``, which names, keeps and
watches it).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Generic, TypeVar

from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from bridge.db.engine import Database

log = logging.getLogger(__name__)

CONFLICT_ATTEMPTS = 3
"""Times a group is written before a lock conflict fails its callers."""

_CONFLICTS = frozenset({"40P01", "40001"})
"""PostgreSQL's deadlock_detected and serialization_failure: the transaction was rolled back whole
and may simply run again."""


def is_conflict(exc: DBAPIError) -> bool:
    """Whether PostgreSQL rolled the transaction back to resolve a conflict with another one."""
    return getattr(exc.orig, "sqlstate", None) in _CONFLICTS


T = TypeVar("T")
R = TypeVar("R")

Spawn = Callable[[str, Coroutine[Any, Any, None]], "asyncio.Task[Any]"]
"""Starts a named background task (``bridge.tasks.TaskGroup.spawn``)."""


class GroupWriter(Generic[T, R]):
    """Calls ``write(session, item)`` for each item, many items per transaction; a caller returns
    once its item is committed. A failed transaction fails every caller of its group (one PostgreSQL
    rolled back to break a deadlock is written again first)."""

    def __init__(self, db: Database, write: Callable[[AsyncSession, T], Awaitable[R]], spawn: Spawn) -> None:
        self._db = db
        self._write = write
        self._spawn = spawn
        self._waiting: list[tuple[T, asyncio.Future[R]]] = []
        self._writer: asyncio.Task[Any] | None = None

    async def __call__(self, item: T) -> R:
        return await self.submit(item)

    def submit(self, item: T) -> asyncio.Future[R]:
        """Queue ``item`` now (items are written in the order they were queued); the future is done
        once it is committed. For a caller that must not wait, yet needs its writes in order."""
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._waiting.append((item, future))
        if self._writer is None:
            self._writer = self._spawn("group-writer", self._write_groups())
        return future

    async def _commit(self, group: list[tuple[T, asyncio.Future[R]]]) -> list[R]:
        """Write ``group`` in one transaction; one PostgreSQL aborted to break a deadlock (or a
        serialization conflict) rolled back whole, so it is written again, a few times at most."""
        attempt = 1
        while True:
            try:
                async with self._db.unit() as session:
                    return [await self._write(session, item) for item, _ in group]
            except DBAPIError as exc:
                if attempt == CONFLICT_ATTEMPTS or not is_conflict(exc):
                    raise
                log.info(
                    "%d grouped writes lost a lock conflict (%s); writing them again", len(group), exc.orig
                )
                attempt += 1

    async def _write_groups(self) -> None:
        group: list[tuple[T, asyncio.Future[R]]] = []
        try:
            while self._waiting:
                group, self._waiting = self._waiting, []
                try:
                    results = await self._commit(group)
                except Exception as exc:
                    for _, future in group:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                for (_, future), result in zip(group, results, strict=True):
                    if not future.done():  # its caller may have been cancelled meanwhile
                        future.set_result(result)
                group = []
        finally:
            self._writer = None
            for _, future in [*group, *self._waiting]:  # cancelled (shutdown): nobody writes these
                future.cancel()
            self._waiting = []
