"""Web API rate limits of the Slack simulator: the tier table and the token buckets enforcing it.

Slack limits each method per workspace per app by *tier* (per-minute budgets that tolerate short
bursts) and ``chat.postMessage`` by channel (about one message a second, short bursts allowed, plus an
unpublished workspace-wide cap). The simulator models every budget as a token bucket: ``burst`` calls
may go at once, after which tokens come back at ``per_minute`` a minute. The bridge's own pacing is
proven against this, so the whole table is one replaceable value (``SlackSim.rate_limits``) and every
window is multiplied by ``time_scale`` so tests can exercise a "minute" in well under a second.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType


@dataclass(frozen=True)
class Limit:
    """A budget: ``per_minute`` calls a minute on average, at most ``burst`` back to back."""

    per_minute: float
    burst: int

    def __post_init__(self) -> None:
        if self.per_minute <= 0 or self.burst < 1:
            raise ValueError(f"a limit needs per_minute > 0 and burst >= 1, got {self}")


TIER_1 = Limit(per_minute=1, burst=3)
TIER_2 = Limit(per_minute=20, burst=5)
TIER_3 = Limit(per_minute=50, burst=10)
TIER_4 = Limit(per_minute=100, burst=20)

# Reference section 5.1. chat.postMessage and chat.startStream are not here: both create a message and
# share the per-channel budget below. Tiers for methods Slack calls "special" are our choice (Tier 3).
DEFAULT_METHOD_LIMITS: Mapping[str, Limit] = MappingProxyType(
    {
        "apps.connections.open": TIER_1,
        "chat.stopStream": TIER_2,
        "usergroups.users.list": TIER_2,
        "chat.update": TIER_3,
        "chat.delete": TIER_3,
        "reactions.add": TIER_3,
        "reactions.remove": TIER_3,
        "conversations.info": TIER_3,
        "conversations.replies": TIER_3,
        "conversations.history": TIER_3,
        "agents.sessions.setStatus": TIER_3,
        "agents.sessions.rename": TIER_3,
        "assistant.threads.setStatus": TIER_3,
        "users.info": TIER_4,
        "auth.test": TIER_4,
        "chat.getPermalink": TIER_4,
        "chat.postEphemeral": TIER_4,
        "views.publish": TIER_4,
        "views.open": TIER_4,
        "chat.appendStream": TIER_4,
        "files.info": TIER_4,
        "files.getUploadURLExternal": TIER_4,
        "files.completeUploadExternal": TIER_4,
    }
)

# Methods that post a new message into a channel and so draw on the per-channel message budget.
MESSAGE_POSTING_METHODS = frozenset({"chat.postMessage", "chat.startStream"})


@dataclass(frozen=True)
class RateLimits:
    """The simulator's whole rate-limit table; replace it on ``SlackSim.rate_limits`` to change budgets.

    ``methods`` maps a method name to its budget (per workspace); a method missing from it is
    unlimited. ``post_message_per_channel`` applies to each channel separately and
    ``post_message_workspace``, when set, to all message posts of the workspace together.
    """

    methods: Mapping[str, Limit] = field(default_factory=lambda: DEFAULT_METHOD_LIMITS)
    post_message_per_channel: Limit = Limit(per_minute=60, burst=3)
    post_message_workspace: Limit | None = None


class _TokenBucket:
    """One budget's state: tokens left and when they were last topped up."""

    def __init__(self, limit: Limit, window: float, now: float) -> None:
        self._capacity = float(limit.burst)
        self._rate = limit.per_minute / window  # tokens per real second
        self._tokens = self._capacity
        self._stamp = now

    def wait_time(self, now: float) -> float:
        """Seconds until one token is available (0 when one is available now)."""
        self._tokens = min(self._capacity, self._tokens + (now - self._stamp) * self._rate)
        self._stamp = now
        return 0.0 if self._tokens >= 1.0 else (1.0 - self._tokens) / self._rate

    def take(self) -> None:
        """Spend one token; only after ``wait_time`` returned 0."""
        self._tokens -= 1.0


class RateLimiter:
    """Decides whether a Web API call may run now, or how long the caller must wait."""

    def __init__(
        self, limits: RateLimits, *, time_scale: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.limits = limits
        self._window = 60.0 * time_scale
        self._clock = clock
        self._buckets: dict[tuple[str, str, str], _TokenBucket] = {}

    def admit(self, method: str, channel: str | None, *, team: str = "") -> float:
        """Charge the call against the budgets of workspace ``team``; return 0 if admitted, else
        seconds until it would be.

        A rejected call spends nothing, so a client that waits ``Retry-After`` is admitted next time.
        Slack counts per workspace, so one workspace's calls never spend another's budget.
        """
        now = self._clock()
        buckets = [self._bucket((team, *key), limit, now) for key, limit in self._limits_for(method, channel)]
        wait = max((bucket.wait_time(now) for bucket in buckets), default=0.0)
        if wait > 0:
            return wait
        for bucket in buckets:
            bucket.take()
        return 0.0

    def _limits_for(self, method: str, channel: str | None) -> list[tuple[tuple[str, str], Limit]]:
        found: list[tuple[tuple[str, str], Limit]] = []
        if method in self.limits.methods:
            found.append(((method, ""), self.limits.methods[method]))
        if method in MESSAGE_POSTING_METHODS:
            found.append((("post:channel", channel or ""), self.limits.post_message_per_channel))
            if self.limits.post_message_workspace is not None:
                found.append((("post:workspace", ""), self.limits.post_message_workspace))
        return found

    def _bucket(self, key: tuple[str, str, str], limit: Limit, now: float) -> _TokenBucket:
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = _TokenBucket(limit, self._window, now)
        return bucket


def format_retry_after(seconds: float, *, time_scale: float) -> str:
    """Render a ``Retry-After`` header value that never tells the client to come back too early.

    Real Slack sends whole seconds, and so do we at ``time_scale == 1``. Scaled time needs sub-second
    waits, so then the value is a decimal with up to three places (a deliberate deviation): rounding a
    0.3 s wait up to "1" would make every limit test three times slower than the window it tests.
    """
    if time_scale == 1.0:
        return str(max(1, math.ceil(seconds)))
    millis = max(1, math.ceil(seconds * 1000))
    return f"{millis // 1000}.{millis % 1000:03d}".rstrip("0").rstrip(".")
