"""Meets a turn's end, told by its chat's follow, with Coder's summary of that turn, told by the watch.

The newest Coder writes a chat's ``last_turn_summary`` in the background after a turn ends and
announces it on the chat-list watch (``summary_change``), so the summary usually comes after the
completion line was posted, and sometimes before: the follow and the watch read different sockets.
Whichever comes second decides what the line shows. The follow renders its line with the summary
if it came first; otherwise, once its line is stored, it hands over how to render it again, and the
summary that comes later edits the line (an edit notifies nobody twice). The watch edits only a
line already stored, so its edit always comes after the follow's text and is never overwritten by it.

Kept in memory, one turn per chat (the latest): after a restart a summary of a turn that ended
before it is not shown. That costs a line of text, never a message.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from bridge.coder.types import ChatId
from bridge.relay.outbox import ThreadRef
from bridge.relay.output import SlotText

Render = Callable[[str], SlotText]
"""The completion line of a turn, rendered with a summary (empty for none)."""


@dataclass
class _Turn:
    turn_id: int
    summary: str = ""
    shown: str = ""  # the summary the stored line shows
    ref: ThreadRef | None = None  # set once the line is stored
    render: Render | None = None


class TurnSummaries:
    """The latest finished turn of each chat: its summary and, once stored, its completion line."""

    def __init__(self) -> None:
        self._turns: dict[ChatId, _Turn] = {}

    def summary(self, chat_id: ChatId, turn_id: int) -> str:
        """The summary already known for the turn (empty when none came yet)."""
        turn = self._turns.get(chat_id)
        return turn.summary if turn is not None and turn.turn_id == turn_id else ""

    def stored(
        self, chat_id: ChatId, turn_id: int, ref: ThreadRef, shown: str, render: Render
    ) -> SlotText | None:
        """The follow stored the turn's line showing summary ``shown``; the line to store again
        when a newer summary came meanwhile."""
        turn = self._turns.get(chat_id)
        if turn is None or turn.turn_id != turn_id:
            turn = self._turns[chat_id] = _Turn(turn_id)
        turn.ref, turn.render, turn.shown = ref, render, shown
        if turn.summary and turn.summary != shown:
            turn.shown = turn.summary
            return render(turn.summary)
        return None

    def summarized(self, chat_id: ChatId, turn_id: int, summary: str) -> tuple[ThreadRef, SlotText] | None:
        """Coder summarized the turn: where and what to store now, when its line is stored and shows
        another summary; else the follow renders it when the turn's line is made."""
        turn = self._turns.get(chat_id)
        if turn is None or turn.turn_id < turn_id:
            self._turns[chat_id] = _Turn(turn_id, summary)
            return None
        if turn.turn_id != turn_id:
            return None  # a summary of a turn older than the latest: nothing shows it any more
        turn.summary = summary
        if turn.ref is None or turn.render is None or turn.shown == summary:
            return None
        turn.shown = summary
        return turn.ref, turn.render(summary)
