"""What the relay asks a thread to show, as the outbox takes it and stores it.

Relay values, kept out of the database layer (``bridge.db.repo`` stores anything shaped like them).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SlotText:
    """A text a slot must show, as the outbox stores it."""

    slot: str
    text: str
    final: bool
    digest: str
    buttons: str = ""
    """The buttons under the text, encoded by the outbox (the database does not read them)."""


@dataclass(frozen=True)
class ReactionWish:
    """The bridge's reactions of one kind (``role``) wished on message ``ts``: ``names`` on it, the
    rest of ``among`` (every name the role uses) off.

    What the bridge wants Slack to show, the opposite direction of ``controls.Reaction`` (a person's
    reaction, which asks the bridge to act).
    """

    ts: str
    role: str
    names: frozenset[str]
    among: frozenset[str]
