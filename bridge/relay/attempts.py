"""How many Coder tokens one person may have checked through ``/coder link`` in a while.

Linking checks a pasted token with Coder, and Coder's answer tells a valid token from an invalid one:
without a limit the link form would let anyone in the workspace guess tokens through the bridge, as
fast as it answers. Each check is counted per person in the database (``link_attempt``), so neither a
restart nor another replica starts the count again; past ``attempts`` checks within ``window``
seconds, the person is told when they may try again and Coder is not asked. Replicas counting at the
same instant may each let one more check through: the bound is approximate, the slowdown is not.
"""

from __future__ import annotations

import math
from datetime import timedelta

from bridge.db import repo
from bridge.db.engine import Database
from bridge.db.models import utcnow


class TooManyAttempts(Exception):
    """The person used up their token checks for now; ``str()`` is what to tell them."""

    def __init__(self, retry_after: float) -> None:
        self.retry_after = retry_after
        minutes = max(1, math.ceil(retry_after / 60))
        wait = f"{minutes} minute{'s' if minutes != 1 else ''}"
        super().__init__(f"Too many link attempts: you can try again in {wait}.")


class LinkThrottle:
    """Counts token checks per person, ``attempts`` per ``window`` seconds."""

    def __init__(self, db: Database, *, attempts: int, window: float) -> None:
        self._db = db
        self._attempts = attempts
        self._window = timedelta(seconds=window)

    async def take(self, team_id: str, user_id: str) -> None:
        """Count one check for this person, or raise ``TooManyAttempts`` (nothing counted then)."""
        now = utcnow()
        async with self._db.unit() as session:
            recent = await repo.find_link_attempts_since(
                session, team_id=team_id, slack_user_id=user_id, since=now - self._window
            )
            if len(recent) >= self._attempts:
                raise TooManyAttempts((recent[0] + self._window - now).total_seconds())
            await repo.add_link_attempt(session, team_id=team_id, slack_user_id=user_id, at=now)
