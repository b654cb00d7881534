"""Token buckets that keep the bridge's Slack calls under Slack's published rate limits.

Slack limits each Web API method per workspace (``chat.update`` is Tier 3: about 50 a minute,
shared by every thread) and new messages per channel (about one a second). Waiting for a token
before a call is cheaper than collecting a 429 and its ``Retry-After``. Budgets sit at or just under
Slack's numbers and can be scaled by a setting (an Enterprise grant, or a time-scaled simulator).
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import IntEnum


@dataclass(frozen=True)
class Budget:
    """``per_minute`` calls a minute on average, up to ``burst`` at once."""

    per_minute: float
    burst: int


METHOD_BUDGETS: Mapping[str, Budget] = {
    "chat.update": Budget(per_minute=48, burst=5),
    "chat.postMessage": Budget(per_minute=300, burst=20),
    "conversations.replies": Budget(per_minute=48, burst=5),  # Tier 3 (finding posts lost in a crash)
    "views.publish": Budget(per_minute=95, burst=10),  # Tier 4 (the App Home tab)
    "reactions.add": Budget(per_minute=48, burst=5),  # Tier 3
    "reactions.remove": Budget(per_minute=48, burst=5),  # Tier 3
    "chat.stopStream": Budget(per_minute=19, burst=3),  # Tier 2: ending a natively streamed reply
    "agents.sessions.setStatus": Budget(per_minute=48, burst=5),  # Tier 3
    "agents.sessions.rename": Budget(per_minute=48, burst=5),  # Tier 3
}
"""Per-workspace budgets. chat.postMessage has no published workspace number; this is a guard."""

CHANNEL_POST_BUDGET = Budget(per_minute=55, burst=3)
"""New messages per channel: Slack allows about one a second with short bursts."""


class Priority(IntEnum):
    """Who goes first when a budget is short: what people wait for before progress edits."""

    FINAL = 0  # a reply's final text, a new message, an answer to a person
    PROGRESS = 1  # an intermediate edit of a streaming reply or of a status line


class TokenBucket:
    """A bucket refilled continuously; ``take`` waits until a token is there.

    Waiters are served by priority, then in arrival order, so with one waiter per thread each
    priority level is shared round-robin between threads.
    """

    def __init__(self, budget: Budget, *, scale: float, clock: Callable[[], float]) -> None:
        self._rate = budget.per_minute * scale / 60.0
        self._capacity = float(budget.burst)
        self._tokens = self._capacity
        self._clock = clock
        self._updated = clock()
        self._queue: list[tuple[int, int]] = []
        self._order = itertools.count()
        self._changed = asyncio.Event()

    async def take(self, priority: Priority = Priority.FINAL) -> None:
        """Spend one token once every more urgent or earlier waiter has had theirs."""
        entry = (int(priority), next(self._order))
        heapq.heappush(self._queue, entry)
        try:
            while True:
                self._refill()
                if self._queue[0] == entry and self._tokens >= 1:
                    self._tokens -= 1
                    return
                wait = (1 - self._tokens) / self._rate if self._queue[0] == entry else None
                changed = self._changed
                # asyncio.timeout, not wait_for: 3.11's wait_for loses a cancel that races the event.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(wait):
                        await changed.wait()
        finally:
            self._queue.remove(entry)
            heapq.heapify(self._queue)
            self._changed.set()
            self._changed = asyncio.Event()

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self._capacity, self._tokens + (now - self._updated) * self._rate)
        self._updated = now


class SlackLimits:
    """Every bucket of one workspace: per method, and per channel for new messages."""

    def __init__(self, *, scale: float = 1.0, clock: Callable[[], float] | None = None) -> None:
        self._scale = scale
        self._clock = clock or asyncio.get_running_loop().time
        self._methods = {m: TokenBucket(b, scale=scale, clock=self._clock) for m, b in METHOD_BUDGETS.items()}
        self._channels: dict[str, TokenBucket] = {}

    async def acquire(self, method: str, channel: str, priority: Priority = Priority.FINAL) -> None:
        """Wait until a call of ``method`` into ``channel`` fits every budget that applies."""
        if method == "chat.postMessage":
            bucket = self._channels.get(channel)
            if bucket is None:
                bucket = self._channels[channel] = TokenBucket(
                    CHANNEL_POST_BUDGET, scale=self._scale, clock=self._clock
                )
            await bucket.take(priority)
        method_bucket = self._methods.get(method)
        if method_bucket is not None:
            await method_bucket.take(priority)
