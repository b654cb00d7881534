"""Token buckets that keep the bridge's Slack calls under Slack's published rate limits.

Slack limits each Web API method per workspace (``chat.update`` is Tier 3: about 50 a minute,
shared by every thread) and new messages per channel (about one a second). Waiting for a token
before a call is cheaper than collecting a 429 and its ``Retry-After``. Budgets sit at or just under
Slack's numbers and can be scaled by a setting (an Enterprise grant, or a time-scaled simulator).

Every Slack call of the bridge goes through ``SlackLimits.call`` (or ``acquire`` when the caller
must read what it sends only once the budget allows, as the outbox does): one entry point keyed by
the method's name, so a new method only needs its tier in ``METHOD_BUDGETS``. A 429 that slips
through anyway (another app on the same token, a workspace under a stricter grant) pauses the
method for the whole workspace, not just for the caller that met it: every other caller would meet
the same wall.

Two things move budgets while the bridge runs. Replicas on one database share the workspace's
budgets: each uses ``share`` of them (one over the live replicas, kept current by
``relay.budgets``). And new messages (``MESSAGE_METHODS``), for which Slack publishes a pace per
channel but no workspace number, start from a guard and learn their pace from Slack's answers
(``relay.pace``).
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any, TypeVar

from bridge.coder.backoff import Backoff
from bridge.relay.observe import NOOP_OBSERVER, RelayObserver
from bridge.relay.pace import Learned, Pace
from bridge.relay.ports import SlackRateLimited
from bridge.slack.workspaces import acting

T = TypeVar("T")


@dataclass(frozen=True)
class Budget:
    """``per_minute`` calls a minute on average, up to ``burst`` at once."""

    per_minute: float
    burst: int


SLACK_RETRY = Backoff(initial=0.5, cap=30.0)
"""Delays after a failed Slack call (5xx, timeout); drawn with ``delay(failures)``: the first
failure waits up to 1 s, the fourth up to 8 s."""


TIER_2 = Budget(per_minute=19, burst=3)
TIER_3 = Budget(per_minute=48, burst=5)
TIER_4 = Budget(per_minute=96, burst=10)
"""Slack's tiers (20+, 50+, 100+ a minute), kept a little under so a clock drift costs no 429."""

METHOD_BUDGETS: Mapping[str, Budget] = {
    "chat.update": TIER_3,
    "chat.delete": TIER_3,
    "chat.postMessage": Budget(per_minute=300, burst=20),
    "chat.startStream": Budget(per_minute=300, burst=20),
    "chat.appendStream": TIER_4,
    "chat.stopStream": TIER_2,
    "chat.postEphemeral": TIER_4,
    "reactions.add": TIER_3,
    "reactions.remove": TIER_3,
    "conversations.replies": TIER_3,  # finding posts lost in a crash, reading a thread for context
    "conversations.info": TIER_3,
    "conversations.history": TIER_3,  # finding a thread's root a crash kept from being stored
    "auth.test": TIER_4,
    "users.info": TIER_4,
    "usergroups.users.list": TIER_2,
    "files.info": TIER_4,
    "files.getUploadURLExternal": TIER_4,  # posting a file the agent attached: step one ...
    "files.completeUploadExternal": TIER_4,  # ... and three (two is a plain POST of the bytes)
    "views.open": TIER_4,
    "views.publish": TIER_4,
    "agents.sessions.setStatus": TIER_3,
    "agents.sessions.rename": TIER_3,
    "assistant.threads.setStatus": TIER_3,
}
"""Per-workspace budgets. chat.postMessage has no published workspace number; this is a guard,
where its learned pace starts. A method missing here gets a Tier 3 budget of its own: nothing the
bridge calls goes unmetered."""

ADAPTIVE_MAXIMUM = 3000.0
"""Calls a minute a learned pace grows to at most, by default (``BRIDGE_SLACK_POST_RATE_MAX``)."""

DEFAULT_BUDGET = TIER_3

CHANNEL_POST_BUDGET = Budget(per_minute=55, burst=3)
"""New messages per channel: Slack allows about one a second with short bursts."""

MESSAGE_METHODS = frozenset({"chat.postMessage", "chat.startStream"})
"""Methods that create a message and so draw on the channel's budget as well. Slack publishes no
workspace budget for them: theirs is learned (``relay.pace``)."""


class Priority(IntEnum):
    """Who goes first when a budget is short: what people wait for, then the bridge's own status,
    then progress edits."""

    AWAITED = 0  # the agent's reply, an answer to a person: new or in its final text
    FINAL = 1  # a new message or a final text of the bridge's own status (header, card), a reaction
    PROGRESS = 2  # an intermediate edit of a streaming reply or of a status line


class Ticket:
    """A caller's place in a budget's line, which it may give up while it waits: a thread waiting to
    show progress steps out when it has a final text or a new message to send instead."""

    def __init__(self) -> None:
        self.withdrawn = False
        self._waiter: _Waiter | None = None

    def withdraw(self) -> None:
        """Leave the line: the pending ``take`` returns False, having spent nothing."""
        self.withdrawn = True
        if self._waiter is not None:
            self._waiter.wake.set()


@dataclass(order=True)
class _Waiter:
    priority: int
    since: float  # when its caller began waiting (a thread: for any update of it)
    arrival: int
    wake: asyncio.Event = field(compare=False, default_factory=asyncio.Event)


class TokenBucket:
    """A bucket refilled continuously; ``take`` waits until a token is there.

    Waiters are served by priority, then by how long they have waited: ``since`` is when the
    caller began waiting, which for a thread is since its last update, not since this call joined
    the line. A thread just served goes to the back, so with one waiter per thread each priority
    level is shared round-robin between threads, however many final texts a thread has queued (a
    turn ends with its replies, its card and its status line): that is what makes the budget fair.
    Only the first in line watches the clock; the others sleep until they are first, so two hundred
    threads waiting for ``chat.update`` cost one wake-up per call, not two hundred.

    Priority alone starves: when final texts take most of the budget, a thread with only progress
    to show waits through every other thread's finals (1.6 times its fair share in
    ``bench/fanout.py``). So a progress waiter that has waited one round of the line (everyone in
    it served once at the budget's rate) is overdue and ranks with the final texts by its ``since``.
    """

    def __init__(
        self, budget: Budget, *, scale: float, clock: Callable[[], float], share: float = 1.0
    ) -> None:
        self._scale = scale
        self._budget = budget
        self._share = share
        self._rate, self._capacity = self._tuned()
        self._tokens = self._capacity
        self._clock = clock
        self._updated = clock()  # in the future while paused: no refill until then
        self._queue: list[_Waiter] = []  # a heap: by priority, then since, then arrival
        self._progress = 0  # waiters in the queue with progress to show
        self._order = itertools.count()

    async def take(
        self, priority: Priority = Priority.FINAL, ticket: Ticket | None = None, since: float | None = None
    ) -> bool:
        """Spend one token once every more urgent or longer waiting caller has had theirs; False if
        ``ticket`` was withdrawn first. ``since``: when the caller began waiting (default: now)."""
        waiter = _Waiter(int(priority), self._clock() if since is None else since, next(self._order))
        heapq.heappush(self._queue, waiter)
        self._progress += priority == Priority.PROGRESS
        if ticket is not None:
            ticket._waiter = waiter
        try:
            while ticket is None or not ticket.withdrawn:
                head = self._head()
                wait = self._wait() if head is waiter else None
                if wait == 0:
                    self._tokens -= 1
                    self._spent()
                    return True
                self._holding()
                if head is not waiter:
                    head.wake.set()  # it may have become first by waiting alone: it watches the clock
                waiter.wake.clear()
                # asyncio.timeout, not wait_for: 3.11's wait_for loses a cancel that races the event.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(wait):
                        await waiter.wake.wait()
            return False
        finally:
            if ticket is not None:
                ticket._waiter = None
            self._queue.remove(waiter)
            heapq.heapify(self._queue)
            self._progress -= priority == Priority.PROGRESS
            if self._queue:  # the next in line (or one more urgent that came meanwhile) looks again
                self._head().wake.set()

    def _head(self) -> _Waiter:
        """Who is served next: the first by priority and wait, unless a progress waiter is overdue
        and began waiting before that one did."""
        first = self._queue[0]
        if not self._progress:
            return first
        oldest = min((w for w in self._queue if w.priority == Priority.PROGRESS), key=lambda w: w.since)
        overdue = self._clock() - oldest.since >= len(self._queue) / self._rate
        if overdue and (first.priority == Priority.PROGRESS or oldest.since < first.since):
            return oldest
        return first

    @property
    def per_minute(self) -> float:
        """The calls a minute this bucket allows on average (its budget, scaled)."""
        return self._rate * 60.0

    def retune(self, budget: Budget | None = None, share: float | None = None) -> None:
        """Take a new budget or share from now on; tokens saved up stay, up to the new burst."""
        self._refill()
        self._budget = budget or self._budget
        self._share = self._share if share is None else share
        self._rate, self._capacity = self._tuned()
        self._tokens = min(self._tokens, self._capacity)
        if self._queue:  # the first in line watches the clock at the new rate
            self._queue[0].wake.set()

    def _tuned(self) -> tuple[float, float]:
        """Tokens a second and the burst: this replica's share of the workspace's budget."""
        rate = self._budget.per_minute * self._share * self._scale / 60.0
        return rate, max(1.0, self._budget.burst * self._share)

    def _spent(self) -> None:
        """A token was spent (an adaptive budget learns from it)."""

    def _holding(self) -> None:
        """A caller waits for this budget (an adaptive budget learns from it)."""

    def pause(self, seconds: float) -> None:
        """Slack said 429: no token for ``seconds``, then one, then the usual rate (no saved-up burst)."""
        self._refill()
        self._tokens = min(self._tokens, 1.0)
        self._updated = max(self._updated, self._clock() + seconds)

    def _wait(self) -> float:
        """Seconds until a token can be spent (0: now)."""
        self._refill()
        paused = max(self._updated - self._clock(), 0.0)
        if paused == 0 and self._tokens >= 1:
            return 0.0
        return paused + max(1 - self._tokens, 0.0) / self._rate

    def _refill(self) -> None:
        now = self._clock()
        if now > self._updated:
            self._tokens = min(self._capacity, self._tokens + (now - self._updated) * self._rate)
            self._updated = now


class AdaptiveBucket(TokenBucket):
    """A bucket whose rate is a learned pace: raised while it holds callers back, lowered when
    Slack refuses it."""

    def __init__(
        self, pace: Pace, burst: int, *, scale: float, clock: Callable[[], float], share: float
    ) -> None:
        super().__init__(Budget(pace.per_minute, burst), scale=scale, clock=clock, share=share)
        self.pace = pace

    def follow_pace(self) -> None:
        """Take the pace's rate (it changed: learned here, or read from the database)."""
        self.retune(Budget(self.pace.per_minute, self._budget.burst))

    def _spent(self) -> None:
        if self.pace.granted():
            self.follow_pace()

    def _holding(self) -> None:
        self.pace.held()

    def pause(self, seconds: float) -> None:
        if self.pace.refused(seconds):
            self.follow_pace()
        super().pause(seconds)


class SlackLimits:
    """Every bucket of one workspace: per method, and per channel for new messages."""

    def __init__(
        self,
        *,
        scale: float = 1.0,
        clock: Callable[[], float] | None = None,
        observer: RelayObserver = NOOP_OBSERVER,
        adaptive_maximum: float = ADAPTIVE_MAXIMUM,
        team: str = "",
    ) -> None:
        self.team = team
        """The workspace whose budgets these are (its waits are reported under it)."""
        self._scale = scale
        self._clock = clock or asyncio.get_running_loop().time
        self._observer = observer
        self._methods: dict[str, TokenBucket] = {}
        self._channels: dict[str, TokenBucket] = {}
        self.share = 1.0
        """This replica's part of the workspace's budgets: one over the live replicas."""
        self.paces: Mapping[str, Pace] = {
            method: Pace(
                METHOD_BUDGETS[method].per_minute, maximum=adaptive_maximum, scale=scale, clock=self._clock
            )
            for method in sorted(MESSAGE_METHODS)
        }
        """The learned pace of each method Slack publishes no workspace budget for."""

    def set_share(self, share: float) -> None:
        """Use ``share`` of every workspace budget from now on (replicas came or went)."""
        if share == self.share:
            return
        self.share = share
        for pace in self.paces.values():
            pace.share = share
        for bucket in [*self._methods.values(), *self._channels.values()]:
            bucket.retune(share=share)

    def adopt(self, method: str, learned: Learned) -> None:
        """Use the pace the database holds for ``method`` (learned by any replica)."""
        self.paces[method].adopt(learned)
        bucket = self._methods.get(method)
        if isinstance(bucket, AdaptiveBucket):
            bucket.follow_pace()

    async def acquire(
        self,
        method: str,
        channel: str | None = None,
        priority: Priority = Priority.FINAL,
        ticket: Ticket | None = None,
        since: float | None = None,
    ) -> bool:
        """Wait until a call of ``method`` (into ``channel``, for new messages) fits every budget
        that applies; more urgent callers go first, equals by how long they have waited (``since``),
        and progress that has waited a whole round of the line ranks as urgent. False: ``ticket``
        was withdrawn."""
        started = self._clock()
        for bucket in self._buckets(method, channel):
            if not await bucket.take(priority, ticket, since):
                return False
        self._observer.budget_waited(self.team, method, self._clock() - started)
        return True

    @property
    def metered(self) -> frozenset[str]:
        """The methods that drew on a budget so far: with every Slack call made through here, the
        methods called (what shows a call that bypasses the budgets)."""
        return frozenset(self._methods)

    def budgets(self) -> dict[str, float]:
        """Each metered method's workspace budget in calls a minute, as it stands now."""
        return {method: bucket.per_minute for method, bucket in self._methods.items()}

    def rate_limited(self, method: str, channel: str | None, retry_after: float) -> None:
        """Slack answered a call 429: hold every budget the call drew on for ``retry_after``.

        Slack does not say whether a post hit the channel's limit or the workspace's, so both wait.
        """
        for bucket in self._buckets(method, channel):
            bucket.pause(retry_after)

    async def call(
        self,
        method: str,
        send: Callable[[], Awaitable[T]],
        *,
        channel: str | None = None,
        priority: Priority = Priority.FINAL,
    ) -> T:
        """Make one Slack call within the budgets; a 429 pauses the method, then is raised."""
        await self.acquire(method, channel, priority)
        try:
            return await send()
        except SlackRateLimited as exc:
            self.rate_limited(method, channel, exc.retry_after)
            raise

    def _buckets(self, method: str, channel: str | None) -> list[TokenBucket]:
        buckets: list[TokenBucket] = []
        if method in MESSAGE_METHODS and channel is not None:
            buckets.append(self._bucket(self._channels, channel, CHANNEL_POST_BUDGET))
        buckets.append(self._bucket(self._methods, method, METHOD_BUDGETS.get(method, DEFAULT_BUDGET)))
        return buckets

    def _bucket(self, buckets: dict[str, TokenBucket], key: str, budget: Budget) -> TokenBucket:
        bucket = buckets.get(key)
        if bucket is None:
            pace = self.paces.get(key) if buckets is self._methods else None
            bucket = buckets[key] = (
                TokenBucket(budget, scale=self._scale, clock=self._clock, share=self.share)
                if pace is None
                else AdaptiveBucket(
                    pace, budget.burst, scale=self._scale, clock=self._clock, share=self.share
                )
            )
        return bucket


class WorkspaceLimits(SlackLimits):
    """The budgets of every workspace the bridge acts in, each its own ``SlackLimits``.

    Slack counts per workspace, so a burst in one workspace must not slow another: a call draws on the
    budgets of the workspace acted for (``bridge.slack.workspaces.acting``), created on first use
    (``created`` is told, to share them across replicas). These budgets themselves are the home
    workspace's, used by calls for it and by calls made outside any act; with one workspace nothing
    else is ever created and the bridge paces as it always did."""

    def __init__(
        self, *, home: str, created: Callable[[str, SlackLimits], None] | None = None, **options: Any
    ) -> None:
        super().__init__(team=home, **options)
        self.home = home
        self._options = options
        self._created = created
        self.workspaces: dict[str, SlackLimits] = {home: self}
        """Each workspace's budgets by its team id (an org's id for calls for the org as a whole)."""

    def settle(self, home: str) -> None:
        """Name the home workspace once ``auth.test`` told it (that call drew on these budgets)."""
        del self.workspaces[self.home]
        self.home = self.team = home
        self.workspaces[home] = self

    @property
    def metered(self) -> frozenset[str]:
        return frozenset(self._methods).union(
            *(limits.metered for limits in self.workspaces.values() if limits is not self)
        )

    def of(self, team: str) -> SlackLimits:
        """The budgets of workspace ``team``, created on first use."""
        limits = self.workspaces.get(team)
        if limits is None:
            limits = self.workspaces[team] = SlackLimits(team=team, **self._options)
            if self._created is not None:
                self._created(team, limits)
        return limits

    def current(self) -> SlackLimits:
        """The budgets of the workspace acted for (the home workspace's outside any act)."""
        workspace = acting()
        return self if workspace is None else self.of(workspace.budget_team)

    async def acquire(
        self,
        method: str,
        channel: str | None = None,
        priority: Priority = Priority.FINAL,
        ticket: Ticket | None = None,
        since: float | None = None,
    ) -> bool:
        limits = self.current()
        if limits is self:
            return await super().acquire(method, channel, priority, ticket, since)
        return await limits.acquire(method, channel, priority, ticket, since)

    def rate_limited(self, method: str, channel: str | None, retry_after: float) -> None:
        limits = self.current()
        if limits is self:
            super().rate_limited(method, channel, retry_after)
        else:
            limits.rate_limited(method, channel, retry_after)

    def team_budgets(self) -> dict[tuple[str, str], float]:
        """Each workspace's budget of each metered method, by (team, method), in calls a minute."""
        return {
            (team, method): per_minute
            for team, limits in self.workspaces.items()
            for method, per_minute in limits.budgets().items()
        }
