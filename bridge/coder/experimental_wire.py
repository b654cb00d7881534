"""G1 (``/api/experimental/chats``) JSON to domain models, tolerant of every G1 build's quirks.

What this absorbs (reference sections 3 and 4.3): keys that are absent in one build and ``null`` in
another; the zero-valued keys every message part carries (``"url":""``, ``"start_line":0``, …);
``last_error`` as a string, an object or ``null``; status names beyond G1's own six; ``status``
events whose payload is an object; ``queue_update`` events that omit an empty queue; a file part's
name in ``name`` (newest) or ``file_name``. Unknown part types are kept by name; unknown event types
are skipped, so a newer Coder degrades gracefully.

The status table is a parameter (``statuses``) of the chat and event parsers, so the G2 backend
(``v2_wire``) reads its own status names with these same parsers.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any, TypeVar

from pydantic import ValidationError

from bridge.coder.diffstat import changed_files
from bridge.coder.errors import CoderUnreadable
from bridge.coder.excerpt import excerpt
from bridge.coder.failures import read_failure
from bridge.coder.framing import RawEvent
from bridge.coder.novelty import report_unknown
from bridge.coder.types import (
    ActionRequiredEvent,
    Chat,
    ChatDiff,
    ChatPhase,
    ChatStatus,
    ClientCall,
    CoderUser,
    EditResult,
    ErrorEvent,
    HistoryResetEvent,
    Message,
    MessageEvent,
    Part,
    PartEvent,
    PreviewResetEvent,
    QueuedMessage,
    QueueEvent,
    RetryEvent,
    SendResult,
    StatusEvent,
    StreamEvent,
    WatchEvent,
    WatchKind,
)

log = logging.getLogger(__name__)

_T = TypeVar("_T")

STATUS_PHASES: Mapping[str, ChatPhase] = {
    "waiting": ChatPhase.IDLE,
    "pending": ChatPhase.STARTING,
    "running": ChatPhase.WORKING,
    "paused": ChatPhase.NEEDS_USER,
    "completed": ChatPhase.DONE,
    "error": ChatPhase.ERROR,
    # G2 names, which a server in the promotion window may already send on this path:
    "requires_action": ChatPhase.NEEDS_USER,
    "interrupting": ChatPhase.WORKING,
    # newer builds name the "waiting for a person" state after their ``action_required`` event
    "action_required": ChatPhase.NEEDS_USER,
}

UNREADABLE = (ValidationError, ValueError, TypeError, KeyError)
"""What a parser below raises on JSON of the wrong shape."""


def _fields(raw: Any) -> dict[str, Any]:
    """A JSON object with ``null`` members dropped, so absent and ``null`` read the same."""
    if not isinstance(raw, dict):
        raise TypeError(f"expected a JSON object, got {type(raw).__name__}")
    return {key: value for key, value in raw.items() if value is not None}


PLAN_MODE = "plan"
"""``codersdk.ChatPlanModePlan``; the empty string clears plan mode on a send or a PATCH."""


def parse_status(name: Any, statuses: Mapping[str, ChatPhase] = STATUS_PHASES) -> ChatStatus:
    """A status name as a ``ChatStatus``; names we don't know keep their text with phase UNKNOWN."""
    text = str(name) if name is not None else ""
    return ChatStatus(phase=statuses.get(text, ChatPhase.UNKNOWN), name=text)


def parse_chat(raw: Any, statuses: Mapping[str, ChatPhase] = STATUS_PHASES) -> Chat:
    """A Chat object (full or the partial one in watch events)."""
    data = _fields(raw)
    diff = data.get("diff_status")
    return Chat.model_validate(
        {
            **data,
            "status": parse_status(data.get("status"), statuses),
            "last_error": read_failure(data.get("last_error")),
            "diff_status": _fields(diff) if diff else None,
            "children": tuple(parse_chat(child, statuses) for child in data.get("children") or ()),
            "plan_mode": data.get("plan_mode") == PLAN_MODE,
        }
    )


def parse_part(raw: Any) -> Part:
    """A ChatMessagePart; the zero-valued keys of other part types are ignored or harmless.

    A ``file`` part's name is ``name`` in the newest source and ``file_name`` before it.
    """
    data = _fields(raw)
    if data.get("type") == "file" and data.get("name") and not data.get("file_name"):
        data["file_name"] = data["name"]
    return Part.model_validate(data)


def _parts(raw: Any) -> tuple[Part, ...]:
    return tuple(parse_part(part) for part in raw or ())


def parse_message(raw: Any) -> Message:
    """A persisted ChatMessage."""
    data = _fields(raw)
    return Message.model_validate({**data, "content": _parts(data.get("content"))})


def parse_promoted(raw: Any) -> Message | None:
    """The promote answer: the promoted ChatMessage (200, older builds), or ``None`` for the newest
    source's ``202 {"message": "Queued message promotion accepted."}`` (a ``codersdk.Response``:
    the message then comes on the stream)."""
    if isinstance(raw, dict) and isinstance(raw.get("message"), str) and "id" not in raw:
        return None
    return parse_message(raw)


def parse_queued(raw: Any) -> QueuedMessage:
    """A ChatQueuedMessage."""
    data = _fields(raw)
    return QueuedMessage.model_validate({**data, "content": _parts(data.get("content"))})


def parse_message_page(raw: Any) -> tuple[list[Message], list[QueuedMessage]]:
    """A GET /messages page: its messages (newest first, as sent) and the queue (first page only)."""
    data = _fields(raw)
    messages = [parse_message(m) for m in data.get("messages") or ()]
    return messages, [parse_queued(q) for q in data.get("queued_messages") or ()]


def _warnings(data: dict[str, Any]) -> tuple[str, ...]:
    return tuple(str(w) for w in data.get("warnings") or () if w)


def parse_send_result(raw: Any) -> SendResult:
    """The POST /messages answer: the delivered message, or the queued one.

    G2 adds ``messages`` (every message the send inserted: a queued send on a chat in error may
    promote the queue head) and ``warnings``; without ``message`` the last user message of
    ``messages`` is the one delivered.
    """
    data = _fields(raw)
    messages = tuple(parse_message(m) for m in data.get("messages") or ())
    extra = {"messages": messages, "warnings": _warnings(data)}
    if data.get("queued"):
        return SendResult(queued=True, queued_message=parse_queued(data["queued_message"]), **extra)
    if "message" in data:
        message = parse_message(data["message"])
    else:
        message = next(m for m in reversed(messages) if m.role == "user")
    return SendResult(queued=False, message=message, **extra)


def parse_edit_result(raw: Any) -> EditResult:
    """The edit answer: the new ChatMessage itself (envelope-era G1), or ``EditChatMessageResponse``
    (``message``, ``messages``?, ``deleted_message_ids``?, ``warnings``?)."""
    data = _fields(raw)
    if not isinstance(data.get("message"), dict):
        return EditResult(message=parse_message(data))
    deleted = tuple(int(i) for i in data.get("deleted_message_ids") or ())
    return EditResult(
        message=parse_message(data["message"]), deleted_message_ids=deleted, warnings=_warnings(data)
    )


def parse_user(raw: Any) -> CoderUser:
    """GET /api/v2/users/me."""
    data = _fields(raw)
    return CoderUser.model_validate({**data, "organization_ids": tuple(data.get("organization_ids", ()))})


def _status_event(data: dict[str, Any], statuses: Mapping[str, ChatPhase]) -> StatusEvent:
    payload = data["status"]
    name = payload.get("status") if isinstance(payload, dict) else payload
    return StatusEvent(status=parse_status(name, statuses))


def _part_event(data: dict[str, Any]) -> PartEvent:
    payload = _fields(data["message_part"])
    # ``role`` is omitempty; parts without one belong to the reply being generated. The newest
    # builds number the part (codersdk ChatStreamMessagePart: all three keys omitempty).
    return PartEvent.model_validate(
        {
            **{key: payload[key] for key in _PART_NUMBERS if key in payload},
            "role": str(payload.get("role") or "assistant"),
            "part": parse_part(payload["part"]),
        }
    )


_PART_NUMBERS = ("history_version", "generation_attempt", "seq")


def _message_event(data: dict[str, Any]) -> MessageEvent:
    return MessageEvent(message=parse_message(data["message"]))


def _queue_event(data: dict[str, Any]) -> QueueEvent:
    return QueueEvent(queue=tuple(parse_queued(item) for item in data.get("queued_messages", ())))


def _error_event(data: dict[str, Any]) -> ErrorEvent:
    failure = read_failure(data.get("error"))
    return ErrorEvent.of(failure) if failure is not None else ErrorEvent(message="Coder reported an error")


def _retry_event(data: dict[str, Any]) -> RetryEvent:
    payload = _fields(data["retry"])
    status = payload.get("status_code")
    return RetryEvent(
        attempt=payload.get("attempt", 0),
        delay_ms=payload.get("delay_ms", 0),
        error=payload.get("error", ""),
        error_kind=str(payload.get("kind") or ""),
        provider=str(payload.get("provider") or ""),
        status_code=status if isinstance(status, int) and status else None,
    )


def _action_required_event(data: dict[str, Any]) -> ActionRequiredEvent:
    """Newest G2 (coder/coder chatd stream loop): ``{"action_required": {"tool_calls": [...]}}``,
    each call ``{tool_call_id, tool_name, args}``. UNCERTAIN: whether ``args`` is the JSON object or
    its text (Coder's CLI reads it as text, ``json.RawMessage([]byte(toolCall.Args))``): both are read."""
    payload = data.get("action_required")
    calls = _fields(payload).get("tool_calls", ()) if isinstance(payload, dict) else ()
    return ActionRequiredEvent(calls=tuple(_client_call(_fields(c)) for c in calls if _named(c)))


def _named(call: Any) -> bool:
    return isinstance(call, dict) and bool(_fields(call).get("tool_name"))


def _client_call(fields: dict[str, Any]) -> ClientCall:
    args = fields.get("args")
    if isinstance(args, str):
        with contextlib.suppress(ValueError):  # else kept as the text it is
            args = json.loads(args)
    return ClientCall(
        tool_call_id=str(fields.get("tool_call_id") or ""), tool_name=str(fields["tool_name"]), args=args
    )


_EVENT_PARSERS: Mapping[str, Callable[[dict[str, Any]], StreamEvent]] = {
    "message_part": _part_event,
    "message": _message_event,
    "queue_update": _queue_event,
    "error": _error_event,
    "retry": _retry_event,
    "action_required": _action_required_event,
    # The newest builds (reference 0a, item 3): no payload, the type says it all.
    "preview_reset": lambda _: PreviewResetEvent(),
    "history_reset": lambda _: HistoryResetEvent(),
}


def parse_stream_event(
    raw: RawEvent, statuses: Mapping[str, ChatPhase] = STATUS_PHASES
) -> StreamEvent | None:
    """One ChatStreamEvent as a domain event; ``None`` (and a log line) for one we can't use."""
    kind = raw.get("type")
    parser = _EVENT_PARSERS.get(kind) if isinstance(kind, str) else None
    if kind == "status":
        parser = partial(_status_event, statuses=statuses)
    if parser is None:
        report_unknown(log, "stream events", kind)
        return None
    try:
        return parser(_fields(raw))
    except UNREADABLE as exc:
        log.warning("Skipping an unreadable Coder %s event (%s): %s", kind, exc, excerpt(repr(raw)))
        return None


_WATCH_KINDS = frozenset(WatchKind)


def parse_watch_event(raw: RawEvent, read_chat: Callable[[Any], Chat] = parse_chat) -> WatchEvent | None:
    """One ChatWatchEvent, its chat read by ``read_chat`` (the generation's chat parser); ``None``
    (and a log line) for a kind we don't act on or can't read.

    Newer builds add kinds (``context_dirty``, ``hard_deleted`` …) that are skipped and logged
    once per kind, as unknown stream events are; ``action_required`` is G2's only announcement that
    a chat now waits for its person (no ``status_change`` comes with it), so it is read.
    """
    kind = raw.get("kind")
    if kind not in _WATCH_KINDS:
        report_unknown(log, "watch events", kind)
        return None
    try:
        return WatchEvent(kind=WatchKind(kind), chat=read_chat(raw["chat"]))
    except UNREADABLE as exc:
        log.warning("Skipping an unreadable Coder %s watch event (%s): %s", kind, exc, excerpt(repr(raw)))
        return None


def parse_diff(raw: Any) -> ChatDiff:
    """A ChatDiffContents (``GET /diff``); the diff text itself becomes its list of changed files."""
    data = _fields(raw)
    return ChatDiff.model_validate({**data, "files": changed_files(str(data.get("diff", "")))})


def decode(raw: Any, parse: Callable[[Any], _T], what: str) -> _T:
    """``parse(raw)`` for a REST answer, reporting a wrong shape as a ``CoderError``."""
    try:
        return parse(raw)
    except UNREADABLE as exc:
        raise CoderUnreadable(
            f"Coder sent a {what} this bridge could not read", detail=excerpt(str(exc))
        ) from exc
