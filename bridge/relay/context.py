"""A thread's earlier messages as context for a chat started late in the thread.

When someone mentions the bot in a thread that already has a conversation, the agent should see
it: the newest earlier messages (bounded in count and size), each attributed to its author, go
before the request in the chat's first message, and their files go along with it.
"""

from __future__ import annotations

from collections.abc import Sequence

from bridge.relay.ports import SlackFile, ThreadMessage

HEADING = "Earlier messages in this Slack thread, oldest first:"


def _line(message: ThreadMessage) -> str:
    author = f"{message.user_id} (bot)" if message.from_bot else message.user_id
    text = message.text.strip().replace("\n", "\n  ")
    files = ", ".join(f.name for f in message.files)
    if files:
        text = f"{text} [attached: {files}]".strip()
    return f"{author}: {text}"


def _ts_key(ts: str) -> tuple[int, int]:
    """Slack ts as exact integers: a float would blur two messages a microsecond apart."""
    seconds, _, fraction = ts.partition(".")
    try:
        return int(seconds), int(fraction.ljust(6, "0")[:6])
    except ValueError:
        return 0, 0


def earlier(messages: Sequence[ThreadMessage], *, before_ts: str, bot_user_id: str) -> list[ThreadMessage]:
    """The thread's messages that came before the mention, without the bot's own posts."""
    return [
        m
        for m in messages
        if _ts_key(m.ts) < _ts_key(before_ts) and m.user_id != bot_user_id and (m.text.strip() or m.files)
    ]


def render_context(
    messages: Sequence[ThreadMessage], *, max_messages: int, max_chars: int
) -> tuple[str, tuple[SlackFile, ...]]:
    """The context block and the files of the messages it kept.

    The newest messages are kept first; older ones are left out (and the block says how many) past
    ``max_messages`` or once the block would exceed ``max_chars``; a single long message is cut.
    """
    kept: list[ThreadMessage] = []
    lines: list[str] = []
    size = len(HEADING)
    for message in reversed(messages[-max_messages:] if max_messages else ()):
        line = _line(message)
        if len(line) > max_chars:
            line = line[: max(max_chars - 1, 0)] + "…"
        if size + len(line) + 1 > max_chars:
            break
        kept.append(message)
        lines.append(line)
        size += len(line) + 1
    if not kept:
        return "", ()
    left_out = len(messages) - len(kept)
    header = [HEADING] + ([f"({left_out} older messages left out)"] if left_out else [])
    files = tuple(f for m in reversed(kept) for f in m.files)
    return "\n".join([*header, *reversed(lines)]), files
