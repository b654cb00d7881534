"""Keyed locks, and tasks that end with the block that started them."""

from __future__ import annotations

import asyncio

from bridge.tasks import KeyedLocks, TaskGroup, scoped_task


async def test_same_key_runs_in_submission_order_and_is_forgotten() -> None:
    """Tasks of one key run one at a time, in the order they started; the key is dropped afterwards."""
    locks = KeyedLocks()
    order: list[int] = []
    gate = asyncio.Event()

    async def work(n: int) -> None:
        async with locks.hold("thread"):
            if n == 0:
                await gate.wait()
            order.append(n)

    group = TaskGroup("test")
    for n in range(5):
        group.spawn(str(n), work(n))
    await asyncio.sleep(0)
    assert len(locks) == 1
    gate.set()
    assert await group.wait(5)
    assert order == [0, 1, 2, 3, 4]
    assert len(locks) == 0


async def test_a_scoped_task_never_outlives_its_block() -> None:
    """Leaving the block cancels the task if it still runs, and waits until it has unwound."""
    unwound = asyncio.Event()

    async def forever() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            unwound.set()

    async with scoped_task("race", forever()) as task:
        await asyncio.sleep(0)
        assert not task.done()
    assert task.cancelled()
    assert unwound.is_set()
