"""Pacing of Python's garbage collector in ``bridge serve``: short pauses, a long one rarely.

A full (generation 2) collection walks every object the process holds and stops the event loop
meanwhile. With a thousand chats at work that was 120-175 ms every eight seconds or so, the largest
part of the relay's p99 in ``bench/fanout.py``. What survives a full collection is mostly what the
bridge keeps for as long as a chat lives, so it is frozen (``gc.freeze``) after each one: the next
full collection walks only what came since. Frozen objects are still freed when nothing refers to
them; only cycles among them are not found. So every ``full_every`` seconds everything is thawed and
collected at once: one long pause every ten minutes instead of one every few seconds.
"""

from __future__ import annotations

import asyncio
import gc
from typing import Any

from bridge.tasks import TaskGroup

FULL_EVERY = 600.0
"""Seconds between two collections of everything, frozen objects included."""


class CollectorPacing:
    """Freezes what survives each full collection, and collects everything every ``full_every``."""

    def __init__(self, full_every: float = FULL_EVERY) -> None:
        self._full_every = full_every
        self._tasks = TaskGroup("collector")

    def start(self) -> None:
        """From now on: what start-up loaded is frozen, and so is what outlives a full collection."""
        gc.freeze()
        gc.callbacks.append(self._after_collection)
        self._tasks.spawn("collect-everything", self._collect_everything())

    async def stop(self) -> None:
        """Back to the collector's defaults (nothing frozen)."""
        if self._after_collection in gc.callbacks:
            gc.callbacks.remove(self._after_collection)
        await self._tasks.cancel()
        gc.unfreeze()

    @staticmethod
    def _after_collection(phase: str, info: dict[str, Any]) -> None:
        if phase == "stop" and info.get("generation") == 2:
            gc.freeze()

    async def _collect_everything(self) -> None:
        while True:
            await asyncio.sleep(self._full_every)
            gc.unfreeze()
            gc.collect()  # a full collection: frozen again after it
