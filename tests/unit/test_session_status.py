"""How Coder's chat phases show as Slack Agent Session statuses."""

from __future__ import annotations

from bridge.coder.types import ChatPhase
from bridge.relay.sessions import SessionStatus, session_status


def test_phases_map_onto_the_four_session_statuses() -> None:
    """Working is processing, waiting for a person suspended, idle or failed active, done closed."""
    assert {phase: session_status(phase) for phase in ChatPhase} == {
        ChatPhase.STARTING: SessionStatus.PROCESSING,
        ChatPhase.WORKING: SessionStatus.PROCESSING,
        ChatPhase.NEEDS_USER: SessionStatus.SUSPENDED,
        ChatPhase.IDLE: SessionStatus.ACTIVE,
        ChatPhase.ERROR: SessionStatus.ACTIVE,
        ChatPhase.DONE: SessionStatus.CLOSED,
        ChatPhase.UNKNOWN: None,
    }
