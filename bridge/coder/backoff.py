"""Delay sequences for retrying Coder: capped exponential backoff with full jitter.

Full jitter (a uniform draw below the exponential ceiling) spreads out the many clients that lose
Coder at the same moment, e.g. every chat stream when Coder restarts. REST retries and stream
reconnects share this one implementation; callers take the sequence as a factory so tests can swap
in their own.
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

    def delays(self) -> Iterator[float]:
        """An endless delay sequence; usable as a ``DelayFactory``."""
        ceiling = min(self.initial, self.cap)
        while True:
            yield self.rng() * ceiling
            ceiling = min(self.cap, ceiling * self.factor)
