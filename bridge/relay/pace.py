"""The pace of a Slack budget that Slack does not publish, learned from Slack's own answers.

Slack publishes no workspace-wide number for new messages (``chat.postMessage``, ``chat.startStream``),
only about one a second per channel, yet some cap exists. A fixed guard of 300 a minute made a burst
of fifty mentions (150 posts) wait half a minute for the bridge's own budget while Slack would have
taken them at once. So the pace starts from the guard and doubles every Slack second in which it is
what holds callers back, while Slack agrees; Slack's first 429 sets a ceiling at the pace the bridge
had then reached and halves the pace; growth then stays under that ceiling. What was learned is kept
in the database (``relay.budgets``), so a restart or another replica starts from it, not from the
guard. A 429 while the budget was not the bottleneck teaches nothing about it (a channel's own
limit, another app on the token) and only pauses the method, as for every budget.

Pure: the clock is handed in, and nothing here waits.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

GROWTH = 2.0
"""Factor of each raise, at most one a Slack second while the budget holds callers back."""
BACKOFF = 0.5
"""Factor of the pace after Slack refused it."""
HEADROOM = 0.9
"""Growth stays this far under the pace Slack refused."""
FLOOR = 60.0
"""Calls a minute the pace never goes under: Slack's own per-channel pace for new messages."""
WINDOW = 10.0
"""Slack seconds over which the pace actually used is measured when Slack refuses a call."""


@dataclass(frozen=True)
class Learned:
    """What is known of an unpublished budget: the pace to use, and the pace Slack refused (if any)."""

    per_minute: float
    ceiling: float | None = None


class Pace:
    """One unpublished budget's pace, per workspace (a replica uses its share of it)."""

    def __init__(self, start: float, *, maximum: float, scale: float, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._maximum = max(start, maximum)
        self._second = 1.0 / scale  # one Slack second, in the clock's seconds
        self.learned = Learned(start)
        self.dirty = False
        """Learned something the database does not hold yet."""
        self.refused_lately = False
        """Slack refused the pace since the database was last told (a lower ceiling must win)."""
        self.share = 1.0
        """This replica's part of the workspace's budgets (``SlackLimits.share``)."""
        self._held_at = float("-inf")
        self._changed_at = clock()
        self._quiet_until = float("-inf")
        self._grants: deque[float] = deque()

    @property
    def per_minute(self) -> float:
        return self.learned.per_minute

    def held(self) -> None:
        """A caller had to wait for this budget: it is what holds the bridge back now."""
        self._held_at = self._clock()

    def granted(self) -> bool:
        """A call was let through. True when the pace rose (the bucket takes the new one)."""
        now = self._clock()
        self._grants.append(now)
        while self._grants and self._grants[0] < now - WINDOW * self._second:
            self._grants.popleft()
        if now - self._held_at > self._second or now < self._quiet_until:
            return False  # not the bottleneck, or Slack refused it a moment ago
        if now - self._changed_at < self._second:
            return False
        ceiling = self.learned.ceiling
        cap = self._maximum if ceiling is None else min(self._maximum, ceiling * HEADROOM)
        if self.per_minute >= cap:
            return False
        self._set(Learned(min(cap, self.per_minute * GROWTH), ceiling), now)
        return True

    def refused(self, retry_after: float) -> bool:
        """Slack answered 429. True when the pace fell: the budget was in use near its pace, so the
        refusal is about it; the ceiling becomes the pace used then. Refusals of calls already under
        way when the first came (until its ``Retry-After`` is over) are the same lesson."""
        now = self._clock()
        if now < self._quiet_until:
            return False
        self._quiet_until = now + max(retry_after, self._second)
        if now - self._held_at > self._second:
            return False
        used = self._used(now)
        ceiling = used if self.learned.ceiling is None else min(self.learned.ceiling, used)
        ceiling = max(ceiling, FLOOR)
        self._set(Learned(max(FLOOR, min(self.per_minute, ceiling) * BACKOFF), ceiling), now)
        self.refused_lately = True
        return True

    def adopt(self, learned: Learned) -> None:
        """Take what the database holds (learned by any replica, before or since)."""
        if learned != self.learned:
            self.learned = Learned(min(learned.per_minute, self._maximum), learned.ceiling)
            self._changed_at = self._clock()

    def _used(self, now: float) -> float:
        """Calls a minute the workspace made lately (this replica's, over its share): the pace Slack
        refused."""
        if not self._grants:
            return self.per_minute
        span = max(now - self._grants[0], self._second)
        return min(self.per_minute, len(self._grants) / span * 60.0 * self._second / self.share)

    def _set(self, learned: Learned, now: float) -> None:
        self.learned = learned
        self._changed_at = now
        self.dirty = True
