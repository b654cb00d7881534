"""Scheduling texts: a worker per thread makes Slack show the texts its slots hold.

Per thread, slots (stable keys such as ``after:42``) hold the text that *should* be shown. A worker
per thread makes Slack match, within ``SlackLimits``' budgets: it posts a slot the first time (in
the order slots appeared, so the thread reads in order), then edits it at most once per
``edit_interval`` — intermediate texts are coalesced, the latest wins — except that a final text
goes out at once. Transient failures back off (after five, a stored text waits for the next start);
other permanent errors are logged and dropped.

Scheduling. The workspace's budgets (``SlackLimits``) are shared by every thread, and each worker
waits in their line with at most one call at a time: new messages and final texts as ``AWAITED``
when a person waits for them (the agent's replies, answers to people: ``SlotKey.awaited``) or
``FINAL`` (the bridge's own status: header, card), progress edits as ``PROGRESS`` (a worker waiting
with one steps out of the line when a final text or a new message of its thread turns up, and sends
that first). Equals are served by how long their thread has waited (since its last text shown, or
its first change after that), so every thread gets its turn once per round, however many final
texts it has queued: a thread's wait is its fair share of the budget, however many threads stream.
Progress that has waited a whole round goes before final texts whose threads began waiting later:
finals alone can fill the budget when many turns end together. Within a thread, new messages and
final texts go first, then the progress edit shown least recently (so a busy status card cannot
starve the reply streaming below it); a new message whose text still streams waits
``edit_interval`` before its first post (posted whole, a short reply costs no edit). A 429 pauses
the method for the whole workspace.

Slack errors that no retry can fix are handled on purpose: a text Slack finds too big
(``OVERSIZED``: ``msg_too_long``, and ``msg_blocks_too_long`` or ``invalid_blocks`` for the blocks a
table or a long Markdown text becomes, which Slack measures otherwise than the splitter) is split
once more and retried smaller; a channel that is gone, archived or closed to the bot stops that thread's
deliveries (its stored texts are marked failed, one WARNING says why).

Plans. A status card's text may come with its ``Plan`` (the card in parts, for a poster that shows
tool calls natively). It is set with the text, kept in memory only and handed to the poster with
that text: the text alone decides whether a call is due, and a text stored before a restart goes
out without one (the poster shows it as text).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from functools import partial
from typing import TypeVar

from bridge import tracing
from bridge.relay.content import Plan
from bridge.relay.leases import Lease, Leases, thread_lease
from bridge.relay.limits import SLACK_RETRY, Priority, SlackLimits, Ticket
from bridge.relay.observe import RelayObserver
from bridge.relay.outbox.reactions import Reactions
from bridge.relay.outbox.store import SlotRename, SlotRow, Store
from bridge.relay.outbox.threads import (
    MAX_TRANSIENT_ATTEMPTS,
    Buttons,
    Slot,
    Thread,
    ThreadRef,
    Threads,
    digest,
    encode_buttons,
    tag,
)
from bridge.relay.output import SlotText
from bridge.relay.ports import SlackError, SlackPermanent, SlackPoster, SlackRateLimited
from bridge.relay.slots import SlotKey
from bridge.slack.mrkdwn import split_markdown
from bridge.slack.workspaces import acting_for

log = logging.getLogger(__name__)
T = TypeVar("T")

_MIN_SPLIT = 1000  # Slack never finds a shorter text too long; splitting it further would not help
CHANNEL_CLOSED = frozenset({"channel_not_found", "is_archived", "not_in_channel"})
"""Errors that mean no message can reach the thread's channel any more."""
OVERSIZED = frozenset({"msg_too_long", "msg_blocks_too_long", "invalid_blocks"})
"""Slack's answers to a text it finds too big as sent: a smaller part may well go through."""


def _log_unstored(future: asyncio.Future[None]) -> None:
    if not future.cancelled() and (error := future.exception()) is not None:
        log.error("could not store a renamed slot; a restart may post its text anew", exc_info=error)


class Texts:
    """Keeps each thread's Slack messages equal to the texts its slots hold: the per-thread worker."""

    def __init__(
        self,
        threads: Threads,
        store: Store,
        reactions: Reactions,
        poster: SlackPoster,
        *,
        limits: SlackLimits,
        leases: Leases,
        edit_interval: float,
        idle_timeout: float,
        observer: RelayObserver,
    ) -> None:
        self._threads = threads
        self._store = store
        self._reactions = reactions
        self._poster = poster
        self._limits = limits
        self._leases = leases
        self._edit_interval = edit_interval
        self._idle_timeout = idle_timeout
        self._observer = observer

    def set_text(
        self,
        ref: ThreadRef,
        key: str,
        text: str,
        *,
        final: bool = False,
        buttons: Buttons = (),
        plan: Plan | None = None,
    ) -> None:
        """Make slot ``key`` of a thread show ``text`` (posted or edited by the worker), kept in memory
        only: for progress that a restart regenerates. Texts that must survive one go through ``put``."""
        if ref.link_id in self._threads.closed:
            return
        self._threads.set(self._threads.get(ref), key, text, final=final, buttons=buttons, plan=plan)

    def reserve(self, ref: ThreadRef, key: str) -> None:
        """Give slot ``key`` its place in the thread's order now (new slots post in the order they
        appeared); its text follows with ``show`` once stored."""
        if ref.link_id not in self._threads.closed:
            self._threads.get(ref).slots.setdefault(key, Slot(key))

    async def whisper(self, channel: str, user: str, thread_ts: str | None, markdown: str) -> None:
        """An ephemeral answer to one person, within the workspace's budget (ahead of the bridge's
        own status and progress edits)."""
        send = partial(self._poster.whisper, channel, user, thread_ts, markdown)
        await self._patiently("chat.postEphemeral", send, channel)

    async def announce(self, channel: str, markdown: str, *, chat_id: str | None = None) -> str:
        """A new top-level message (the root of a thread ``/coder new`` or ``follow`` starts; tagged
        with ``chat_id``), within the channel's and the workspace's budgets; returns its ``ts``."""
        send = partial(self._poster.announce, channel, markdown, chat_id=chat_id)
        return await self._patiently("chat.postMessage", send, channel)

    async def announced(self, channel: str, chat_id: str, *, oldest: str) -> str | None:
        """The root the bot posted for ``chat_id`` in the channel since ``oldest``, if Slack shows
        one, within the workspace's ``conversations.history`` budget."""
        find = partial(self._poster.announced, channel, chat_id, oldest=oldest)
        return await self._patiently("conversations.history", find, channel)

    async def _patiently(self, method: str, send: Callable[[], Awaitable[T]], channel: str) -> T:
        """One call within the budgets, ahead of the bridge's own status (a person asked for it). A
        429 is waited out, however often (it is no failure, only "later": nothing was posted); any
        other Slack error is raised."""
        while True:
            try:
                return await self._limits.call(method, send, channel=channel, priority=Priority.AWAITED)
            except SlackRateLimited:  # the method is paused for Retry-After: the next acquire waits
                continue

    def link_of(self, channel: str, ts: str) -> int | None:
        """The link whose thread got a message posted as ``ts`` while its worker is alive.

        Known the moment Slack answers, before the slot's row is stored: a reaction on a message the
        bot just posted can arrive before that row exists.
        """
        return self._threads.posted.get((channel, ts))

    async def has_slot(self, ref: ThreadRef, key: str) -> bool:
        """Whether the thread has (or had, before a restart) a message for ``key``."""
        thread = self._threads.get(ref)
        await thread.loaded.wait()
        return key in thread.slots

    async def slot_keys(self, ref: ThreadRef) -> list[str]:
        """Every slot the thread has (or had, before a restart) a message or a text for, in order."""
        thread = self._threads.get(ref)
        await thread.loaded.wait()
        return list(thread.slots)

    async def rename(self, ref: ThreadRef, old: str, new: str) -> None:
        """Move slot ``old`` (and its split parts ``old#1``…) to ``new``: the same Slack message now
        shows what ``new`` should. A target that already has a message keeps it, and ``old`` stays.
        The slot keeps its place in the thread's order: a draft not posted yet (Slack said 429) must
        not go after the status card that appeared below it meanwhile."""
        thread = self._threads.get(ref)
        await thread.loaded.wait()
        whole_old, whole_new = SlotKey.decode(old), SlotKey.decode(new)
        for index in range(len(thread.slots) + 1):
            was, now = whole_old.part(index).encode(), whole_new.part(index).encode()
            slot = thread.slots.get(was)
            if slot is None:
                return
            if now in thread.slots:
                continue
            slot.key = now
            thread.slots = {now if key == was else key: s for key, s in thread.slots.items()}
            if slot.ts is not None:  # stored behind the slot's earlier rows; the next put waits
                stored = self._store.slot_rows.submit(SlotRename(ref.link_id, was, now))
                stored.add_done_callback(_log_unstored)
                thread.renamed.append(stored)

    async def delivered(self, ref: ThreadRef, keys: Iterable[str], timeout: float | None = None) -> None:
        """Wait until the given slots show their latest text (or were given up as undeliverable)."""
        thread = self._threads.get(ref)

        async def shown() -> None:
            await thread.loaded.wait()  # slots stored before a restart are known once loaded
            await asyncio.gather(*(thread.slots[k].done.wait() for k in keys if k in thread.slots))

        await asyncio.wait_for(shown(), timeout)

    async def drain(self, timeout: float) -> bool:
        """Wait up to ``timeout`` for every slot and reaction to be delivered (those stored before
        the start included: a thread is read first); True when nothing is left."""
        deadline = asyncio.get_running_loop().time() + timeout
        try:
            async with asyncio.timeout_at(deadline):
                for thread in list(self._threads.live.values()):
                    await thread.loaded.wait()
                    for slot in list(thread.slots.values()):
                        await slot.done.wait()
        except TimeoutError:
            return self._threads.pending() == 0
        return await self._reactions.reacted(deadline)

    def closed(self, ref: ThreadRef) -> str | None:
        """Why the thread's channel takes no messages (Slack's error), or None while it does."""
        return self._threads.closed.get(ref.link_id)

    async def work(self, thread: Thread) -> None:
        """The thread's worker, while this replica holds the thread's lease: only one replica talks
        to Slack about a thread, so no two post the same slot. Without the lease, what this replica
        stored is the holder's to send (``Store.refresh``), and the worker hands the thread over. A
        text's call goes on in the trace of the change that set the text, not of whatever started the
        worker. Every Slack call of the worker is made for the thread's workspace."""
        with acting_for(thread.ref.workspace):
            await self._worker(thread)

    async def _worker(self, thread: Thread) -> None:
        tracing.detach()
        lease = None
        while lease is None:
            try:
                lease = await self._leases.acquire(thread_lease(thread.ref.link_id))
            except Exception:
                log.exception(
                    "could not claim thread %s for its Slack output; retrying", thread.ref.thread_ts
                )
                await asyncio.sleep(1.0)
                continue
            if lease is None:
                self._hand_over(thread)
                return
        try:
            await self._work(thread, lease)
        finally:
            await self._leases.release(lease)

    def _hand_over(self, thread: Thread) -> None:
        """Forget the thread here (another replica holds it): nothing waits for this worker."""
        if self._threads.live.get(thread.ref.link_id) is thread:
            self._threads.release(thread)
        thread.loaded.set()
        for slot in thread.slots.values():
            slot.done.set()

    async def _work(self, thread: Thread, lease: Lease) -> None:
        """Its texts first, then its reactions, then the deletion of shown reactions' rows; a thread
        quiet for ``idle_timeout`` is released (when replicas share the work: once quiet for a
        heartbeat, unless a stream of this replica still follows it, and texts other replicas
        stored for it are looked for every heartbeat)."""
        shared = self._leases.shared
        while True:
            try:
                if not self._leases.valid(lease):
                    self._hand_over(thread)
                    return
                if not thread.loaded.is_set():
                    await self._store.load(thread, inherited=lease.inherited)
                slot, wait = self._next(thread)
                if slot is None:
                    mark, retry = self._reactions.next(thread)
                    if mark is not None:
                        await self._reactions.react(thread, *mark)
                        continue
                    if shown := self._reactions.shown(thread):
                        await self._reactions.settle(thread, shown)
                        continue
                    wait = retry if wait is None else wait if retry is None else min(wait, retry)
                    thread.wake.clear()
                    idle = wait is None and thread.idle()
                    timeout = self._idle_timeout if idle else wait
                    if shared:
                        timeout = (
                            self._leases.heartbeat
                            if timeout is None
                            else min(timeout, self._leases.heartbeat)
                        )
                    try:  # asyncio.timeout, not wait_for: 3.11's wait_for loses a cancel that races a wake
                        async with asyncio.timeout(timeout):
                            await thread.wake.wait()
                    except TimeoutError:
                        if shared:
                            await self._store.refresh(thread)
                        alone = not shared or lease.users == 1
                        if idle and thread.idle() and alone:  # quiet: free it; set_text makes a new one
                            self._threads.release(thread)
                            return
                    continue
                await self._send(thread, slot, lease)
            except Exception:  # a database hiccup must not end the thread's output for good
                log.exception("outbox worker of thread %s failed; retrying", thread.ref.thread_ts)
                await asyncio.sleep(1.0)

    def _next(self, thread: Thread) -> tuple[Slot | None, float | None]:
        """The slot to send now, or how long until one is due (None: until woken).

        New messages (in order) and final texts first: a new message a person waits for (a compact
        turn's answer) before final edits (its card's last edit, waiting on the scarcer ``chat.update``
        budget), else the one waiting longest (a reply's final text before the idle status set after
        it); then, of the progress edits due, the one shown least recently. In the budgets' line, what
        a person waits for (``SlotKey.awaited``) goes before the bridge's own status of other threads.

        A new message whose text is still streaming waits until ``edit_interval`` after its first
        text before it is posted: a short reply is then posted whole, where posted at once it would
        cost an edit, and ``chat.update`` is the scarcest budget (Tier 3 for the whole workspace)."""
        now = self._threads.clock()
        if now < thread.paused_until:
            return None, thread.paused_until - now
        soonest: float | None = None
        due: Slot | None = None
        urgent: Slot | None = None
        posting = False  # a new message is a candidate: later ones wait for it
        reserved = False  # a slot before this one awaits its text: new messages must not overtake it
        waiting = False
        for slot in thread.slots.values():
            if slot.text is None and slot.ts is None:
                reserved = True
                continue
            if not slot.dirty:
                slot.done.set()
                continue
            waiting = True
            if slot.ts is None and (reserved or posting):
                continue
            settling = slot.appeared + self._edit_interval - now
            if slot.ts is None and not slot.final and settling > 0:
                posting = True  # its text is still coming: it and the new messages after it wait
                soonest = settling if soonest is None else min(soonest, settling)
                continue
            if slot.ts is None or slot.final:
                posting = posting or slot.ts is None
                if urgent is None or _ahead(slot, urgent):
                    urgent = slot
                continue
            wait = slot.last_sent + self._edit_interval - now
            if wait <= 0:
                if due is None or slot.last_sent < due.last_sent:
                    due = slot
            elif soonest is None or wait < soonest:
                soonest = wait
        if not waiting:  # settled some other way (given up, its channel closed): no wait goes on
            thread.waiting_since = None
        if urgent is not None or due is not None:
            return urgent or due, None
        return None, soonest

    async def _send(self, thread: Thread, slot: Slot, lease: Lease) -> None:
        ref = thread.ref
        method = "chat.postMessage" if slot.ts is None else "chat.update"
        try:
            since = thread.waiting_since
            if slot.ts is None or slot.final:
                urgency = Priority.AWAITED if slot.awaited else Priority.FINAL
                await self._limits.acquire(method, ref.channel, urgency, since=since)
            else:
                thread.ticket = Ticket()
                try:
                    if not await self._limits.acquire(
                        method, ref.channel, Priority.PROGRESS, thread.ticket, since
                    ):
                        return  # something more urgent turned up: ``_next`` picks it
                finally:
                    thread.ticket = None
            if not self._leases.valid(lease):  # lost while waiting: the new holder sends it
                return
            assert slot.text is not None
            # Read after the wait: the newest text goes out.
            text, buttons, plan, sent = slot.text, slot.buttons, slot.plan, slot.text_digest
            # The stored text this send settles: ``text`` itself, or an older one ``text`` replaced.
            stored = slot.stored
            key = tag(ref, slot.key)
            with tracing.resumed(slot.trace):
                if slot.ts is None:
                    slot.ts = await self._poster.post(
                        ref.channel, ref.thread_ts, text, key=key, buttons=buttons, plan=plan
                    )
                    self._threads.posted[(ref.channel, slot.ts)] = ref.link_id
                else:
                    await self._poster.update(ref.channel, slot.ts, text, key=key, buttons=buttons, plan=plan)
        except SlackRateLimited as exc:  # every thread's next call of the method waits, not only this one
            self._limits.rate_limited(method, ref.channel, exc.retry_after)
            slot.since = next(thread.changes)  # the thread's other final texts get their turn next
            log.warning("slack rate limit on %s; pausing it for %.2fs", method, exc.retry_after)
            return
        except SlackPermanent as exc:
            await self._refused(thread, slot, exc, sent)
            return
        except SlackError as exc:
            slot.failures += 1
            if slot.failures >= MAX_TRANSIENT_ATTEMPTS:
                log.error("giving up on slot %s after %d failures: %s", slot.key, slot.failures, exc)
                slot.sent_digest = sent
                slot.done.set()
                return
            delay = SLACK_RETRY.delay(slot.failures)
            thread.paused_until = self._threads.clock() + delay
            log.warning("slack call failed (%s); retrying slot %s in %.2fs", exc, slot.key, delay)
            return
        posted = slot.sent_digest == ""
        slot.failures = 0
        slot.last_sent = self._threads.clock()
        self._observer.text_shown(posted or slot.final, slot.last_sent - slot.changed_at)
        slot.sent_digest = sent
        waiting = any(other.dirty for other in thread.slots.values())
        thread.waiting_since = slot.last_sent if waiting else None
        # A streaming edit needs no row (a restart redoes it), unless the row is an earlier run's.
        if posted or slot.final or stored or slot.inherited:
            slot.inherited = False
            await self._store.slot_rows(SlotRow(ref.link_id, slot.key, slot.ts, sent, stored))
            if stored and slot.stored == stored:
                slot.stored = ""
        if not slot.dirty:
            slot.done.set()

    async def _refused(self, thread: Thread, slot: Slot, exc: SlackPermanent, sent: str) -> None:
        """A Slack error no retry fixes: split a too long text once, close a lost channel, else drop."""
        ref = thread.ref
        if exc.code in CHANNEL_CLOSED:
            await self._close_thread(thread, exc.code)
            return
        if exc.code in OVERSIZED and not slot.split and slot.text is not None:
            parts = split_markdown(slot.text, limit=max(len(slot.text) // 2, _MIN_SPLIT))
            if len(parts) > 1:
                await self._split(thread, slot, parts)
                return
        log.error("giving up on slot %s in %s/%s: %s", slot.key, ref.channel, ref.thread_ts, exc)
        slot.sent_digest = sent
        if slot.stored == sent:
            await self._store.settle(ref, slot.key, sent)
            slot.stored = ""
        slot.done.set()

    async def _split(self, thread: Thread, slot: Slot, parts: list[str]) -> None:
        """Slack found the text too big (its count differs from ours): show it in smaller parts,
        the first in this slot and the rest in new slots right after it; each part is tried once."""
        assert slot.text is not None
        log.warning(
            "slack found slot %s too long (%d characters); retrying in %d parts",
            slot.key,
            len(slot.text),
            len(parts),
        )
        first = digest(parts[0], slot.buttons)
        texts = [SlotText(slot.key, parts[0], slot.final, first, encode_buttons(slot.buttons))]
        whole = SlotKey.decode(slot.key)
        texts += [
            SlotText(whole.part(i, slack_counted=True).encode(), p, slot.final, digest(p))
            for i, p in enumerate(parts[1:], 1)
        ]
        if slot.stored:
            await self._store.replace(thread.ref, slot.key, slot.stored, texts)
        stored = bool(slot.stored)
        order = list(thread.slots)
        at = order.index(slot.key) + 1
        self._store.show_in(thread, texts, stored=stored)
        for text in texts:
            thread.slots[text.slot].split = True
        new = [t.slot for t in texts[1:] if t.slot not in order[:at]]
        thread.slots = {k: thread.slots[k] for k in [*order[:at], *new, *order[at:]] if k in thread.slots}
        if not stored:
            slot.stored = ""

    async def _close_thread(self, thread: Thread, code: str) -> None:
        """The thread's channel takes no messages: stop delivering there and keep its texts as failed."""
        ref = thread.ref
        self._threads.closed[ref.link_id] = code
        log.warning(
            "stopping delivery to %s (thread %s): Slack says %s",
            ref.channel,
            ref.thread_ts,
            code,
            extra={"channel": ref.channel, "thread_ts": ref.thread_ts},
        )
        await self._store.fail(ref, code)
        for slot in thread.slots.values():
            slot.sent_digest, slot.stored = slot.text_digest, ""
            slot.done.set()
        thread.marks.clear()


def _ahead(slot: Slot, other: Slot) -> bool:
    """Whether ``slot`` goes before ``other`` among a thread's urgent texts: a new message a person
    waits for first, then the one waiting longest. Only a new one jumps ahead: an edit of a reply
    Slack keeps refusing must not keep the thread's other final texts from being tried."""
    return (not (slot.awaited and slot.ts is None), slot.since) < (
        not (other.awaited and other.ts is None),
        other.since,
    )
