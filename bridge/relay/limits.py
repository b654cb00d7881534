"""Token buckets that keep the bridge's Slack calls under Slack's published rate limits.

Slack limits each Web API method per workspace (``chat.update`` is Tier 3: about 50 a minute,
shared by every thread) and new messages per channel (about one a second). Waiting for a token
before a call is cheaper than collecting a 429 and its ``Retry-After``. Budgets sit at or just under
Slack's numbers and can be scaled by a setting (an Enterprise grant, or a time-scaled simulator).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Budget:
    """``per_minute`` calls a minute on average, up to ``burst`` at once."""

    per_minute: float
    burst: int


METHOD_BUDGETS: Mapping[str, Budget] = {
    "chat.update": Budget(per_minute=48, burst=5),
    "chat.postMessage": Budget(per_minute=300, burst=20),
}
"""Per-workspace budgets. chat.postMessage has no published workspace number; this is a guard."""

CHANNEL_POST_BUDGET = Budget(per_minute=55, burst=3)
"""New messages per channel: Slack allows about one a second with short bursts."""


class TokenBucket:
    """A bucket refilled continuously; ``take`` waits until a token is there."""

    def __init__(self, budget: Budget, *, scale: float, clock: Callable[[], float]) -> None:
        self._rate = budget.per_minute * scale / 60.0
        self._capacity = float(budget.burst)
        self._tokens = self._capacity
        self._clock = clock
        self._updated = clock()
        self._lock = asyncio.Lock()

    async def take(self) -> None:
        """Spend one token, waiting for the refill if the bucket is empty (callers queue in order)."""
        async with self._lock:
            while True:
                now = self._clock()
                self._tokens = min(self._capacity, self._tokens + (now - self._updated) * self._rate)
                self._updated = now
                if self._tokens >= 1:
                    self._tokens -= 1
                    return
                await asyncio.sleep((1 - self._tokens) / self._rate)


class SlackLimits:
    """Every bucket of one workspace: per method, and per channel for new messages."""

    def __init__(self, *, scale: float = 1.0, clock: Callable[[], float] | None = None) -> None:
        self._scale = scale
        self._clock = clock or asyncio.get_running_loop().time
        self._methods = {m: TokenBucket(b, scale=scale, clock=self._clock) for m, b in METHOD_BUDGETS.items()}
        self._channels: dict[str, TokenBucket] = {}

    async def acquire(self, method: str, channel: str) -> None:
        """Wait until a call of ``method`` into ``channel`` fits every budget that applies."""
        if method == "chat.postMessage":
            bucket = self._channels.get(channel)
            if bucket is None:
                bucket = self._channels[channel] = TokenBucket(
                    CHANNEL_POST_BUDGET, scale=self._scale, clock=self._clock
                )
            await bucket.take()
        method_bucket = self._methods.get(method)
        if method_bucket is not None:
            await method_bucket.take()
