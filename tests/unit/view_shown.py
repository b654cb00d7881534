"""What a ``ThreadView``'s blocks show once rendered, keyed as the outbox stores them: the view
returns data (``relay.content``), and these tests read it as a thread would."""

from __future__ import annotations

from bridge.relay.content import Card, Plan
from bridge.relay.slots import SlotKey
from bridge.relay.view import Block, ThreadView
from bridge.slack.thread_text import render_content, render_plan


def text(block: Block) -> str:
    """What the block shows ("" while it only holds its place)."""
    return render_content(block.content) if block.content is not None else ""


def block(view: ThreadView, key: str) -> Block:
    return view.block(SlotKey.decode(key))


def text_of(view: ThreadView, key: str) -> str:
    return text(block(view, key))


def plan_of(view: ThreadView, key: str) -> Plan | None:
    content = block(view, key).content
    return render_plan(content) if isinstance(content, Card) else None


def changed(view: ThreadView) -> list[str]:
    return [key.encode() for key in view.changed]


def renamed(view: ThreadView) -> list[tuple[str, str]]:
    return [(old.encode(), new.encode()) for old, new in view.renames]
