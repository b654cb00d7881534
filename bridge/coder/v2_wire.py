"""G2 (promoted ``/api/v2/chats``) JSON to domain models: the G1 parsers with G2's status table.

The promoted API kept G1's shapes apart from additions the G1 parsers already tolerate (reference
sections 3.1 and 3.3: ``last_error`` as an object, new Chat keys, new part types), so only the status
names differ, plus ``queued_for_capacity``, which G2 reports on a ``running`` chat still waiting
for an agent slot.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bridge.coder import experimental_wire
from bridge.coder.framing import RawEvent
from bridge.coder.types import Chat, ChatPhase, ChatStatus, StreamEvent, WatchEvent

# codersdk.ChatStatus in the newest coder/coder source: exactly these five; there is no "pending".
STATUS_PHASES: Mapping[str, ChatPhase] = {
    "waiting": ChatPhase.IDLE,
    "running": ChatPhase.WORKING,
    "error": ChatPhase.ERROR,
    "requires_action": ChatPhase.NEEDS_USER,
    "interrupting": ChatPhase.WORKING,
    "action_required": ChatPhase.NEEDS_USER,  # defensive: the name of G2's matching watch kind
}


def parse_status(name: Any) -> ChatStatus:
    """A G2 status name; unknown names keep their text with phase UNKNOWN."""
    return experimental_wire.parse_status(name, STATUS_PHASES)


def parse_chat(raw: Any) -> Chat:
    """A G2 Chat; ``running`` with ``queued_for_capacity`` has not started yet (phase STARTING)."""
    chat = experimental_wire.parse_chat(raw, STATUS_PHASES)
    if chat.status.name == "running" and raw.get("queued_for_capacity") is True:
        return chat.model_copy(update={"status": ChatStatus(phase=ChatPhase.STARTING, name="running")})
    return chat


def parse_stream_event(raw: RawEvent) -> StreamEvent | None:
    """One G2 ChatStreamEvent (same shapes as G1) as a domain event, or ``None`` to skip it."""
    return experimental_wire.parse_stream_event(raw, STATUS_PHASES)


def parse_watch_event(raw: RawEvent) -> WatchEvent | None:
    """One G2 ChatWatchEvent (same shape as G1's), or ``None`` to skip it."""
    return experimental_wire.parse_watch_event(raw, parse_chat)
