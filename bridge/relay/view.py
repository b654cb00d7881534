"""Pure fold of a chat's stream events into what its Slack thread should show.

The thread is a list of blocks, each with a stable key, so replaying any events (a reconnect's
snapshot, a restart from the stored cursor, Coder's full refresh after an edit) lands on the same
keys and becomes edits of the same Slack messages, never new ones.

Keys: an assistant message's block is ``after:<id of the message before it>``. That id is known
both while the message is still streaming (it is the newest persisted message) and once it is
persisted, so the streamed draft and the final text share one key and one Slack message.

Streamed deltas carry no message id and Coder re-sends the whole turn's deltas after a reconnect,
so the draft is the turn's delta text minus the text of the turn's already persisted messages.
"""

from __future__ import annotations

import bisect
import logging
from collections.abc import Iterable
from dataclasses import dataclass

from bridge.coder.types import (
    ChatPhase,
    ChatStatus,
    ConnectedEvent,
    ErrorEvent,
    Message,
    MessageEvent,
    PartEvent,
    QueueEvent,
    RetryEvent,
    StatusEvent,
    StreamEvent,
)
from bridge.slack.blocks import render_error

log = logging.getLogger(__name__)


@dataclass
class Block:
    """One logical piece of the thread; ``final`` blocks will not change again in this turn."""

    key: str
    text: str
    final: bool


class ThreadView:
    """The Slack-side state of one chat, folded from its stream events."""

    def __init__(self, *, after_id: int | None = None, turn_texts: Iterable[str] = ()) -> None:
        """Start after ``after_id``; ``turn_texts`` are the current turn's persisted replies up to it."""
        self.last_id = after_id or 0
        self.status: ChatStatus | None = None
        self.status_changed = False
        self._known_ids: list[int] = [self.last_id] if after_id else []
        self._deltas = ""
        self._turn_persisted = "".join(turn_texts)
        self._blocks: dict[str, Block] = {}
        self.changed: list[str] = []

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
        """Fold one batch; afterwards ``changed`` lists the keys of blocks that changed."""
        self.changed = []
        self.status_changed = False
        for event in batch:
            self._apply(event)
        self._update_draft()

    def _apply(self, event: StreamEvent) -> None:
        match event:
            case ConnectedEvent():
                self._deltas = ""
            case StatusEvent(status=status):
                self._on_status(status)
            case PartEvent(role="assistant", part=part) if part.type == "text":
                self._deltas += part.text
            case PartEvent():
                pass
            case MessageEvent(message=message):
                self._on_message(message)
            case ErrorEvent(message=message):
                self._set(f"error:{self.last_id}", render_error(message), final=True)
            case RetryEvent() | QueueEvent():
                log.debug("stream event %s not rendered yet", event.kind)

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
        if not status.phase.busy:
            self._update_draft()
            for block in self._blocks.values():
                if not block.final:
                    self._set(block.key, block.text, final=True)
            self._deltas = ""

    def _on_message(self, message: Message) -> None:
        if message.id > self.last_id:
            previous = self.last_id
            self.last_id = message.id
            self._known_ids.append(message.id)
        else:  # a replay (Coder's full refresh after an edit): find its predecessor among known ids
            at = bisect.bisect_left(self._known_ids, message.id)
            previous = self._known_ids[at - 1] if at > 0 else 0
        if message.role == "user":
            self._turn_persisted = ""
        elif message.role == "assistant" and message.text.strip():
            self._turn_persisted += message.text
            self._set(f"after:{previous}", message.text, final=True)

    def _update_draft(self) -> None:
        persisted = self._turn_persisted
        draft = self._deltas.removeprefix(persisted) if self._deltas.startswith(persisted) else ""
        key = f"after:{self.last_id}"
        existing = self._blocks.get(key)
        if draft.strip() and (existing is None or not existing.final):
            self._set(key, draft, final=False)

    def _set(self, key: str, text: str, *, final: bool) -> None:
        existing = self._blocks.get(key)
        if existing is not None and existing.text == text and existing.final == final:
            return
        self._blocks[key] = Block(key, text, final)
        if key not in self.changed:
            self.changed.append(key)
