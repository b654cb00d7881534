"""What a thread shows, keyed: one ``SlotKey`` per message the bridge keeps in a thread.

A key names the message by what it answers (the reply after message 12, the card of turn 7, the
notice on a person's message) so that a replay or a restart edits the same message instead of
posting another. The outbox and the ``slack_message`` table keep keys as strings; ``encode`` writes
the format those tables (and Slack's message metadata) have always held, ``decode`` reads it back,
so rows written before this module existed keep working. Only this module spells that format.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

_PARTS = re.compile(r"^(?P<name>.*?)(?:#(?P<part>\d+))?(?P<pieces>(?:\+\d+)*)$")


class SlotKind(StrEnum):
    """What a slot shows; the value is the prefix its stored name starts with."""

    DRAFT = "draft"
    HEADER = "header"
    REPLY = "after"
    PARTIAL = "partial"
    CARD = "card"
    RETRY = "retry"
    ERROR = "error"
    OUTCOME = "outcome"
    WAIT = "wait"
    LOST = "lost"
    NOTICE = "notice"
    ANSWER = "reply"
    WARNINGS = "warnings"
    FILES = "files"
    AGENT_FILE = "agentfile"
    STOP = "stop"
    CONTROL = "control"
    QUESTION = "question"
    PLAN = "plan"
    OTHER = ""
    """A name no kind above starts (a row of some other version): kept and shown as it is."""


AWAITED_KINDS = frozenset(
    {
        SlotKind.DRAFT,
        SlotKind.REPLY,
        SlotKind.PARTIAL,
        SlotKind.ERROR,
        SlotKind.WAIT,
        SlotKind.ANSWER,
        SlotKind.STOP,
        SlotKind.CONTROL,
    }
)
"""Kinds a person waits to see: the agent's words, how its turn failed or what it waits for, and the
bridge's answers to what they did. The rest (header, card, outcome, notices) is the bridge's own
status, which goes after these when Slack's budgets are short."""

_ANCHORED = frozenset({SlotKind.REPLY, SlotKind.PARTIAL, SlotKind.CARD})
"""Kinds whose anchor is a chat message id: the message before a reply, or a card's user message."""


@dataclass(frozen=True)
class SlotKey:
    """A slot: its ``name`` (kind and anchor), the ``index`` of its part of a text the bridge split by
    its own count (0: the text or its first part), and the ``pieces`` Slack's count split that into further
    (outermost last). Parts come from ``part`` alone, so both splits name them one way."""

    name: str
    index: int = 0
    pieces: tuple[int, ...] = ()

    @classmethod
    def _of(cls, kind: SlotKind, *anchor: object) -> SlotKey:
        return cls(":".join([kind.value, *(str(a) for a in anchor)]))

    @classmethod
    def draft(cls) -> SlotKey:
        """The reply still streaming, before the message it follows is known."""
        return cls(SlotKind.DRAFT.value)

    @classmethod
    def header(cls) -> SlotKey:
        """The bridge's status message at the top of the thread."""
        return cls(SlotKind.HEADER.value)

    @classmethod
    def reply_after(cls, message_id: int) -> SlotKey:
        """The agent's reply that follows chat message ``message_id``."""
        return cls._of(SlotKind.REPLY, message_id)

    @classmethod
    def partial(cls, message_id: int) -> SlotKey:
        """A reply cut short (by an interrupt or a restart) after chat message ``message_id``."""
        return cls._of(SlotKind.PARTIAL, message_id)

    @classmethod
    def card(cls, turn_id: int) -> SlotKey:
        """The status card of the turn started by user message ``turn_id``."""
        return cls._of(SlotKind.CARD, turn_id)

    @classmethod
    def retry(cls, anchor: int, series: int) -> SlotKey:
        """The ``series``-th run of Coder's retries within a turn (or after message ``anchor``)."""
        return cls._of(SlotKind.RETRY, anchor, series)

    @classmethod
    def error(cls, message_id: int) -> SlotKey:
        """The failure a turn ended with, after chat message ``message_id``."""
        return cls._of(SlotKind.ERROR, message_id)

    @classmethod
    def outcome(cls, turn_id: int) -> SlotKey:
        """The one line saying how turn ``turn_id`` ended."""
        return cls._of(SlotKind.OUTCOME, turn_id)

    @classmethod
    def wait(cls, turn_id: int, last_id: int) -> SlotKey:
        """The line saying turn ``turn_id`` waits for the person, after message ``last_id``."""
        return cls._of(SlotKind.WAIT, turn_id, last_id)

    @classmethod
    def lost(cls, cursor: int | None) -> SlotKey:
        """The notice that a chat's connection was lost, keyed by the cursor its next run starts from."""
        return cls._of(SlotKind.LOST, cursor or 0)

    @classmethod
    def notice(cls, text_digest: str) -> SlotKey:
        """An error line keyed by (a digest of) its text: the same notice twice is one message."""
        return cls._of(SlotKind.NOTICE, text_digest[:12])

    @classmethod
    def answer(cls, ts: str) -> SlotKey:
        """The bridge's answer to a person's message at ``ts`` (e.g. its "Queued" notice)."""
        return cls._of(SlotKind.ANSWER, ts)

    @classmethod
    def warnings(cls, ts: str) -> SlotKey:
        """The warnings Coder gave about the person's message at ``ts``."""
        return cls._of(SlotKind.WARNINGS, ts)

    @classmethod
    def files(cls, ts: str) -> SlotKey:
        """What became of the files attached to the person's message at ``ts``."""
        return cls._of(SlotKind.FILES, ts)

    @classmethod
    def agent_file(cls, file_id: str) -> SlotKey:
        """Why a file the agent attached (Coder's file id) is linked instead of posted."""
        return cls._of(SlotKind.AGENT_FILE, file_id)

    @classmethod
    def stop(cls, ts: str) -> SlotKey:
        """The answer to a stop asked for by the person's message at ``ts``."""
        return cls._of(SlotKind.STOP, ts)

    @classmethod
    def control(cls, event: str) -> SlotKey:
        """The answer to a control (a button, a reaction, a command) identified by ``event``."""
        return cls._of(SlotKind.CONTROL, event)

    @classmethod
    def question(cls, call_id: str) -> SlotKey:
        """What the agent asks (or the client tool it waits on) in tool call ``call_id``, and later
        what became of it."""
        return cls._of(SlotKind.QUESTION, call_id)

    @classmethod
    def plan(cls, call_id: str) -> SlotKey:
        """The plan the agent proposed in tool call ``call_id``, with its Approve and Revise buttons."""
        return cls._of(SlotKind.PLAN, call_id)

    @property
    def kind(self) -> SlotKind:
        try:
            return SlotKind(self.name.partition(":")[0]) if self.name else SlotKind.OTHER
        except ValueError:
            return SlotKind.OTHER

    @property
    def awaited(self) -> bool:
        """Whether a person waits to see this slot (``AWAITED_KINDS``)."""
        return self.kind in AWAITED_KINDS

    @property
    def anchor(self) -> str:
        """What the name is keyed by (a message id, a turn, a ts), empty for the draft and header."""
        return self.name.partition(":")[2]

    def tells_end_of(self, turn_id: int) -> bool:
        """Whether this slot told the person that turn ``turn_id`` ended or waits for them."""
        told = self.kind in (SlotKind.OUTCOME, SlotKind.WAIT)
        return told and self.anchor.partition(":")[0] == str(turn_id)

    def anchored_to(self) -> int | None:
        """The chat message a reply or card is shown for, whose removal takes it along; else None (also
        for a piece Slack's count split off, which has always kept its place)."""
        anchor = self.anchor
        known = self.kind in _ANCHORED and anchor.isdigit() and not self.pieces
        return int(anchor) if known and int(anchor) else None

    def part(self, n: int, *, slack_counted: bool = False) -> SlotKey:
        """The key of the ``n``-th part (from 1; 0 is this key) of a text too long for one message:
        split by the bridge's own count, or, ``slack_counted``, again because Slack counted more."""
        if n == 0:
            return self
        if slack_counted:
            return SlotKey(self.name, self.index, (*self.pieces, n))
        return SlotKey(self.name, n, self.pieces)

    def encode(self) -> str:
        """The stored form: ``name``, ``#index`` if split, ``+piece`` for each split of Slack's."""
        own = f"#{self.index}" if self.index else ""
        return self.name + own + "".join(f"+{p}" for p in self.pieces)

    @classmethod
    def decode(cls, stored: str) -> SlotKey:
        """Read a stored slot back; every string decodes, and ``encode`` gives it back unchanged."""
        match = _PARTS.match(stored)
        assert match is not None  # every group is optional: any string matches
        part = match["part"]
        pieces = tuple(int(p) for p in match["pieces"].split("+")[1:])
        return cls(match["name"], int(part) if part else 0, pieces)


@dataclass(frozen=True)
class PostTag:
    """What a posted message is tagged with: the link (thread) it belongs to and its slot. Kept in
    the message's metadata as ``<link id>:<slot>``, so a post whose answer was lost is found again."""

    link_id: int
    slot: SlotKey

    def encode(self) -> str:
        return f"{self.link_id}:{self.slot.encode()}"

    @classmethod
    def decode(cls, stored: str) -> PostTag | None:
        """The tag a message's metadata holds; None for a tag not of this shape."""
        link, sep, slot = stored.partition(":")
        return cls(int(link), SlotKey.decode(slot)) if sep and link.isdigit() else None

    @property
    def is_draft(self) -> bool:
        """The streaming reply, whole or in the bridge's parts; a piece Slack's count split off the
        whole draft is posted plainly (as the poster has always told them apart)."""
        return self.slot.kind is SlotKind.DRAFT and (bool(self.slot.index) or not self.slot.pieces)

    @property
    def is_card(self) -> bool:
        """A turn's status card, which accompanies the reply rather than follows it."""
        return self.slot.kind is SlotKind.CARD
