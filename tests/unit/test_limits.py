"""Token buckets: Slack budgets kept, and final texts served before progress edits."""

from __future__ import annotations

import asyncio

import pytest

from bridge.relay.limits import Budget, Priority, SlackLimits, Ticket, TokenBucket, WorkspaceLimits
from bridge.relay.ports import SlackRateLimited
from bridge.slack.workspaces import WorkspaceKey, acting_for


async def _served(waiting: list[tuple[str, Priority]], late: tuple[str, Priority]) -> list[str]:
    """The order in which an empty bucket (a token every 50 ms) serves ``waiting`` callers and a
    ``late`` one that comes after them."""
    loop = asyncio.get_running_loop()
    bucket = TokenBucket(Budget(per_minute=1200, burst=1), scale=1.0, clock=loop.time)
    await bucket.take()
    order: list[str] = []

    async def wait(name: str, priority: Priority) -> None:
        await bucket.take(priority)
        order.append(name)

    tasks = [asyncio.ensure_future(wait(name, priority)) for name, priority in waiting]
    await asyncio.sleep(0)
    tasks.append(asyncio.ensure_future(wait(*late)))
    await asyncio.wait_for(asyncio.gather(*tasks), 5)
    return order


async def test_final_texts_go_before_waiting_progress_edits() -> None:
    """When the budget is short, a final text overtakes progress edits that were waiting longer."""
    waiting = [("edit-1", Priority.PROGRESS), ("edit-2", Priority.PROGRESS)]
    assert await _served(waiting, ("final", Priority.FINAL)) == ["final", "edit-1", "edit-2"]


async def test_progress_waiting_a_whole_round_goes_before_later_final_texts() -> None:
    """Final texts go first, but not for ever: a progress edit whose thread has waited a round of
    the line (everyone in it served once) ranks with the finals by when it began to wait."""
    loop = asyncio.get_running_loop()
    bucket = TokenBucket(Budget(per_minute=1200, burst=1), scale=1.0, clock=loop.time)
    await bucket.take()  # the bucket is now empty; one token every 50 ms
    order: list[str] = []

    async def finals(thread: int) -> None:  # four threads, each with a final text after another
        for n in range(10):
            await bucket.take(Priority.FINAL)
            order.append(f"final-{thread}-{n}")

    async def progress() -> None:
        await bucket.take(Priority.PROGRESS, since=loop.time())
        order.append("progress")

    tasks = [asyncio.ensure_future(finals(t)) for t in range(4)]
    await asyncio.sleep(0)
    tasks.append(asyncio.ensure_future(progress()))
    await asyncio.wait_for(asyncio.gather(*tasks), 10)
    # A round is five waiters at 20 a second, 0.25 s: the edit is served about then, after some five
    # finals, not after all forty.
    assert 3 <= order.index("progress") <= 12, order


async def test_a_thread_that_waited_long_already_is_overdue_at_once() -> None:
    """``since`` counts the thread's whole wait, not just its time in this line."""
    loop = asyncio.get_running_loop()
    bucket = TokenBucket(Budget(per_minute=1200, burst=1), scale=1.0, clock=loop.time)
    await bucket.take()
    order: list[str] = []

    async def wait(name: str, priority: Priority, since: float | None = None) -> None:
        await bucket.take(priority, since=since)
        order.append(name)

    tasks = [asyncio.ensure_future(wait("progress", Priority.PROGRESS, since=loop.time() - 60))]
    await asyncio.sleep(0)
    tasks.append(asyncio.ensure_future(wait("final", Priority.FINAL)))
    await asyncio.wait_for(asyncio.gather(*tasks), 5)
    assert order == ["progress", "final"]


async def test_equals_go_by_how_long_their_thread_has_waited() -> None:
    """Of two final texts, the one whose thread began waiting first goes first, whichever joined the
    line first: a thread just served, with more finals queued, goes to the back of the round."""
    loop = asyncio.get_running_loop()
    bucket = TokenBucket(Budget(per_minute=1200, burst=1), scale=1.0, clock=loop.time)
    await bucket.take()
    order: list[str] = []

    async def wait(name: str, since: float) -> None:
        await bucket.take(Priority.FINAL, since=since)
        order.append(name)

    now = loop.time()
    tasks = [asyncio.ensure_future(wait("just served", now))]
    await asyncio.sleep(0)
    tasks.append(asyncio.ensure_future(wait("waiting long", now - 1)))
    await asyncio.wait_for(asyncio.gather(*tasks), 5)
    assert order == ["waiting long", "just served"]


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


async def test_a_pause_holds_every_waiter_then_resumes_without_a_burst() -> None:
    """After a 429's Retry-After nobody gets a token; then one, then the usual rate (no saved burst)."""
    loop = asyncio.get_running_loop()
    bucket = TokenBucket(Budget(per_minute=600, burst=5), scale=1.0, clock=loop.time)
    start = loop.time()
    bucket.pause(0.2)
    await bucket.take()
    assert loop.time() - start >= 0.19
    await bucket.take()
    assert loop.time() - start >= 0.29  # one token after the pause, the next 100 ms later


async def test_withdrawn_ticket_leaves_the_line_without_spending() -> None:
    """A waiter that withdraws its ticket gets False and the token goes to the next in line."""
    loop = asyncio.get_running_loop()
    bucket = TokenBucket(Budget(per_minute=1200, burst=1), scale=1.0, clock=loop.time)
    await bucket.take()
    ticket = Ticket()
    first = asyncio.ensure_future(bucket.take(Priority.PROGRESS, ticket))
    second = asyncio.ensure_future(bucket.take(Priority.PROGRESS))
    await asyncio.sleep(0)
    ticket.withdraw()
    assert await asyncio.wait_for(first, 5) is False
    assert await asyncio.wait_for(second, 5) is True


async def test_rate_limited_call_pauses_the_method_for_everyone() -> None:
    """A 429 met by one caller makes every caller of that method wait Retry-After; others go on."""
    loop = asyncio.get_running_loop()
    limits = SlackLimits(scale=100.0, clock=loop.time)

    async def refused() -> None:
        raise SlackRateLimited("ratelimited", "chat.update", retry_after=0.2)

    async def fine() -> str:
        return "ok"

    start = loop.time()
    with pytest.raises(SlackRateLimited):
        await limits.call("chat.update", refused, channel="C1")
    assert await limits.call("reactions.add", fine) == "ok"
    assert loop.time() - start < 0.1
    assert await limits.call("chat.update", fine, channel="C2") == "ok"
    assert loop.time() - start >= 0.19


async def test_every_method_has_a_budget() -> None:
    """A method without a listed tier still gets a Tier 3 budget of its own."""
    loop = asyncio.get_running_loop()
    limits = SlackLimits(scale=60.0, clock=loop.time)  # Tier 3: 48 a second here, burst 5
    start = loop.time()
    for _ in range(10):
        await limits.acquire("some.newMethod")
    assert loop.time() - start >= 0.09


class _Waits:
    """A ``RelayObserver`` that keeps the budget waits it is told of."""

    def __init__(self) -> None:
        self.waits: list[tuple[str, float]] = []

    def budget_waited(self, team: str, method: str, seconds: float) -> None:
        self.waits.append((method, seconds))

    def text_shown(self, final: bool, seconds: float) -> None:
        raise AssertionError("the limits report no texts")


async def test_each_call_reports_its_wait_and_the_budgets_are_readable() -> None:
    """Every acquired call reports how long it waited for its budgets: nothing while the burst
    lasts, about the paused time after a 429; the budgets in force read back per method, scaled."""
    loop = asyncio.get_running_loop()
    waits = _Waits()
    limits = SlackLimits(scale=60.0, clock=loop.time, observer=waits)
    await limits.acquire("chat.update")
    limits.rate_limited("chat.update", None, retry_after=0.2)
    await limits.acquire("chat.update")
    assert [method for method, _ in waits.waits] == ["chat.update", "chat.update"]
    assert waits.waits[0][1] < 0.1
    assert waits.waits[1][1] >= 0.19
    assert limits.budgets() == {"chat.update": 48 * 60.0}


async def test_what_people_wait_for_goes_before_the_bridges_own_status() -> None:
    """A reply (``AWAITED``) overtakes a status text (``FINAL``) and progress that waited longer."""
    waiting = [("header", Priority.FINAL), ("edit", Priority.PROGRESS)]
    assert await _served(waiting, ("reply", Priority.AWAITED)) == ["reply", "header", "edit"]


async def test_a_replica_uses_its_share_of_every_budget() -> None:
    """Two replicas: half the burst each (and half the rate), the learned paces' buckets included."""
    limits = SlackLimits(clock=lambda: 0.0)  # time stands still: only the burst is there
    limits.set_share(0.5)
    assert limits.paces["chat.postMessage"].share == 0.5
    for method, burst in (("chat.update", 5), ("chat.postMessage", 20)):
        for _ in range(burst // 2):
            await asyncio.wait_for(limits.acquire(method), 1)
        extra = asyncio.ensure_future(limits.acquire(method))
        await asyncio.sleep(0.01)
        assert not extra.done(), method
        extra.cancel()


async def test_each_workspace_draws_on_budgets_of_its_own() -> None:
    """A 429 in one workspace pauses that workspace's method only; another workspace's budgets are
    made on first use (and announced, to be shared across replicas), its calls unaffected."""
    created: list[str] = []
    limits = WorkspaceLimits(home="T1", created=lambda team, _: created.append(team))
    with acting_for(WorkspaceKey("E1", "T1")):
        limits.rate_limited("chat.update", None, retry_after=60.0)
    with acting_for(WorkspaceKey("E1", "T2")):
        assert await asyncio.wait_for(limits.acquire("chat.update"), 1.0)
    with acting_for(WorkspaceKey("E1", "T1")), pytest.raises(TimeoutError):
        await asyncio.wait_for(limits.acquire("chat.update"), 0.2)
    assert created == ["T2"]
    assert set(limits.workspaces) == {"T1", "T2"}
    assert limits.current() is limits  # outside any act: the home workspace's
    assert {team for team, _ in limits.team_budgets()} == {"T1", "T2"}
    assert limits.metered == {"chat.update"}
