"""Pure fold of a chat's stream events into what its Slack thread should show.

The thread is a list of blocks, each with a stable key, so replaying any events (a reconnect's
snapshot, a restart from the stored cursor, Coder's full refresh after an edit) lands on the same
keys and becomes edits of the same Slack messages, never new ones.

Keys: a persisted assistant message's block is ``after:<id of the message before it>``, so a replay
lands on the same key. The reply still streaming is the ``draft`` block. Streamed deltas carry no
message id, and in a snapshot they arrive *before* the persisted messages, so which message a draft
will become is only known when that message is persisted: then the view records a rename of
``draft`` to the message's key (the outbox moves the draft's Slack message there, so streamed text
and final text share one Slack message) and a new draft starts for what follows.

Coder re-sends the whole turn's deltas after a reconnect, so the draft is the turn's delta text
minus the text of the turn's already persisted replies.
"""

from __future__ import annotations

import bisect
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from bridge.coder.types import (
    ChatPhase,
    ChatStatus,
    ConnectedEvent,
    ErrorEvent,
    Message,
    MessageEvent,
    Part,
    PartEvent,
    QueueEvent,
    RetryEvent,
    StatusEvent,
    StreamEvent,
)
from bridge.slack.blocks import ToolLine, render_card, render_error

log = logging.getLogger(__name__)


DRAFT = "draft"
_PATH_KEYS = ("path", "file", "file_path", "filename")


@dataclass
class _Call:
    name: str
    summary: str = ""
    state: str = "running"
    touched: tuple[str, ...] = ()


def summarize_args(args: Any) -> str:
    """A short hint of what a tool call does: its first string argument, cut to 60 characters."""
    if isinstance(args, dict):
        for value in args.values():
            if isinstance(value, str) and value.strip():
                line = value.strip().splitlines()[0]
                return line if len(line) <= 60 else line[:59] + "…"
        for value in args.values():
            hint = summarize_args(value)
            if hint:
                return hint
    if isinstance(args, list) and args:
        return summarize_args(args[0])
    return ""


def touched_files(args: Any) -> tuple[str, ...]:
    """Base names of the files a tool call names (``path``/``file``… arguments, at any depth)."""
    found: list[str] = []
    if isinstance(args, dict):
        for key, value in args.items():
            if key in _PATH_KEYS and isinstance(value, str) and value:
                found.append(value.rstrip("/").rsplit("/", 1)[-1])
            else:
                found.extend(touched_files(value))
    elif isinstance(args, list):
        for item in args:
            found.extend(touched_files(item))
    return tuple(dict.fromkeys(found))


@dataclass(frozen=True)
class Outcome:
    """How a turn ended: what the requester is told."""

    turn_id: int
    phase: ChatPhase
    touched: tuple[str, ...]
    failure: str
    stopped: bool


@dataclass
class Block:
    """One logical piece of the thread; ``final`` blocks will not change again in this turn."""

    key: str
    text: str
    final: bool


class ThreadView:
    """The Slack-side state of one chat, folded from its stream events."""

    def __init__(
        self, *, after_id: int | None = None, turn: Sequence[Message] = (), draft_shown: bool = False
    ) -> None:
        """Start after ``after_id``.

        ``turn`` holds the current turn's persisted messages up to it (from its user message on), so
        a restart mid-turn rebuilds the draft and the turn's card; ``draft_shown`` says that a draft
        from before a restart is in the thread, so the next persisted reply takes it over.
        """
        self.last_id = 0
        self.status: ChatStatus | None = None
        self.status_changed = False
        self._known_ids: list[int] = []
        self._deltas = ""
        self._turn_persisted = ""
        self._turn_id: int | None = None
        self._calls: dict[str, _Call] = {}
        self._failure = ""
        self._stopped_turn: int | None = None
        self._blocks: dict[str, Block] = {}
        self.changed: list[str] = []
        self.renames: list[tuple[str, str]] = []
        self._draft_of_unseen_turn = False
        for message in turn:
            self._on_message(message)
        if after_id is not None and after_id > self.last_id:
            self.last_id = after_id
            self._known_ids.append(after_id)
        self.saved_id = self.last_id  # the cursor as stored; the supervisor advances it
        if draft_shown:
            self._blocks[DRAFT] = Block(DRAFT, "", final=False)
            # The cursor is stored after the draft was shown, so it can lag behind the user message
            # that began the draft's turn: that message, when it comes, does not end the draft.
            self._draft_of_unseen_turn = after_id is None or not turn
        self.changed = []

    @property
    def blocks(self) -> list[Block]:
        """All blocks in the order they first appeared."""
        return list(self._blocks.values())

    def block(self, key: str) -> Block:
        """One block by key."""
        return self._blocks[key]

    @property
    def busy(self) -> bool:
        """Whether the chat is (as far as the stream said) in the middle of a turn."""
        return self.status is not None and self.status.phase.busy

    def apply(self, batch: Iterable[StreamEvent]) -> None:
        """Fold one batch; afterwards ``renames`` and ``changed`` say what to do in Slack, in that order."""
        self.changed = []
        self.renames = []
        self.status_changed = False
        for event in batch:
            self._apply(event)
        self._update_draft()
        self._update_card()

    def _apply(self, event: StreamEvent) -> None:
        match event:
            case ConnectedEvent():
                self._deltas = ""
            case StatusEvent(status=status):
                self._on_status(status)
            case PartEvent(role="assistant", part=part) if part.type == "text":
                self._deltas += part.text
            case PartEvent(part=part):
                self._on_tool_part(part)
            case MessageEvent(message=message):
                self._on_message(message)
            case ErrorEvent(message=message):
                self._failure = message
                self._set(f"error:{self.last_id}", render_error(message), final=True)
            case RetryEvent() | QueueEvent():
                log.debug("stream event %s not rendered yet", event.kind)

    def _on_tool_part(self, part: Part) -> None:
        """Tool calls and results, streamed or persisted, keyed by call id so replays count once."""
        if part.type not in ("tool-call", "tool-result"):
            return
        key = part.tool_call_id or f"call-{len(self._calls)}"
        call = self._calls.setdefault(key, _Call(name=part.tool_name or "tool"))
        if part.tool_name:
            call.name = part.tool_name
        if part.type == "tool-call" and part.args is not None:
            call.summary, call.touched = summarize_args(part.args), touched_files(part.args)
        elif part.type == "tool-result":
            call.state = "error" if part.is_error else "ok"

    def _on_status(self, status: ChatStatus) -> None:
        previous = self.status
        self.status = status
        self.status_changed = self.status_changed or previous != status
        if (
            status.phase is ChatPhase.WORKING
            and previous is not None
            and previous.phase is not ChatPhase.WORKING
        ):
            self._deltas = ""  # Coder starts a fresh delta buffer with every turn
        elif not status.phase.busy:  # the turn is over: its deltas never come back, even in a snapshot
            self._update_draft()
            self._deltas = ""

    def _touched(self) -> tuple[str, ...]:
        """Files the turn's tool calls named, first mention first."""
        return tuple(dict.fromkeys(name for c in self._calls.values() for name in c.touched))

    def mark_stopped(self) -> None:
        """A person is interrupting the turn under way: its outcome will say so."""
        if self.busy:
            self._stopped_turn = self._turn_id

    def outcome(self) -> Outcome | None:
        """How the last turn this view saw ended, once the chat is idle."""
        if self._turn_id is None or self.status is None or self.status.phase.busy:
            return None
        touched = self._touched()
        stopped = self._stopped_turn is not None and self._stopped_turn == self._turn_id
        return Outcome(self._turn_id, self.status.phase, touched, self._failure, stopped)

    def finish(self) -> None:
        """The chat is idle and caught up: a draft no message took over was cut short (an interrupt, an
        error); it keeps the text it showed under a key of its own, so the next turn starts afresh."""
        self.changed = []
        self.renames = []
        self.status_changed = False
        self._update_draft()
        self._adopt_draft(f"partial:{self.last_id}")
        self._deltas = ""

    def _on_message(self, message: Message) -> None:
        new = message.id > self.last_id
        if new:
            previous = self.last_id
            self.last_id = message.id
            self._known_ids.append(message.id)
        else:  # a replay (Coder's full refresh after an edit): find its predecessor among known ids
            at = bisect.bisect_left(self._known_ids, message.id)
            previous = self._known_ids[at - 1] if at > 0 else 0
        if message.role == "user":
            if self._draft_of_unseen_turn:
                self._draft_of_unseen_turn = False
            elif new and not self.busy:
                # A new turn after one that is over: a draft left from that turn (it failed, or its
                # connection broke) is never completed, so it keeps its text and the new turn starts afresh.
                self._adopt_draft(f"partial:{previous}")
            if new:
                self._close_card()
                self._drop_finished_deltas()
            self._turn_persisted = ""
            self._turn_id, self._calls, self._failure = message.id, {}, ""
        for part in message.content:
            self._on_tool_part(part)
        if message.role == "assistant" and message.text.strip():
            self._turn_persisted += message.text
            key = f"after:{previous}"
            if key not in self._blocks:
                self._adopt_draft(key)
            self._set(key, message.text, final=True)

    def _drop_finished_deltas(self) -> None:
        """A new turn began without the chat going idle (a queued message): deltas that its replies
        persisted in full belong to the turn before, and must not come back as the new turn's draft.
        Deltas that are not (a snapshot sends the running turn's deltas before its user message) stay.
        """
        rest = self._deltas.removeprefix(self._turn_persisted)
        if self._deltas.startswith(self._turn_persisted) and not rest.strip():
            self._deltas = ""

    def _adopt_draft(self, key: str) -> None:
        """Hand the draft's Slack message to block ``key``; the next deltas start a new draft."""
        draft = self._blocks.pop(DRAFT, None)
        if draft is None:
            return
        self.renames.append((DRAFT, key))
        self.changed = [key if k == DRAFT else k for k in self.changed]
        self._blocks[key] = Block(key, draft.text, final=True)
        if key not in self.changed:
            self.changed.append(key)

    def _update_card(self, phase: ChatPhase | None = None) -> None:
        """The turn's status card: shown once the turn called a tool, final when the turn ended."""
        if self._turn_id is None or not self._calls:
            return
        key = f"card:{self._turn_id}"
        if key in self._blocks and self._blocks[key].final:
            return  # its turn is over; snapshot deltas of the next turn must not land on it
        if phase is None:
            phase = self.status.phase if self.status is not None else ChatPhase.WORKING
        lines = [ToolLine(c.name, c.summary, c.state) for c in self._calls.values()]
        touched = list(self._touched())
        text = render_card(lines, phase=phase, touched=touched, reason=self._failure)
        self._set(key, text, final=not phase.busy)

    def _close_card(self) -> None:
        """A new turn began while the chat stayed busy (Coder went straight on to a queued
        message): the turn before it is over, so its card says done instead of working forever."""
        self._update_card(ChatPhase.IDLE)

    def _update_draft(self) -> None:
        persisted = self._turn_persisted
        draft = self._deltas.removeprefix(persisted) if self._deltas.startswith(persisted) else ""
        if draft.strip():
            self._set(DRAFT, draft, final=False)

    def _set(self, key: str, text: str, *, final: bool) -> None:
        existing = self._blocks.get(key)
        if existing is not None and existing.text == text and existing.final == final:
            return
        self._blocks[key] = Block(key, text, final)
        if key not in self.changed:
            self.changed.append(key)
