"""Delays for retrying: capped exponential backoff with full jitter.

Full jitter (a uniform draw below the exponential ceiling) spreads out the many clients that lose
a service at the same moment, e.g. every chat stream when Coder restarts, or every thread's output
when Slack answers 5xx. Coder's REST retries and stream reconnects and the relay's Slack retries
share this one implementation (it lives here because the Coder client must stand alone, and the
relay may import it). Callers take the sequence as a factory so tests can swap in their own;
callers that count failures instead draw one delay per failure with ``delay``.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

DelayFactory = Callable[[], Iterator[float]]
"""Starts a fresh, endless sequence of delays in seconds."""


@dataclass(frozen=True)
class Backoff:
    """Ceilings ``initial, initial*factor, …`` capped at ``cap``; each delay is drawn below one."""

    initial: float = 0.5
    factor: float = 2.0
    cap: float = 30.0
    rng: Callable[[], float] = field(default=random.random, compare=False, repr=False)

    def delay(self, attempt: int) -> float:
        """A delay drawn below the ``attempt``-th ceiling (0: the first), for a caller that keeps a
        small failure count rather than a sequence (a thread's Slack output: state, not a loop)."""
        return self.rng() * min(self.cap, self.initial * self.factor**attempt)

    def delays(self) -> Iterator[float]:
        """An endless delay sequence; usable as a ``DelayFactory``."""
        ceiling = min(self.initial, self.cap)
        while True:
            yield self.rng() * ceiling
            ceiling = min(self.cap, ceiling * self.factor)
