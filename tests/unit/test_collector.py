"""Garbage collector pacing: survivors of a full collection frozen, everything collected now and then."""

from __future__ import annotations

import asyncio
import gc
import weakref

from bridge.collector import CollectorPacing


class _Node:
    def __init__(self) -> None:
        self.me = self  # a reference cycle: only the cycle collector frees it


async def test_survivors_are_frozen_and_everything_is_collected_now_and_then() -> None:
    """A cycle that outlived a full collection is frozen, so full collections skip it even once it
    is garbage; the periodic collection of everything frees it."""
    pacing = CollectorPacing(full_every=0.05)
    pacing.start()
    try:
        node = _Node()
        freed = asyncio.Event()
        alive = weakref.ref(node, lambda _: freed.set())
        gc.collect()  # a full collection: ``node`` survives it and is frozen with the rest
        assert gc.get_freeze_count() > 0
        del node
        gc.collect()
        assert alive() is not None, "frozen: a full collection leaves it alone"
        await asyncio.wait_for(freed.wait(), 5)  # the periodic collection of everything frees it
    finally:
        await pacing.stop()
    assert gc.get_freeze_count() == 0, "stop thaws everything"
