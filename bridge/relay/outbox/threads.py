"""What every part of the outbox knows of a thread: where it is, its slots, the bridge's reactions on
its messages, and the fingerprints that tell whether Slack shows a text already.

A thread's texts and reactions are sent by one worker, with one place in the budgets' line, so the
scheduler, the reaction executor and the store share this state rather than each keeping its own.

Buttons. A slot's text may carry buttons; they are stored and digested with it, so they are as
durable as the text and a change of buttons alone is an edit like a change of text.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from opentelemetry.context import Context

from bridge import tracing
from bridge.db.models import ThreadLink
from bridge.relay.content import Plan
from bridge.relay.limits import Ticket
from bridge.relay.output import SlotText
from bridge.relay.ports import Button
from bridge.relay.slots import PostTag, SlotKey
from bridge.slack.workspaces import WorkspaceKey
from bridge.tasks import TaskGroup

Buttons = tuple[Button, ...]
MAX_TRANSIENT_ATTEMPTS = 5  # failed calls in a row before a text or reaction is given up (this run)


def encode_buttons(buttons: Buttons) -> str:
    return json.dumps([vars(b) for b in buttons], separators=(",", ":")) if buttons else ""


def decode_buttons(stored: str) -> Buttons:
    return tuple(Button(**b) for b in json.loads(stored)) if stored else ()


def digest(text: str, buttons: Buttons = ()) -> str:
    """Short stable fingerprint of a text and its buttons, to skip edits that would change nothing
    (a text without buttons keeps the fingerprint it had before messages could carry any)."""
    content = f"{text}\0{encode_buttons(buttons)}" if buttons else text
    return hashlib.sha256(content.encode()).hexdigest()[:32]


def final_text(slot: str, text: str, buttons: Buttons = ()) -> SlotText:
    """A final text for a slot, as ``put`` and ``stage`` take it."""
    return SlotText(slot, text, final=True, digest=digest(text, buttons), buttons=encode_buttons(buttons))


@dataclass(frozen=True)
class ThreadRef:
    """Where a thread is: enough to post into it and to find its stored slots."""

    link_id: int
    channel: str
    thread_ts: str
    workspace: WorkspaceKey | None = None
    """The workspace the thread is in: every Slack call about it is made for it (None: the bridge's
    one workspace, for threads addressed before several could be served)."""


def thread_ref(link: ThreadLink) -> ThreadRef:
    """The outbox address of a linked thread."""
    assert link.id is not None
    return ThreadRef(link.id, link.channel_id, link.thread_ts, WorkspaceKey(link.enterprise_id, link.team_id))


def tag(ref: ThreadRef, slot: str) -> PostTag:
    """What a posted message is tagged with: its link and slot."""
    return PostTag(ref.link_id, SlotKey.decode(slot))


@dataclass
class Slot:
    key: str
    ts: str | None = None
    sent_digest: str = ""
    text: str | None = None  # None: nothing asked of this slot since the last start
    buttons: Buttons = ()
    plan: Plan | None = None  # set with ``text``, in memory only
    text_digest: str = ""  # of ``text``, computed once when it is set, not on every wake
    final: bool = False
    last_sent: float = float("-inf")
    failures: int = 0
    stored: str = ""  # digest of this slot's row in the outbox table, if it has one
    split: bool = False  # ``text`` is already a smaller part of one Slack found too long
    since: int = 0  # when (in the thread's order of changes) the slot last began to differ from Slack
    changed_at: float = 0.0  # when (by the outbox's clock) it last began to differ: its lag's start
    trace: Context | None = None  # the trace of the change that made it differ (tracing.carried)
    appeared: float = 0.0  # when its first text was set (a new message's text settles for a moment)
    awaited: bool = False  # a person waits to see it (``SlotKey.awaited``): it goes first
    # Its row is from before this start and may record a final text: the next edit must replace it,
    # or a progress edit shown over that text would, after a crash, pass for the final text.
    inherited: bool = False
    done: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def dirty(self) -> bool:
        return self.text is not None and self.text_digest != self.sent_digest


@dataclass
class Marks:
    """The bridge's reactions on one message: what each role wants, and what Slack has."""

    wanted: dict[str, frozenset[str]] = field(default_factory=dict)  # role -> names
    among: set[str] = field(default_factory=set)  # every name a role may have put here
    known: dict[str, bool] = field(default_factory=dict)  # name -> on the message (absent: unknown)
    stored: dict[str, frozenset[str]] = field(default_factory=dict)  # role -> names of its stored row
    failures: dict[str, int] = field(default_factory=dict)  # name -> its calls failed in a row
    retry_at: dict[str, float] = field(default_factory=dict)  # name -> no call for it before then

    def steps(self) -> list[tuple[str, bool]]:
        """The calls that bring Slack closer to the wish, (name, add?): the adds, and only once they
        are done the removes, so a message never shows neither its old state nor its new one (👀
        comes off once ✅ is on, however long Slack fails the ✅)."""
        want = frozenset().union(*self.wanted.values())
        adds = sorted(n for n in want if self.known.get(n) is not True)
        if adds:
            return [(n, True) for n in adds]
        return [(n, False) for n in sorted(n for n in self.among - want if self.known.get(n) is not False)]

    def next(self) -> tuple[str, bool] | None:
        """The next call that brings Slack closer to the wish."""
        steps = self.steps()
        return steps[0] if steps else None


class Thread:
    def __init__(self, ref: ThreadRef) -> None:
        self.ref = ref
        self.slots: dict[str, Slot] = {}
        self.marks: dict[str, Marks] = {}  # message ts -> the bridge's reactions on it
        self.wake = asyncio.Event()
        self.loaded = asyncio.Event()
        self.paused_until = 0.0
        self.waiting_since: float | None = None  # since when a text of the thread waits to be shown
        self.ticket: Ticket | None = None  # the worker's place in a budget's line while it waits
        self.reacting = False  # the ticket is a reaction's: any text due goes before it
        self.changes = itertools.count(1)
        self.renamed: list[asyncio.Future[None]] = []  # slot renames queued, not yet known stored

    def idle(self) -> bool:
        """Nothing of the thread waits for Slack, nor a row for its deletion."""
        return all(not slot.dirty for slot in self.slots.values()) and not any(
            m.next() or m.stored for m in self.marks.values()
        )


class Threads:
    """The threads with a live worker, by link id; asking for one starts its worker."""

    def __init__(
        self, clock: Callable[[], float], work: Callable[[Thread], Coroutine[Any, Any, None]]
    ) -> None:
        self.clock = clock
        self.live: dict[int, Thread] = {}
        self.posted: dict[tuple[str, str], int] = {}  # (channel, ts) -> link id, as soon as Slack answers
        self.closed: dict[int, str] = {}  # link id -> why its channel takes no messages (this run)
        self.tasks = TaskGroup("outbox")
        self._work = work

    def get(self, ref: ThreadRef) -> Thread:
        thread = self.live.get(ref.link_id)
        if thread is None:
            thread = self.live[ref.link_id] = Thread(ref)
            self.tasks.spawn(f"thread:{ref.link_id}", self._work(thread))
        return thread

    def release(self, thread: Thread) -> None:
        del self.live[thread.ref.link_id]
        for slot in thread.slots.values():
            if slot.ts is not None:
                self.posted.pop((thread.ref.channel, slot.ts), None)

    def set(
        self,
        thread: Thread,
        key: str,
        text: str,
        *,
        final: bool,
        stored: str = "",
        buttons: Buttons = (),
        plan: Plan | None = None,
    ) -> None:
        slot = thread.slots.get(key)
        if slot is None:
            slot = thread.slots[key] = Slot(key)
        if slot.text is None:  # its first text this run
            slot.appeared = self.clock()
            slot.awaited = SlotKey.decode(key).awaited
        if not slot.dirty:
            slot.since = next(thread.changes)
            slot.changed_at = self.clock()
            slot.trace = tracing.carried()
        slot.text, slot.buttons, slot.plan, slot.final = text, buttons, plan, final or slot.final
        slot.text_digest = digest(text, buttons)
        slot.split = False
        if stored:
            slot.stored = stored
        if slot.dirty:
            slot.done.clear()
            if thread.waiting_since is None:
                thread.waiting_since = self.clock()
        if thread.ticket is not None and (thread.reacting or slot.final or slot.ts is None) and slot.dirty:
            thread.ticket.withdraw()  # the worker waits to react or show progress: this goes first
        thread.wake.set()

    def pending(self) -> int:
        """How many slots and messages' reactions still differ from what Slack shows (or whose rows
        are still to be deleted: left, they would be replayed at the next start)."""
        slots = sum(1 for t in self.live.values() for s in t.slots.values() if not s.done.is_set())
        return slots + sum(1 for t in self.live.values() for m in t.marks.values() if m.next() or m.stored)

    def longest_wait(self) -> float:
        """How long the thread waiting longest for a text to be shown has waited (0: none waits)."""
        waits = [t.waiting_since for t in self.live.values() if t.waiting_since is not None]
        return max(self.clock() - min(waits), 0.0) if waits else 0.0
