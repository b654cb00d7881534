"""Slack output scheduler: every bridge write into a thread goes through here.

Per thread, slots (stable keys such as ``after:42``) hold the text that *should* be shown. A worker
per thread makes Slack match, within ``SlackLimits``' budgets: it posts a slot the first time (in
the order slots appeared, so the thread reads in order), then edits it at most once per
``edit_interval`` — intermediate texts are coalesced, the latest wins — except that a final text
goes out at once. 429 answers pause the thread for ``Retry-After``; transient failures back off;
permanent ones are logged and dropped.

The ``ts`` of every posted slot and a digest of its text are stored, so after a restart a slot is
edited rather than posted again, and an unchanged text costs no call.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from bridge.db import repo
from bridge.db.engine import Database
from bridge.relay.limits import Priority, SlackLimits
from bridge.relay.ports import SlackError, SlackPermanent, SlackPoster, SlackRateLimited
from bridge.tasks import TaskGroup

log = logging.getLogger(__name__)

_MAX_TRANSIENT_ATTEMPTS = 5


def digest(text: str) -> str:
    """Short stable fingerprint of a text, to skip edits that would change nothing."""
    return hashlib.sha256(text.encode()).hexdigest()[:32]


@dataclass(frozen=True)
class ThreadRef:
    """Where a thread is: enough to post into it and to find its stored slots."""

    link_id: int
    channel: str
    thread_ts: str


@dataclass
class _Slot:
    key: str
    ts: str | None = None
    sent_digest: str = ""
    text: str | None = None  # None: nothing asked of this slot since the last start
    text_digest: str = ""  # of ``text``, computed once when it is set, not on every wake
    final: bool = False
    last_sent: float = float("-inf")
    failures: int = 0
    done: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def dirty(self) -> bool:
        return self.text is not None and self.text_digest != self.sent_digest


class _Thread:
    def __init__(self, ref: ThreadRef) -> None:
        self.ref = ref
        self.slots: dict[str, _Slot] = {}
        self.wake = asyncio.Event()
        self.loaded = asyncio.Event()
        self.stored = asyncio.Lock()  # orders writes of slot rows (a save racing a rename)
        self.paused_until = 0.0


class Outbox:
    """Keeps each thread's Slack messages equal to the texts the relay sets."""

    def __init__(
        self,
        db: Database,
        poster: SlackPoster,
        *,
        limits: SlackLimits,
        edit_interval: float = 1.0,
        idle_timeout: float = 300.0,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self._db = db
        self._poster = poster
        self._limits = limits
        self._edit_interval = edit_interval
        self._idle_timeout = idle_timeout
        self._clock = clock or asyncio.get_running_loop().time
        self._threads: dict[int, _Thread] = {}
        self._posted: dict[tuple[str, str], int] = {}  # (channel, ts) -> link id, as soon as Slack answers
        self._tasks = TaskGroup("outbox")

    def set_text(self, ref: ThreadRef, key: str, text: str, *, final: bool = False) -> None:
        """Make slot ``key`` of a thread show ``text`` (posted or edited by the worker)."""
        thread = self._thread(ref)
        slot = thread.slots.get(key)
        if slot is None:
            slot = thread.slots[key] = _Slot(key)
        slot.text, slot.text_digest, slot.final = text, digest(text), final or slot.final
        if slot.dirty:
            slot.done.clear()
        thread.wake.set()

    def link_of(self, channel: str, ts: str) -> int | None:
        """The link whose thread got a message posted as ``ts`` while its worker is alive.

        Known the moment Slack answers, before the slot's row is stored: a reaction on a message the
        bot just posted can arrive before that row exists.
        """
        return self._posted.get((channel, ts))

    async def has_slot(self, ref: ThreadRef, key: str) -> bool:
        """Whether the thread has (or had, before a restart) a message for ``key``."""
        thread = self._thread(ref)
        await thread.loaded.wait()
        return key in thread.slots

    async def rename(self, ref: ThreadRef, old: str, new: str) -> None:
        """Move slot ``old`` (and its split parts ``old#1``…) to ``new``: the same Slack message now
        shows what ``new`` should. A target that already has a message keeps it, and ``old`` stays."""
        thread = self._thread(ref)
        await thread.loaded.wait()
        async with thread.stored:
            for suffix in ("", *(f"#{i}" for i in range(1, len(thread.slots) + 1))):
                slot = thread.slots.get(old + suffix)
                if slot is None:
                    return
                if new + suffix in thread.slots:
                    continue
                del thread.slots[old + suffix]
                slot.key = new + suffix
                thread.slots[slot.key] = slot
                if slot.ts is not None:
                    async with self._db.unit() as session:
                        await repo.rename_slot(session, link_id=ref.link_id, old=old + suffix, new=slot.key)

    async def delivered(self, ref: ThreadRef, keys: Iterable[str], timeout: float | None = None) -> None:
        """Wait until the given slots show their latest text (or were given up as undeliverable)."""
        thread = self._thread(ref)
        waits = [thread.slots[k].done.wait() for k in keys if k in thread.slots]
        if waits:
            await asyncio.wait_for(asyncio.gather(*waits), timeout)

    def pending(self) -> int:
        """How many slots still differ from what Slack shows (for shutdown and tests)."""
        return sum(1 for t in self._threads.values() for s in t.slots.values() if not s.done.is_set())

    async def drain(self, timeout: float) -> bool:
        """Wait up to ``timeout`` for every slot to be delivered; True when nothing is left."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        for thread in list(self._threads.values()):
            for slot in list(thread.slots.values()):
                remaining = deadline - loop.time()
                if remaining <= 0:
                    return self.pending() == 0
                try:
                    await asyncio.wait_for(slot.done.wait(), remaining)
                except TimeoutError:
                    return False
        return True

    async def close(self) -> None:
        """Stop the workers (call ``drain`` first to finish pending output)."""
        await self._tasks.cancel()

    def _thread(self, ref: ThreadRef) -> _Thread:
        thread = self._threads.get(ref.link_id)
        if thread is None:
            thread = self._threads[ref.link_id] = _Thread(ref)
            self._tasks.spawn(f"thread:{ref.link_id}", self._work(thread))
        return thread

    async def _load(self, thread: _Thread) -> None:
        async with self._db.unit() as session:
            stored = await repo.slots(session, thread.ref.link_id)
        for key, row in stored.items():
            slot = thread.slots.setdefault(key, _Slot(key))
            slot.ts, slot.sent_digest = row.ts, row.digest
            if not slot.dirty:
                slot.done.set()
        thread.loaded.set()

    async def _work(self, thread: _Thread) -> None:
        while True:
            try:
                if not thread.loaded.is_set():
                    await self._load(thread)
                slot, wait = self._next(thread)
                if slot is None:
                    thread.wake.clear()
                    idle = wait is None and self._idle(thread)
                    try:  # asyncio.timeout, not wait_for: 3.11's wait_for loses a cancel that races a wake
                        async with asyncio.timeout(self._idle_timeout if idle else wait):
                            await thread.wake.wait()
                    except TimeoutError:
                        if idle and self._idle(thread):  # quiet for long: free it; set_text makes a new one
                            self._release(thread)
                            return
                    continue
                await self._send(thread, slot)
            except Exception:  # a database hiccup must not end the thread's output for good
                log.exception("outbox worker of thread %s failed; retrying", thread.ref.thread_ts)
                await asyncio.sleep(1.0)

    def _release(self, thread: _Thread) -> None:
        del self._threads[thread.ref.link_id]
        for slot in thread.slots.values():
            if slot.ts is not None:
                self._posted.pop((thread.ref.channel, slot.ts), None)

    @staticmethod
    def _idle(thread: _Thread) -> bool:
        return all(not slot.dirty for slot in thread.slots.values())

    @property
    def threads_open(self) -> int:
        """Threads with a live worker (idle ones are released after ``idle_timeout``)."""
        return len(self._threads)

    async def released(self, timeout: float) -> bool:
        """Wait up to ``timeout`` for every thread worker to release itself; True when none is left."""
        return await self._tasks.wait(timeout)

    def _next(self, thread: _Thread) -> tuple[_Slot | None, float | None]:
        """The slot to send now, or how long until one is due (None: until woken)."""
        now = self._clock()
        if now < thread.paused_until:
            return None, thread.paused_until - now
        soonest: float | None = None
        for slot in thread.slots.values():
            if not slot.dirty:
                slot.done.set()
                continue
            if slot.ts is None or slot.final:
                return slot, None
            due = slot.last_sent + self._edit_interval
            if due <= now:
                return slot, None
            soonest = due - now if soonest is None else min(soonest, due - now)
        return None, soonest

    async def _send(self, thread: _Thread, slot: _Slot) -> None:
        ref = thread.ref
        try:
            if slot.ts is None:
                await self._limits.acquire("chat.postMessage", ref.channel)
            else:
                priority = Priority.FINAL if slot.final else Priority.PROGRESS
                await self._limits.acquire("chat.update", ref.channel, priority)
            assert slot.text is not None
            text, sent = slot.text, slot.text_digest  # read after the wait: the newest text goes out
            if slot.ts is None:
                slot.ts = await self._poster.post(ref.channel, ref.thread_ts, text)
                self._posted[(ref.channel, slot.ts)] = ref.link_id
            else:
                await self._poster.update(ref.channel, slot.ts, text)
        except SlackRateLimited as exc:
            thread.paused_until = self._clock() + exc.retry_after
            log.warning(
                "slack rate limit on %s; pausing thread %s for %.2fs",
                exc.method,
                ref.thread_ts,
                exc.retry_after,
            )
            return
        except SlackPermanent as exc:
            log.error("giving up on slot %s in %s/%s: %s", slot.key, ref.channel, ref.thread_ts, exc)
            slot.sent_digest = sent
            slot.done.set()
            return
        except SlackError as exc:
            slot.failures += 1
            if slot.failures >= _MAX_TRANSIENT_ATTEMPTS:
                log.error("giving up on slot %s after %d failures: %s", slot.key, slot.failures, exc)
                slot.sent_digest = sent
                slot.done.set()
                return
            delay = random.uniform(0, min(30.0, 0.5 * 2**slot.failures))
            thread.paused_until = self._clock() + delay
            log.warning("slack call failed (%s); retrying slot %s in %.2fs", exc, slot.key, delay)
            return
        posted = slot.sent_digest == ""
        slot.failures = 0
        slot.last_sent = self._clock()
        slot.sent_digest = sent
        if posted or slot.final:  # a streaming edit needs no row: a restart redoes at most that edit
            async with thread.stored, self._db.unit() as session:
                await repo.save_slot(session, link_id=ref.link_id, slot=slot.key, ts=slot.ts, digest=sent)
        if not slot.dirty:
            slot.done.set()
