"""Token buckets: Slack budgets kept, and final texts served before progress edits."""

from __future__ import annotations

import asyncio

from bridge.relay.limits import Budget, Priority, TokenBucket


async def test_final_texts_go_before_waiting_progress_edits() -> None:
    """When the budget is short, a final text overtakes progress edits that were waiting longer."""
    loop = asyncio.get_running_loop()
    bucket = TokenBucket(Budget(per_minute=1200, burst=1), scale=1.0, clock=loop.time)
    await bucket.take()  # the bucket is now empty; one token every 50 ms
    order: list[str] = []

    async def wait(name: str, priority: Priority) -> None:
        await bucket.take(priority)
        order.append(name)

    tasks = [asyncio.ensure_future(wait("edit-1", Priority.PROGRESS))]
    tasks.append(asyncio.ensure_future(wait("edit-2", Priority.PROGRESS)))
    await asyncio.sleep(0)
    tasks.append(asyncio.ensure_future(wait("final", Priority.FINAL)))
    await asyncio.wait_for(asyncio.gather(*tasks), 5)
    assert order == ["final", "edit-1", "edit-2"]


async def test_bucket_keeps_the_rate() -> None:
    """Beyond the burst, tokens come no faster than the budget allows."""
    loop = asyncio.get_running_loop()
    bucket = TokenBucket(Budget(per_minute=600, burst=2), scale=1.0, clock=loop.time)
    start = loop.time()
    for _ in range(5):
        await bucket.take()
    assert loop.time() - start >= 0.29  # 2 at once, then 3 more at 10 per second


async def test_cancelled_waiter_does_not_block_others() -> None:
    """A waiter that gives up leaves the queue, and the next one is served."""
    loop = asyncio.get_running_loop()
    bucket = TokenBucket(Budget(per_minute=1200, burst=1), scale=1.0, clock=loop.time)
    await bucket.take()
    first = asyncio.ensure_future(bucket.take(Priority.FINAL))
    second = asyncio.ensure_future(bucket.take(Priority.PROGRESS))
    await asyncio.sleep(0)
    first.cancel()
    await asyncio.wait_for(second, 5)
