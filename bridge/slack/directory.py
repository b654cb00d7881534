"""``SlackDirectory`` over the Web API: ``users.info`` and ``usergroups.users.list``, cached briefly.

People post many messages in a row; asking Slack each time would spend the Tier 4/Tier 2 budgets
for nothing (each call waits for a token of its method's budget, shared with every other caller).
Answers are kept ``ttl`` seconds, so a guest promoted to member (or someone removed from a user
group) is seen within that time. Callers asking while a look-up is under way share it: when the
answer about a busy person expired, a wave of fifty of their mentions made fifty ``users.info``
calls, the last waiting 25 s for a Tier 4 token, and its chat with it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from slack_sdk.web.async_client import AsyncWebClient

from bridge.metrics import Metrics
from bridge.relay.limits import SlackLimits
from bridge.relay.ports import SlackPermanent, SlackUser
from bridge.slack.poster import budgeted_call

T = TypeVar("T")

_INVISIBLE = frozenset({"user_not_found", "user_not_visible"})
_NO_GROUP = frozenset({"no_such_subteam", "plan_upgrade_required"})


class WebDirectory:
    """Looks people up in Slack, caching each answer for ``ttl`` seconds."""

    def __init__(
        self,
        client: AsyncWebClient,
        metrics: Metrics,
        limits: SlackLimits,
        *,
        ttl: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._metrics = metrics
        self._limits = limits
        self._ttl = ttl
        self._clock = clock
        self._cache: dict[tuple[str, str], tuple[float, Any]] = {}
        self._asking: dict[tuple[str, str], asyncio.Future[Any]] = {}

    async def user(self, user_id: str) -> SlackUser | None:
        """The user as ``users.info`` shows them; None when Slack hides them from the bot."""
        return await self._cached(("user", user_id), lambda: self._fetch_user(user_id))

    async def group_members(self, group_id: str) -> frozenset[str]:
        """The user ids of a user group (empty for an unknown group or a plan without groups)."""
        return await self._cached(("group", group_id), lambda: self._fetch_group(group_id))

    async def _cached(self, key: tuple[str, str], fetch: Callable[[], Awaitable[T]]) -> T:
        now = self._clock()
        hit = self._cache.get(key)
        if hit is not None and now - hit[0] < self._ttl:
            value: T = hit[1]
            return value
        asking = self._asking.get(key)
        if asking is None:
            asking = self._asking[key] = asyncio.ensure_future(self._ask(key, now, fetch))
        # Shielded: one caller giving up (its handling cancelled) does not end the others' look-up.
        answer: T = await asyncio.shield(asking)
        return answer

    async def _ask(self, key: tuple[str, str], now: float, fetch: Callable[[], Awaitable[T]]) -> T:
        try:
            fresh = await fetch()
        finally:
            del self._asking[key]
        self._cache[key] = (now, fresh)
        return fresh

    async def _fetch_user(self, user_id: str) -> SlackUser | None:
        try:
            response = await budgeted_call(
                self._limits, self._metrics, "users.info", lambda: self._client.users_info(user=user_id)
            )
        except SlackPermanent as exc:
            if exc.code in _INVISIBLE:
                return None
            raise
        user = response.get("user") or {}
        enterprise = (user.get("enterprise_user") or {}).get("enterprise_id")
        return SlackUser(
            id=user_id,
            team_id=str(user.get("team_id") or ""),
            is_restricted=bool(user.get("is_restricted")),
            is_ultra_restricted=bool(user.get("is_ultra_restricted")),
            is_stranger=bool(user.get("is_stranger")),
            enterprise_id=str(enterprise) if enterprise else None,
        )

    async def _fetch_group(self, group_id: str) -> frozenset[str]:
        try:
            response = await budgeted_call(
                self._limits,
                self._metrics,
                "usergroups.users.list",
                lambda: self._client.usergroups_users_list(usergroup=group_id),
            )
        except SlackPermanent as exc:
            if exc.code in _NO_GROUP:
                return frozenset()
            raise
        return frozenset(str(u) for u in response.get("users") or ())
